"""``make up`` / ``make down``: the whole of labelvault on one machine, with real parts.

``up`` starts, in a state dir (``.stack/`` in the repository unless ``--state-dir`` or
``LABELVAULT_STACK_DIR`` says otherwise; git ignores it):

- a Prefect server with its UI, on a fresh database;
- a real Label Studio (the version the tests use, in its own virtualenv under ``.cache/``) with
  a generated owner login and a small sample project, whose baseline version is captured;
- ``deployments/setup.py`` (what ``make deploy`` runs) against that server: work pool, limits,
  blocks pointing at that Label Studio and at a folder store in the state dir, and the
  deployments (``nightly-version`` versions the sample project);
- a process worker running the flows from this checkout;
- the webhook bridge, and a webhook on the sample project that points at it.

Each process leads its own process group; ``up`` records its pid, start time and command line in
``pids/<name>.pid`` and ``stack.json`` (mode 0600: it holds the login), prints the URLs and
returns once everything answers. ``down`` stops those processes (and what they started) by
pid, only after checking each is still the process ``up`` started, then removes the pid files;
logs and versions stay until the next ``up``. Both are idempotent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic import SecretStr

from devstack import labelstudio, prefect
from devstack.process import log_tail, spawn_logged, wait_until
from labelvault.connect import open_platform
from labelvault.models import ProjectRef, instance_from_url
from labelvault.settings import PlatformConnection
from labelvault.storage import LocalStore
from labelvault.vault import Vault
from labelvault.webhooks import SECRET_HEADER

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STATE_DIR = REPO / ".stack"
#: The order ``down`` stops them in: a worker before its server.
NAMES = ("worker", "bridge", "labelstudio", "prefect-server")
DEFAULT_PORTS = {"prefect-server": 4200, "labelstudio": 8080, "bridge": 8765}
#: Our subdirectories of the state dir: ``up`` empties these and nothing else.
RUN_DIRS = ("prefect", "labelstudio", "store", "logs", "pids")
CONNECTION = "labelstudio"
STOP_GRACE = 20.0
CREATE_TIME_TOLERANCE = 2.0
CMDLINE_WAIT = 5.0
BRIDGE_START_TIMEOUT = 60.0
SETUP_TIMEOUT = 600.0

SAMPLE_OWNER = "admin@example.com"
SAMPLE_TITLE = "labelvault sample: review sentiment"
SAMPLE_CONFIG = """<View>
  <Header value="How does this review sound?"/>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single" showInLine="true">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
    <Choice value="Neutral"/>
  </Choices>
