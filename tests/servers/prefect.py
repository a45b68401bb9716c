"""Session fixture: a real Prefect server on 127.0.0.1, and process workers started on demand.

The server (started by :mod:`devstack.prefect`) gets its own ``PREFECT_HOME`` (a fresh SQLite
database), telemetry off. Tests talk to it over its REST API the way the UI does, and run the
``prefect`` CLI with :attr:`env`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from devstack.prefect import (
    PREFECT,
    REPO,
    prefect_env,
    spawn_server,
    spawn_worker,
    wait_for_server,
    wait_for_worker,
)
from devstack.process import free_port, log_tail, stop_process

__all__ = ["PrefectServer"]


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
        process = spawn_worker({**self.env, **(env or {})}, log=log, pool=pool)
        self.workers.append(process)
        wait_for_worker(process, log=log)
        return log

    def stop_workers(self) -> None:
        """Stop every worker this fixture started (before the server, as Prefect advises)."""
        for process in self.workers:
            stop_process(process, grace=20.0)
        self.workers.clear()


def _busy(response: httpx.Response) -> bool:
    return response.status_code in (429, 503)


def _safe_to_repeat(request: httpx.Request) -> bool:
    """Whether sending ``request`` twice does what sending it once does: the idempotent
    methods, and Prefect's ``POST .../filter`` reads."""
    return request.method in ("GET", "HEAD", "PUT", "PATCH", "DELETE") or (
        request.method == "POST" and request.url.path.endswith("/filter")
    )


class _RetryBusy(httpx.HTTPTransport):
    """Retries 429/503 answers with exponential backoff, at most 6 attempts; then the last
    answer stands. A request that is safe to repeat is also repeated when the server does not
    answer in time (SQLite makes a busy server stall writers for tens of seconds)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        retry = retry_if_result(_busy)
        if _safe_to_repeat(request):
            retry = retry | retry_if_exception_type(httpx.TimeoutException)
        send = Retrying(
            retry=retry,
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


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server on a free loopback port with a fresh database."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(home, api_url)
    log = home / "server.log"
    process = spawn_server(home, port, ui=False, log=log)
    server = PrefectServer(home=home, api_url=api_url, env=env, log=log)
    try:
        wait_for_server(process, api_url, log=log, timeout=120)
        yield server
    finally:
        server.stop_workers()
        stop_process(process, grace=20.0)
        if process.returncode not in (0, -15, 143, None):
            print(log_tail(log))
