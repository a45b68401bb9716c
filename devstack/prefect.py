"""A real Prefect server on 127.0.0.1 and process workers, for the local stack and the tests.

Each server gets its own ``PREFECT_HOME`` (its SQLite database), telemetry off; clients find it
through ``PREFECT_API_URL`` in :func:`prefect_env`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.process import spawn_logged, wait_until

PREFECT = str(Path(sys.executable).with_name("prefect"))
REPO = Path(__file__).resolve().parents[1]
WORK_POOL = "labelvault"

#: A new database takes 15-17 s to migrate on two idle cores; busy ones take longer.
SERVER_START_TIMEOUT = 180.0
WORKER_START_TIMEOUT = 60.0


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


def api_healthy(api_url: str) -> bool:
    """Whether the server's ``/api/health`` answers 200."""
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def spawn_server(home: Path, port: int, *, ui: bool, log: Path) -> subprocess.Popen[bytes]:
    """Start ``prefect server start`` on 127.0.0.1:``port`` with ``home``'s database (in its
    own process group, logging to ``log``); :func:`wait_for_server` waits until it answers."""
    env = prefect_env(home)
    env.update(
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_ENABLED="true" if ui else "false",
        # The UI calls the API at the address it was served from.
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
    )
    return spawn_logged(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        log=log,
        cwd=home,
        env=env,
    )


def wait_for_server(
    process: subprocess.Popen[bytes],
    api_url: str,
    *,
    log: Path,
    timeout: float = SERVER_START_TIMEOUT,
) -> None:
    """Wait until the server answers ``/api/health``; raise with its log tail otherwise."""
    wait_until(
        lambda: api_healthy(api_url),
        timeout=timeout,
        what="prefect server",
        process=process,
        log=log,
    )


def spawn_worker(
    env: dict[str, str],
    *,
    log: Path,
    pool: str = WORK_POOL,
    code_dir: Path = REPO,
    query_seconds: float = 1.0,
) -> subprocess.Popen[bytes]:
    """Start a process worker on ``pool`` with ``env`` (a :func:`prefect_env` with the API URL);
    the deployments' pull step runs the flows from ``code_dir``."""
    return spawn_logged(
        [PREFECT, "worker", "start", "--pool", pool, "--type", "process"],
        log=log,
        cwd=code_dir,
        env={
            **env,
            "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds),
            "LABELVAULT_CODE_DIR": str(code_dir),
        },
    )


def worker_started(log: Path) -> bool:
    """Whether the worker logging to ``log`` says it started."""
    try:
        return "started" in log.read_text(errors="replace").lower()
    except OSError:
        return False


def wait_for_worker(
    process: subprocess.Popen[bytes], *, log: Path, timeout: float = WORKER_START_TIMEOUT
) -> None:
    """Wait until the worker says it started; raise with its log tail otherwise."""
    wait_until(
        lambda: worker_started(log),
        timeout=timeout,
        what="prefect worker",
        process=process,
        log=log,
    )
