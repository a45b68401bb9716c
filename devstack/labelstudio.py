"""A real Label Studio server on 127.0.0.1, for the local stack, the ``labelstudio`` suite and
the benchmark.

Label Studio lives in its own virtualenv under the repository's cache dir (its pins conflict
with prefect). The first use installs it with uv and migrates a template data dir; both steps
run under a file lock, so two pytest processes never install at once, and are skipped once
done. Every start copies the template (a few seconds instead of the first migration's half a
minute), generates fresh credentials, picks a free port and checks in the log that the server
really took it (Label Studio moves to the next port silently when one is busy).

The plain functions (:func:`ensure_installed`, :func:`ensure_template`, :func:`start_server`)
are what ``make up`` and the fixtures (``tests/servers/labelstudio.py``) call;
``benchmarks/labelstudio.py`` calls them too, and also
:func:`start_wsgi_server`, which runs Label Studio as production does: on PostgreSQL, under a
multi-worker gunicorn.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack.process import free_port, log_tail, spawn_logged, stop_process, wait_until
from devstack.venvs import file_lock, run_step, uv_command

LS_VERSION = "1.23.2"
REPO = Path(__file__).resolve().parents[1]

#: Install, first migration and start can each be slow on two busy cores.
INSTALL_TIMEOUT = 900.0
MIGRATE_TIMEOUT = 300.0
START_TIMEOUT = 120.0

_MIGRATE_SCRIPT = """
import os, sys, pathlib
import label_studio
sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "label_studio.core.settings.label_studio")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", "--no-color", verbosity=0, interactive=False)
"""


class Database(Protocol):
    """Where a PostgreSQL database answers (``tests.servers.postgres.PostgresServer``)."""

    host: str
    port: int
    user: str
    database: str


def cache_dir() -> Path:
    """Where the Label Studio venv and template live (``LABELVAULT_LS_CACHE`` overrides)."""
    override = os.environ.get("LABELVAULT_LS_CACHE")
    return Path(override) if override else REPO / ".cache" / "labelstudio"


def _base_env(data_dir: Path) -> dict[str, str]:
    """A clean environment: Label Studio reads bare names such as USERNAME and DJANGO_DB."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LATEST_VERSION_CHECK": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "DO_NOT_TRACK": "1",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def ensure_installed(cache: Path | None = None) -> Path:
    """The Label Studio virtualenv, installed with uv when missing; returns the venv dir."""
    cache = cache or cache_dir()
    venv = cache / "venv"
    marker = venv / ".labelvault-installed"
    with file_lock(cache / "install.lock"):
        if marker.is_file() and marker.read_text().strip() == LS_VERSION:
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        uv = uv_command()
        run_step(
            [*uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            what="uv venv",
            timeout=INSTALL_TIMEOUT,
        )
        run_step(
            [
                *uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv / "bin" / "python"),
                f"label-studio=={LS_VERSION}",
            ],
            what=f"installing label-studio=={LS_VERSION}",
            timeout=INSTALL_TIMEOUT,
        )
        marker.write_text(LS_VERSION)
    return venv


def ensure_template(venv: Path, cache: Path | None = None) -> Path:
    """A migrated, user-less data dir to copy for each start; made once per version."""
    cache = cache or cache_dir()
    template = cache / f"template-{LS_VERSION}"
    marker = template / ".labelvault-ready"
    with file_lock(cache / "install.lock"):
        if marker.is_file():
            return template
        scratch = cache / f"template-{LS_VERSION}.tmp"
        if scratch.exists():
            shutil.rmtree(scratch)
        if template.exists():
            shutil.rmtree(template)
        scratch.mkdir(parents=True)
        run_step(
            [str(venv / "bin" / "python"), "-c", _MIGRATE_SCRIPT],
            what="migrating the Label Studio template data dir",
            timeout=MIGRATE_TIMEOUT,
            env=_base_env(scratch),
        )
        # Each copy must make its own SECRET_KEY, so the template keeps none.
        (scratch / ".env").unlink(missing_ok=True)
        scratch.rename(template)
        marker.write_text(LS_VERSION)
    return template