</View>"""
SAMPLE_TEXTS = (
    "Arrived a day early and works exactly as described.",
    "The strap broke after two weeks of light use.",
    "It does what it says. Nothing more, nothing less.",
    "Best purchase I have made this year, the battery lasts for days.",
    "Customer service never answered my emails.",
    "Fits well, although the colour is a little darker than in the photos.",
)
#: The sample's first tasks come annotated, so the baseline version has annotations.
SAMPLE_LABELS = ("Positive", "Negative")


class StackError(Exception):
    """``up`` or ``down`` cannot go on; the message says why and what to do."""


# --- the state dir ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A process ``up`` started, as recorded in its pid file and ``stack.json``."""

    name: str
    pid: int
    create_time: float
    cmdline: list[str]

    @classmethod
    def of(cls, name: str, pid: int) -> Recorded:
        """The identity of a process just started: its start time and command line.

        Right after ``exec`` the kernel shows an empty command line until the new program's
        arguments are in place; it is read again until it is there.
        """
        process = psutil.Process(pid)
        deadline = time.monotonic() + CMDLINE_WAIT
        cmdline = process.cmdline()
        while not cmdline and time.monotonic() < deadline:
            time.sleep(0.01)
            cmdline = process.cmdline()
        if not cmdline:
            raise StackError(f"{name} (pid {pid}) shows no command line; it did not start")
        return cls(name, pid, process.create_time(), cmdline)

    def process(self) -> psutil.Process | None:
        """The live process, when ``pid`` is still the one ``up`` started; else None."""
        try:
            process = psutil.Process(self.pid)
            # Two seconds: the boot time psutil adds to a process's start is re-read from
            # /proc/stat on each call and can move by a whole second when the clock is slewed.
            same = (
                abs(process.create_time() - self.create_time) < CREATE_TIME_TOLERANCE
                and process.cmdline() == self.cmdline
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        except psutil.AccessDenied:
            return None
        return process if same else None


class State:
    """The files of one stack: ``stack.json``, ``pids/``, logs and data."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def record_path(self) -> Path:
        return self.root / "stack.json"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def store(self) -> Path:
        return self.root / "store"

    def log_of(self, name: str) -> Path:
        """The log of the process ``name`` (Label Studio keeps its own beside its data)."""
        if name == "labelstudio":
            return self.root / "labelstudio" / "server.log"
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def read(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.record_path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise StackError(f"{self.record_path} is unreadable ({error}); remove it") from error

    def write(self, record: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = self.record_path.with_suffix(".tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2)
        scratch.replace(self.record_path)

    def recorded(self) -> list[Recorded]:
        """Every process a pid file names (with its identity from ``stack.json``)."""
        record = self.read() or {}
        known = record.get("processes", {})
        found: list[Recorded] = []
        for name in NAMES:
            path = self.pid_file(name)
            if not path.is_file():
                continue
            pid = int(path.read_text().split()[0])
            entry = known.get(name) or {}
            if entry.get("pid") != pid:
                # A pid file without its identity: never signal what cannot be checked.
                found.append(Recorded(name, pid, -1.0, []))
                continue
            found.append(Recorded(name, pid, float(entry["create_time"]), list(entry["cmdline"])))
        return found

    def record_process(self, record: dict[str, Any], name: str, pid: int) -> None:
        """Write the pid file and the process's identity (before anything can fail after)."""
        recorded = Recorded.of(name, pid)
        record.setdefault("processes", {})[name] = {
            "pid": pid,
            "create_time": recorded.create_time,
            "cmdline": recorded.cmdline,
        }
        self.write(record)
        self.pids.mkdir(parents=True, exist_ok=True)
        self.pid_file(name).write_text(f"{pid}\n")

    def clear(self) -> None:
        """Forget the processes: pid files and ``stack.json`` (logs and data stay)."""
        for name in NAMES:
            self.pid_file(name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.pids.rmdir()
        self.record_path.unlink(missing_ok=True)

    def fresh(self) -> None:
        """Empty the run's subdirectories for a new ``up`` (only those ``up`` makes)."""
        for name in RUN_DIRS:
            shutil.rmtree(self.root / name, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir()
        self.prefect_home.mkdir()


# --- stopping --------------------------------------------------------------------------------


def stop(recorded: Recorded, *, grace: float = STOP_GRACE) -> tuple[bool, str]:
    """Stop a recorded process, its process group and its descendants; whether nothing of
    them runs afterwards, and a line that says what happened."""
    process = recorded.process()
    if process is None:
        return True, f"{recorded.name}: not running (pid {recorded.pid} is gone or another process)"
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return True, f"{recorded.name}: exited"
    _signal(process, family, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=grace)
    if alive:
        _signal(process, alive, signal.SIGKILL)
        _, alive = psutil.wait_procs(alive, timeout=grace)
    if alive:
        return False, f"{recorded.name}: pid {[p.pid for p in alive]} did not stop"
    return True, f"{recorded.name}: stopped (pid {recorded.pid})"


def _signal(leader: psutil.Process, family: list[psutil.Process], signum: int) -> None:
    """Signal the process group ``leader`` leads (each process ``up`` spawns leads its own),
    while the leader is still that process, and each of ``family`` (psutil refuses a pid that
    another process has taken since)."""
    with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
        if leader.is_running() and os.getpgid(leader.pid) == leader.pid:
            os.killpg(leader.pid, signum)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            member.send_signal(signum)


def down(state: State, out: Callable[[str], None] = print) -> int:
    """Stop what ``up`` started in ``state``; 0 when nothing of it runs afterwards."""
    recorded = state.recorded()
    if not recorded and state.read() is None:
        out(f"the stack is already down (nothing recorded in {state.root})")
        return 0
    failed = False
    for entry in recorded:
        stopped, line = stop(entry)
        failed |= not stopped
        out(line)
    if failed:
        return 1
    state.clear()
    out("the stack is down")
    return 0


# --- starting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    prefect: int
    labelstudio: int
    bridge: int


def pick_ports(requested: Mapping[str, int | None], out: Callable[[str], None]) -> Ports:
    """The ports to use: the requested or default one when it is free, any free one for 0;
    three different ports (each is held while the next is picked)."""
    chosen: dict[str, int] = {}
    with contextlib.ExitStack() as held:
        for name, default in DEFAULT_PORTS.items():
            wanted = requested.get(name)
            port = default if wanted is None else wanted
            sock = _bind(port) if port else None
            if sock is None:
                sock = _bind(0)
                assert sock is not None  # port 0 always binds
                if port:
                    out(f"{name}: port {port} is taken, using {sock.getsockname()[1]}")
            held.enter_context(sock)
            chosen[name] = int(sock.getsockname()[1])
    return Ports(chosen["prefect-server"], chosen["labelstudio"], chosen["bridge"])


def _bind(port: int) -> socket.socket | None:
    """A socket bound to 127.0.0.1:``port`` (not listening), or None when it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def _without_settings(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without labelvault's settings: the stack sets its own."""
    return {k: v for k, v in env.items() if not k.startswith("LABELVAULT_")}


def status(state: State) -> tuple[list[Recorded], list[Recorded]]:
    """The recorded processes that are running (as started) and those that are not."""
    recorded = state.recorded()
    running = [entry for entry in recorded if entry.process() is not None]
    stopped = [entry for entry in recorded if entry.process() is None]
    return running, stopped


class _Background:
    """Runs ``work`` in a thread; :meth:`result` joins it and re-raises its error."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], Any]) -> None:
        try:
            self._result = work()
        except BaseException as error:
            self._error = error

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


@contextlib.contextmanager
def _stopped_on_failure(state: State, out: Callable[[str], None]) -> Iterator[None]:
    """On any failure, stop whatever this ``up`` recorded so far and forget it."""
    try:
        yield
    except BaseException:
        for entry in state.recorded():
            _, line = stop(entry)
            out(line)
        state.clear()
        out(f"make up failed; logs in {state.logs}")
        raise


def _spawn_bridge(
    env: dict[str, str], port: int, log: Path, secret: str, ls: labelstudio.LabelStudio
) -> subprocess.Popen[bytes]:
    return spawn_logged(
        [sys.executable, "-m", "labelvault", "webhooks", "serve", "--port", str(port)],
        log=log,
        cwd=REPO,
        env={
            **env,
            "LABELVAULT_WEBHOOK_SECRET": secret,
            "LABELVAULT_LABELSTUDIO_URL": ls.base_url,
            "LABELVAULT_LABELSTUDIO_TOKEN": ls.token,
        },
    )


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on 127.0.0.1:``port`` (not another server that
    took the port first)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(
        conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        for conn in connections
    )


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def create_sample_project(ls: labelstudio.LabelStudio) -> int:
    """The sample project: a few reviews to label by sentiment, the first ones labelled."""
    with ls.client() as client:
        response = client.post(
            "/api/projects",
            json={
                "title": SAMPLE_TITLE,
                "description": "Label a review; labelvault versions the project a moment later.",
                "label_config": SAMPLE_CONFIG,
            },
        )
        response.raise_for_status()
        project_id = int(response.json()["id"])
        tasks: list[dict[str, Any]] = [{"data": {"text": text}} for text in SAMPLE_TEXTS]
        for task, label in zip(tasks, SAMPLE_LABELS, strict=False):
            task["annotations"] = [{"result": [_choice(label)]}]
        client.post(f"/api/projects/{project_id}/import", json=tasks).raise_for_status()
    return project_id


def _choice(label: str) -> dict[str, Any]:
    return {
        "from_name": "sentiment",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": [label]},
    }


def _run_setup(env: dict[str, str], log: Path) -> None:
    with log.open("wb") as handle:
        result = subprocess.run(
            [sys.executable, "-m", "deployments.setup"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=SETUP_TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        raise StackError(f"deployments/setup.py failed ({result.returncode}):\n{log_tail(log)}")


def _start_servers(
    state: State, ports: Ports, record: dict[str, Any], out: Callable[[str], None]
) -> labelstudio.LabelStudio:
    """The Prefect server and Label Studio, side by side; returns once both answer."""
    started = time.monotonic()
    venv = labelstudio.cache_dir() / "venv"
    if not (venv / ".labelvault-installed").is_file():
        out(f"installing Label Studio {labelstudio.LS_VERSION} in {venv} (once) …")
    log = state.logs / "prefect-server.log"
    server = prefect.spawn_server(state.prefect_home, ports.prefect, ui=True, log=log)
    state.record_process(record, "prefect-server", server.pid)

    def start_labelstudio() -> labelstudio.LabelStudio:
        ls = labelstudio.start_server(
            state.root / "labelstudio", port=ports.labelstudio, username=SAMPLE_OWNER
        )
        state.record_process(record, "labelstudio", ls.pid)
        return ls

    ls_start = _Background(start_labelstudio)
    try:
        prefect.wait_for_server(server, f"http://127.0.0.1:{ports.prefect}/api", log=log)
    except BaseException:
        # Let Label Studio's start finish, so the cleanup sees (and stops) it too.
        with contextlib.suppress(BaseException):
            ls_start.result()
        raise
    out(f"Prefect server: up ({time.monotonic() - started:.0f} s)")
    ls: labelstudio.LabelStudio = ls_start.result()
    out(f"Label Studio: up ({time.monotonic() - started:.0f} s)")
    return ls


def _baseline(connection: PlatformConnection, project_id: int, store: Path) -> None:
    """The sample project's first version, so the first change has a diff to show."""
    with Vault(LocalStore(store)) as vault:
        platform = open_platform(connection)
        try:
            vault.capture(platform, str(project_id), title="baseline (make up)")
        finally:
            platform.close()


def _register_webhook(
    connection: PlatformConnection, project_id: int, url: str, secret: str
) -> int:
    platform = open_platform(connection)
    try:
        hook = platform.register_webhook(  # type: ignore[attr-defined]
            str(project_id), url, headers={SECRET_HEADER: secret}
        )
    finally:
        platform.close()
    return int(hook.id)


def up(state: State, ports: Ports, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the stack in ``state`` and return its record (what ``stack.json`` holds)."""
    started = time.monotonic()
    state.fresh()
    record: dict[str, Any] = {"state_dir": str(state.root), "processes": {}}
    state.write(record)
    api_url = f"http://127.0.0.1:{ports.prefect}/api"
    bridge_url = f"http://127.0.0.1:{ports.bridge}"
    with _stopped_on_failure(state, out):
        ls = _start_servers(state, ports, record, out)
        project_id = create_sample_project(ls)
        connection = PlatformConnection(
            platform="labelstudio", server_url=ls.base_url, token=SecretStr(ls.token)
        )
        _baseline(connection, project_id, state.store)

        env = _without_settings(prefect.prefect_env(state.prefect_home, api_url))
        worker_log = state.log_of("worker")
        worker = prefect.spawn_worker(env, log=worker_log, code_dir=REPO, query_seconds=2.0)
        state.record_process(record, "worker", worker.pid)
        secret = secrets.token_urlsafe(24)
        bridge_log = state.log_of("bridge")
        bridge = _spawn_bridge(env, ports.bridge, bridge_log, secret, ls)
        state.record_process(record, "bridge", bridge.pid)

        _run_setup(
            {
                **env,
                "LABELVAULT_LABELSTUDIO_URL": ls.base_url,
                "LABELVAULT_LABELSTUDIO_TOKEN": ls.token,
                "LABELVAULT_STORE_URL": str(state.store),
                "LABELVAULT_NIGHTLY_PROJECT_ID": str(project_id),
                "LABELVAULT_NIGHTLY_CONNECTION": CONNECTION,
            },
            state.logs / "setup.log",
        )
        out(f"deployments: set up ({time.monotonic() - started:.0f} s)")
        webhook_id = _register_webhook(
            connection, project_id, f"{bridge_url}/webhooks/labelstudio/{CONNECTION}", secret
        )
        wait_until(
            lambda: _listens(bridge.pid, ports.bridge) and _answers(f"{bridge_url}/health"),
            timeout=BRIDGE_START_TIMEOUT,
            what="the webhook bridge",
            process=bridge,
            log=bridge_log,
        )
        prefect.wait_for_worker(worker, log=worker_log)
        check_running(state)

        ref = ProjectRef(
            platform="labelstudio",
            instance=instance_from_url(ls.base_url),
            project_id=str(project_id),
        )
        record.update(
            prefect_ui=f"http://127.0.0.1:{ports.prefect}",
            prefect_api_url=api_url,
            labelstudio_url=ls.base_url,
            labelstudio_login={"username": ls.username, "password": ls.password},
            labelstudio_token=ls.token,
            bridge_url=bridge_url,
            webhook_id=webhook_id,
            project_id=project_id,
            project_url=f"{ls.base_url}/projects/{project_id}/data",
            project_ref=ref.model_dump(),
            store=str(state.store),
            logs=str(state.logs),
            labelstudio_log=str(ls.log),
            up_seconds=round(time.monotonic() - started, 1),
        )
        state.write(record)
    return record


def check_running(state: State) -> None:
    """Fail (with its log) when a process ``up`` started has stopped before ``up`` ends."""
    _, stopped = status(state)
    if stopped:
        tails = "\n".join(
            f"--- {entry.name}\n{log_tail(state.log_of(entry.name))}" for entry in stopped
        )
        names = ", ".join(entry.name for entry in stopped)
        raise StackError(f"{names} stopped while the stack was starting:\n{tails}")


def describe(record: Mapping[str, Any]) -> str:
    """What ``up`` prints: where everything is and how to try it."""
    login = record["labelstudio_login"]
    return "\n".join(
        [
            f"  Prefect UI       {record['prefect_ui']}",
            f"  Label Studio     {record['labelstudio_url']}"
            f"   login {login['username']} / {login['password']}",
            f"  sample project   {record['project_url']}",
            f"  webhook bridge   {record['bridge_url']}"
            f"  (Label Studio webhook {record['webhook_id']})",
            f"  versions         {record['store']}",
            f"  logs, pid files  {record['state_dir']}",
            "",
            "Label a task in the sample project and submit: Label Studio's webhook reaches the",
            "bridge, the bridge emits labelvault.project.changed, the version-on-change",
            "automation starts a run on the worker, and about half a minute later the Prefect UI",
            "shows the run with the new version's summary and its diff as artifacts.",
            'The CLI on the same servers and store: eval "$(uv run python -m devstack env)",',
            f"then uv run labelvault --platform labelstudio versions {record['project_id']}.",
            "`make down` stops the stack.",
        ]
    )


def shell_env(record: Mapping[str, Any]) -> str:
    """``export`` lines that point Prefect's and labelvault's CLIs at the stack."""
    values = {
        "PREFECT_API_URL": record["prefect_api_url"],
        "PREFECT_HOME": str(Path(record["state_dir"]) / "prefect"),
        "LABELVAULT_LABELSTUDIO_URL": record["labelstudio_url"],
        "LABELVAULT_LABELSTUDIO_TOKEN": record["labelstudio_token"],
        "LABELVAULT_STORE_URL": record["store"],
    }
    return "\n".join(f"export {name}={shlex.quote(str(value))}" for name, value in values.items())


def main(argv: list[str] | None = None) -> int:
    """``python -m devstack up|down|status|env``."""
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LABELVAULT_STACK_DIR") or DEFAULT_STATE_DIR),
        help="where pid files, logs, the login and the versions go (default: .stack/)",
    )
    parser.add_argument("--prefect-port", type=int, help="default 4200; 0 for any free port")
    parser.add_argument("--labelstudio-port", type=int, help="default 8080; 0 for any free port")
    parser.add_argument("--bridge-port", type=int, help="default 8765; 0 for any free port")
    parser.add_argument("--free-ports", action="store_true", help="any free ports for all three")
    args = parser.parse_args(argv)
    state = State(args.state_dir)
    out = _printer()
    try:
        if args.command == "down":
            return down(state, out)
        running, stopped = status(state)
        record = state.read()
        if args.command == "env":
            if not (running and not stopped and record and "prefect_ui" in record):
                raise StackError("the stack is not up; run `make up` first")
            out(shell_env(record))
            return 0
        if args.command == "status":
            if running and not stopped and record and "prefect_ui" in record:
                out("the stack is up:\n" + describe(record))
                return 0
            out(_partly(running, stopped) if running else "the stack is down")
            return 0 if not running else 1
        if running and not stopped and record and "prefect_ui" in record:
            out("the stack is already up:\n" + describe(record))
            return 0
        if running:
            raise StackError(_partly(running, stopped) + "; run `make down` first")
        state.clear()
        ports = pick_ports(
            {
                "prefect-server": 0 if args.free_ports else args.prefect_port,
                "labelstudio": 0 if args.free_ports else args.labelstudio_port,
                "bridge": 0 if args.free_ports else args.bridge_port,
            },
            out,
        )
        record = up(state, ports, out)
        out(f"the stack is up ({record['up_seconds']:.0f} s):\n" + describe(record))
    except (StackError, RuntimeError) as error:
        print(f"make {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


def _partly(running: list[Recorded], stopped: list[Recorded]) -> str:
    names = ", ".join(entry.name for entry in running)
    gone = ", ".join(entry.name for entry in stopped) or "nothing"
    return f"the stack is partly up ({names} running; {gone} stopped)"


def _printer() -> Callable[[str], None]:
    def out(line: str) -> None:
        print(line, flush=True)

    return out
