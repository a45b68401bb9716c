"""Session fixture: a real Prefect server on 127.0.0.1, and process workers started on demand.

The server gets its own ``PREFECT_HOME`` (a fresh SQLite database), telemetry off. Tests talk to
it over its REST API the way the UI does, and run the ``prefect`` CLI with :attr:`env`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from tests.servers.process import free_port, log_tail, spawn_logged, stop_process, wait_until

PREFECT = str(Path(sys.executable).with_name("prefect"))
REPO = Path(__file__).resolve().parents[2]


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment for a Prefect process that must stay on this machine and this home."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_") or key == "PREFECT_TEST_MODE"
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@dataclass
class PrefectServer:
    """A running Prefect server and the processes started against it."""

    home: Path
    api_url: str
    env: dict[str, str]
    log: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def api(self) -> httpx.Client:
        """An HTTP client on the server's REST API (``/api`` base). Like Prefect's own client,
        it retries the server's 503/429 answers (SQLite busy under load), a few times."""
        return httpx.Client(base_url=self.api_url, timeout=30.0, transport=_RetryBusy())

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``prefect ARGS`` from the repository root; raise with its output on failure."""
        result = subprocess.run(
            [PREFECT, "--no-prompt", *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"prefect {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def setup_labelvault(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``deployments/setup.py`` (pool, limits, blocks, deploy) with ``env`` on top of
        the server's environment; fail with its output if it fails."""
        result = subprocess.run(
            [sys.executable, "-m", "deployments.setup", *args],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    def start_worker(self, pool: str, *, env: dict[str, str] | None = None) -> Path:
        """Start a process worker on ``pool``; returns its log file. Stopped at session end."""
        log = self.home / f"worker-{pool}-{len(self.workers)}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--type", "process"],
            cwd=REPO,
            env={
                **self.env,
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                # The deployments' pull step runs the flows from this checkout.
                "LABELVAULT_CODE_DIR": str(REPO),
                **(env or {}),
            },
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.workers.append(process)
        wait_until(
            lambda: "started" in log.read_text(errors="replace").lower(),
            timeout=60,
            what=f"prefect worker on {pool}",
            process=process,
            log=log,
        )
        return log

    def stop_workers(self) -> None:
        """Stop every worker this fixture started (before the server, as Prefect advises)."""
        for process in self.workers:
            stop_process(process, grace=20.0)
        self.workers.clear()


def _busy(response: httpx.Response) -> bool:
    return response.status_code in (429, 503)


class _RetryBusy(httpx.HTTPTransport):
    """Retries 429/503 answers with exponential backoff, at most 6 attempts; then the last
    answer stands."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        send = Retrying(
            retry=retry_if_result(_busy),
            stop=stop_after_attempt(6),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )
        return send(self._send_once, request)

    def _send_once(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if _busy(response):
            response.read()
        return response


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server on a free loopback port with a fresh database."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(home, api_url)
    log = home / "server.log"
    server_env = {
        **env,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_ENABLED": "false",
    }
    server_env.pop("PREFECT_API_URL")
    process = spawn_logged(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        log=log,
        cwd=home,
        env=server_env,
    )
    server = PrefectServer(home=home, api_url=api_url, env=env, log=log)
    try:
        wait_until(
            lambda: _healthy(api_url),
            timeout=120,
            what="prefect server",
            process=process,
            log=log,
        )
        yield server
    finally:
        server.stop_workers()
        stop_process(process, grace=20.0)
        if process.returncode not in (0, -15, 143, None):
            print(log_tail(log))
