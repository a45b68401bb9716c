"""A real PostgreSQL server on 127.0.0.1, for running Label Studio the way production does.

:func:`start_postgres` makes a fresh cluster with ``initdb`` (trust authentication, superuser
``postgres``) in a given directory, starts ``postgres`` on a free port with its unix socket in
that directory, waits until it accepts connections and creates a database. The server is a
child process we hold, so :meth:`PostgresServer.stop` stops it by its PID.

PostgreSQL refuses to run as root: under root, ``initdb`` and ``postgres`` run as the
``postgres`` system user, which then owns the directory (so every parent of it must be
searchable by that user; the directory itself is best made directly under ``/tmp``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.process import free_port, log_tail, spawn_logged, stop_process, wait_until

SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
INITDB_TIMEOUT = 120.0
READY_TIMEOUT = 60.0
STOP_GRACE = 15.0
_BINARIES = ("initdb", "postgres", "pg_isready", "psql")


@dataclass
class PostgresServer:
    """A running PostgreSQL server started by :func:`start_postgres`; trust auth, no password."""

    host: str
    port: int
    user: str
    database: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]
    started_in: float

    @property
    def pid(self) -> int:
        """The postmaster's process id (it leads its own process group)."""
        return self.process.pid

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL for the database."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), then SIGTERM/SIGKILL to its group."""
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGINT)
                self.process.wait(timeout=STOP_GRACE)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        stop_process(self.process, grace=STOP_GRACE)


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def find_bin_dir() -> Path:
    """The directory holding ``initdb``, ``postgres``, ``pg_isready`` and ``psql``.

    ``postgres`` on PATH (symlinks resolved) comes first, then the newest
    ``/usr/lib/postgresql/*/bin``.
    """
    candidates: list[Path] = []
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True))
    candidates = list(dict.fromkeys(candidates))
    for bin_dir in candidates:
        if all(os.access(bin_dir / name, os.X_OK) for name in _BINARIES):
            return bin_dir
    searched = ", ".join(str(path) for path in candidates) or "nothing found"
    raise RuntimeError(
        f"PostgreSQL server binaries ({', '.join(_BINARIES)}) not found on PATH or in "
        f"/usr/lib/postgresql/*/bin (looked at: {searched}); install the postgresql package"
    )


@dataclass(frozen=True)
class _Account:
    uid: int
    gid: int


def _server_account() -> _Account | None:
    """Whom to run initdb and postgres as: the ``postgres`` user under root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise RuntimeError(
            f"PostgreSQL refuses to run as root and there is no {SYSTEM_USER!r} system user "
            "to run it as; run as a normal user or create that user"
        ) from None
    return _Account(uid=entry.pw_uid, gid=entry.pw_gid)


def _prepare_data_dir(data_dir: Path, account: _Account | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if any(data_dir.iterdir()):
        raise RuntimeError(f"{data_dir} is not empty; initdb needs an empty directory")
    data_dir.chmod(0o700)
    if account is None:
        return
    os.chown(data_dir, account.uid, account.gid)
    # The server user must reach the directory through every parent.
    probe = subprocess.run(
        ["test", "-w", str(data_dir), "-a", "-x", str(data_dir)],
        user=account.uid,
        group=account.gid,
        extra_groups=[],
        check=False,
    )
    if probe.returncode != 0:
        raise RuntimeError(
            f"the {SYSTEM_USER!r} user cannot reach {data_dir}: a parent directory is not "
            "searchable by it; use a directory directly under /tmp or chmod o+x its parents"
        )


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PGCONNECT_TIMEOUT": "5",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def start_postgres(
    data_dir: Path,
    *,
    database: str = "labelstudio",
    port: int | None = None,
    timeout: float = READY_TIMEOUT,
) -> PostgresServer:
    """Initialise a cluster in ``data_dir`` (empty or missing), start it and create ``database``.

    Listens on 127.0.0.1 only, with its unix socket in ``data_dir``; the server log is
    ``data_dir/postgres.log``. Raises with the log tail when the binaries are missing,
    ``initdb`` fails, or the server exits or does not accept connections in ``timeout`` seconds.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
        raise ValueError(f"database name {database!r} must be a plain identifier")
    bin_dir = find_bin_dir()
    account = _server_account()
    data_dir = data_dir.resolve()
    _prepare_data_dir(data_dir, account)
    env = _env(data_dir)
    started = time.monotonic()
    initdb = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        cwd=data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=INITDB_TIMEOUT,
        check=False,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
    )
    if initdb.returncode != 0:
        raise RuntimeError(
            f"initdb failed ({initdb.returncode}):\n{initdb.stdout[-3000:]}\n"
            f"{initdb.stderr[-3000:]}"
        )
    port = port or free_port()
    log = data_dir / "postgres.log"
    process = spawn_logged(
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(data_dir),
        ],
        log=log,
        cwd=data_dir,
        env=env,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
    )
    server = PostgresServer(
        host="127.0.0.1",
        port=port,
        user=SUPERUSER,
        database=database,
        data_dir=data_dir,
        log=log,
        process=process,
        started_in=0.0,
    )
    try:
        # The socket lives in our own directory, so a ready answer there comes from this
        # server and not from something else that holds the port.
        wait_until(
            lambda: _accepting(bin_dir, str(data_dir), port, env),
            timeout=timeout,
            what="PostgreSQL",
            process=process,
            log=log,
        )
        # Over TCP, which is how clients connect.
        created = subprocess.run(
            [
                str(bin_dir / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                server.host,
                "-p",
                str(port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-c",
                f'CREATE DATABASE "{database}"',
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(
                f"creating database {database!r} failed ({created.returncode}):\n"
                f"{created.stderr[-3000:]}\n{log_tail(log)}"
            )
    except BaseException:
        server.stop()
        raise
    server.started_in = time.monotonic() - started
    return server


def _accepting(bin_dir: Path, host: str, port: int, env: dict[str, str]) -> bool:
    result = subprocess.run(
        [str(bin_dir / "pg_isready"), "-q", "-h", host, "-p", str(port), "-U", SUPERUSER],
        env=env,
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0