def ensure_gunicorn(venv: Path) -> Path:
    """gunicorn in the Label Studio virtualenv, installed with uv when missing; returns it."""
    gunicorn = venv / "bin" / "gunicorn"
    with file_lock(venv.parent / "install.lock"):
        if not gunicorn.is_file():
            run_step(
                [
                    *uv_command(),
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(venv / "bin" / "python"),
                    "gunicorn",
                ],
                what="installing gunicorn",
                timeout=INSTALL_TIMEOUT,
            )
    return gunicorn


def _package_dir(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages/label_studio"))
    if not found:
        raise RuntimeError(f"no label_studio package in {venv}")
    return found[-1]


@dataclass
class LabelStudio:
    """A running Label Studio server started by :func:`start_server` or
    :func:`start_wsgi_server`."""

    base_url: str
    port: int
    username: str
    password: str
    token: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]
    started_in: float
    _pat: str | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The server's process id (it leads its own process group)."""
        return self.process.pid

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client authenticated with the legacy token."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Token {self.token}", "Connection": "close"},
            timeout=kwargs.pop("timeout", 120.0),
            **kwargs,
        )

    def personal_access_token(self) -> str:
        """A personal access token (JWT refresh token) for the owner; made once per server."""
        if self._pat is None:
            with self.client() as client:
                response = client.post("/api/token/")
                response.raise_for_status()
                self._pat = str(response.json()["token"])
        return self._pat

    def set_legacy_tokens(self, enabled: bool) -> None:
        """Allow or refuse legacy ``Token`` auth for the organization (uses the PAT)."""
        pat = self.personal_access_token()
        with httpx.Client(base_url=self.base_url, timeout=60.0) as client:
            access = client.post("/api/token/refresh/", json={"refresh": pat})
            access.raise_for_status()
            response = client.post(
                "/api/jwt/settings",
                json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": enabled},
                headers={"Authorization": f"Bearer {access.json()['access']}"},
            )
            response.raise_for_status()

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM to its process group, then SIGKILL)."""
        stop_process(self.process, grace=15.0)


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


_STARTED = re.compile(r"Starting development server at http://127\.0\.0\.1:(\d+)/")


def start_server(
    data_dir: Path,
    *,
    venv: Path | None = None,
    template: Path | None = None,
    port: int | None = None,
    username: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> LabelStudio:
    """Start Label Studio on 127.0.0.1 with a copy of the template and fresh credentials.

    Installs Label Studio and makes the template first when they are missing. ``data_dir``
    must be empty or missing. Raises with the log tail when the server exits, does not answer
    ``/health`` in ``timeout`` seconds, or did not bind the port it was given.
    """
    venv = venv or ensure_installed()
    template = template or ensure_template(venv)
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template, data_dir, dirs_exist_ok=True, symlinks=True)
    owner = _Owner.fresh(username)
    port = port or free_port()
    env = _base_env(data_dir)
    env.update(
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        # Webhooks to a loopback receiver are refused unless this is off; the server only
        # listens on 127.0.0.1.
        SSRF_PROTECTION_ENABLED="false",
        LABEL_STUDIO_USERNAME=owner.username,
        LABEL_STUDIO_PASSWORD=owner.password,
        LABEL_STUDIO_USER_TOKEN=owner.token,
    )
    env.update(extra_env or {})
    return _launch(
        [
            str(venv / "bin" / "label-studio"),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(port),
            "--enable-legacy-api-token",
        ],
        data_dir=data_dir,
        env=env,
        port=port,
        owner=owner,
        bound_port=lambda log, _pid: _bound_port(log),
        started=time.monotonic(),
        timeout=timeout,
    )


def start_wsgi_server(
    data_dir: Path,
    database: Database,
    *,
    workers: int = 4,
    venv: Path | None = None,
    username: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> LabelStudio:
    """Start Label Studio under gunicorn (``workers`` sync workers) on ``database``.

    ``label-studio init`` first migrates the database and creates the owner with fresh
    credentials (bounded by ``MIGRATE_TIMEOUT``), then gunicorn serves ``core.wsgi`` on a free
    port of 127.0.0.1; ``timeout`` bounds its start. ``data_dir`` holds media, the secret key
    and ``server.log``. ``stop()`` stops the gunicorn master's process group; the database is
    the caller's to stop. Raises with the log tail when a step fails.
    """
    venv = venv or ensure_installed()
    gunicorn = ensure_gunicorn(venv)
    data_dir.mkdir(parents=True, exist_ok=True)
    owner = _Owner.fresh(username)
    env = _base_env(data_dir)
    env.update(
        DJANGO_DB="default",
        POSTGRE_HOST=database.host,
        POSTGRE_PORT=str(database.port),
        POSTGRE_NAME=database.database,
        POSTGRE_USER=database.user,
        POSTGRE_PASSWORD="",
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
    )
    env.update(extra_env or {})
    started = time.monotonic()
    run_step(
        [
            str(venv / "bin" / "label-studio"),
            "init",
            "-q",
            "--username",
            owner.username,
            "--password",
            owner.password,
            "--user-token",
            owner.token,
            "--enable-legacy-api-token",
        ],
        what="label-studio init on PostgreSQL",
        timeout=MIGRATE_TIMEOUT,
        env=env,
    )
    env.update(
        DJANGO_SETTINGS_MODULE="core.settings.label_studio",
        # As in start_server: webhooks to a loopback receiver need this off.
        SSRF_PROTECTION_ENABLED="false",
    )
    port = free_port()
    return _launch(
        [
            str(gunicorn),
            "--chdir",
            str(_package_dir(venv)),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "1",
            "--timeout",
            "600",
            "core.wsgi:application",
        ],
        data_dir=data_dir,
        env=env,
        port=port,
        owner=owner,
        bound_port=_gunicorn_port,
        started=started,
        timeout=timeout,
    )


@dataclass(frozen=True)
class _Owner:
    """The owner account a started server creates, with fresh credentials."""

    username: str
    password: str
    token: str

    @classmethod
    def fresh(cls, username: str | None) -> _Owner:
        return cls(
            username=username or f"owner-{secrets.token_hex(4)}@example.com",
            password=secrets.token_urlsafe(18),
            token=secrets.token_hex(20),
        )


def _launch(
    cmd: list[str],
    *,
    data_dir: Path,
    env: dict[str, str],
    port: int,
    owner: _Owner,
    bound_port: Callable[[Path, int], int | None],
    started: float,
    timeout: float,
) -> LabelStudio:
    """Run ``cmd`` (logging to ``data_dir/server.log``), wait until ``bound_port`` reads from
    the log that this process holds ``port`` and ``/health`` answers; stop it on failure."""
    log = data_dir / "server.log"
    process = spawn_logged(cmd, log=log, cwd=data_dir, env=env)
    base_url = f"http://127.0.0.1:{port}"
    server = LabelStudio(
        base_url=base_url,
        port=port,
        username=owner.username,
        password=owner.password,
        token=owner.token,
        data_dir=data_dir,
        log=log,
        process=process,
        started_in=0.0,
    )
    try:
        wait_until(
            lambda: bound_port(log, process.pid) is not None,
            timeout=timeout,
            what="Label Studio",
            process=process,
            log=log,
        )
        bound = bound_port(log, process.pid)
        if bound != port:
            raise RuntimeError(
                f"Label Studio bound port {bound} instead of {port} (busy?)\n{log_tail(log)}"
            )
        wait_until(
            lambda: _healthy(base_url),
            timeout=max(1.0, timeout - (time.monotonic() - started)),
            what="Label Studio /health",
            process=process,
            log=log,
        )
    except BaseException:
        server.stop()
        raise
    server.started_in = time.monotonic() - started
    return server


_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)")


def _gunicorn_port(log: Path, pid: int) -> int | None:
    """The port gunicorn's master ``pid`` says it listens on (it exits when one is taken)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for match in _LISTENING.finditer(text):
        if int(match.group(2)) == pid:
            return int(match.group(1))
    return None


def _bound_port(log: Path) -> int | None:
    try:
        match = _STARTED.search(log.read_text(errors="replace"))
    except OSError:
        return None
    return int(match.group(1)) if match else None


def start_server_retrying(data_root: Path, attempts: int = 3, **kwargs: Any) -> LabelStudio:
    """:func:`start_server` in ``data_root/ls-N``, with a new port when one was taken."""
    error: RuntimeError | None = None
    for attempt in range(attempts):
        try:
            return start_server(data_root / f"ls-{attempt}", **kwargs)
        except RuntimeError as exc:
            if "instead of" not in str(exc):
                raise
            error = exc
    assert error is not None
    raise error
