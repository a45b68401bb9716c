"""``make down`` stops only what ``make up`` started: the pid files' bookkeeping, offline.

The processes here are ``sleep``s this test starts; the whole stack is
``tests/test_make_up.py``'s.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from devstack.stack import (
    Recorded,
    StackError,
    State,
    check_running,
    down,
    main,
    pick_ports,
    status,
)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own session, as ``make up`` starts them; killed after the test."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def record(state: State, name: str, pid: int, **changes: object) -> None:
    """What ``up`` writes for a process, optionally with some identity changed."""
    entry = state.read() or {"state_dir": str(state.root), "processes": {}}
    state.record_process(entry, name, pid)
    entry["processes"][name].update(changes)
    state.write(entry)


def lines(capture: list[str]) -> str:
    return "\n".join(capture)


def test_down_stops_the_recorded_process_and_forgets_it(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    state = State(tmp_path)
    record(state, "worker", sleeper.pid)
    said: list[str] = []
    assert down(state, said.append) == 0
    # down reaps it (it is this test's child): Popen sees only that it is gone.
    sleeper.wait(timeout=30)
    assert not psutil.pid_exists(sleeper.pid)
    assert "worker: stopped" in lines(said)
    assert not (tmp_path / "pids").exists()
    assert not (tmp_path / "stack.json").exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"create_time": 12345.0},
        {"cmdline": ["prefect", "worker", "start"]},
    ],
    ids=["another start time", "another command line"],
)
def test_down_leaves_a_process_that_is_not_the_one_up_started(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], changes: dict[str, object]
) -> None:
    state = State(tmp_path)
    record(state, "worker", sleeper.pid, **changes)
    said: list[str] = []
    assert down(state, said.append) == 0
    assert sleeper.poll() is None, "make down killed a process make up did not start"
    assert psutil.Process(sleeper.pid).is_running()
    assert "not running" in lines(said)
    assert not (tmp_path / "pids").exists()


def test_a_pid_file_without_its_record_is_never_signalled(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "bridge.pid").write_text(f"{sleeper.pid}\n")
    said: list[str] = []
    assert down(State(tmp_path), said.append) == 0
    assert sleeper.poll() is None


def test_down_when_down_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["down", "--state-dir", str(tmp_path)]) == 0
    assert "already down" in capsys.readouterr().out


def test_up_refuses_a_stack_that_is_partly_up(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    state = State(tmp_path)
    record(state, "worker", sleeper.pid)
    record(state, "bridge", sleeper.pid, create_time=12345.0)
    assert main(["up", "--state-dir", str(tmp_path), "--free-ports"]) == 1
    err = capsys.readouterr().err
    assert "partly up (worker running; bridge stopped)" in err
    assert "make down" in err
    assert sleeper.poll() is None
    assert (tmp_path / "pids" / "worker.pid").is_file()


def test_a_start_time_a_second_off_is_still_the_process(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """psutil adds the boot time read from /proc/stat, which can move by a whole second."""
    state = State(tmp_path)
    started = psutil.Process(sleeper.pid).create_time()
    record(state, "worker", sleeper.pid, create_time=started + 1.0)
    running, stopped = status(state)
    assert [entry.name for entry in running] == ["worker"]
    assert stopped == []


def test_free_ports_are_three_different_ports() -> None:
    for _ in range(20):
        ports = pick_ports({"prefect-server": 0, "labelstudio": 0, "bridge": 0}, print)
        assert len({ports.prefect, ports.labelstudio, ports.bridge}) == 3


def test_a_taken_port_is_replaced_by_one_no_other_server_gets() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said: list[str] = []
        ports = pick_ports({"prefect-server": port, "labelstudio": 0, "bridge": 0}, said.append)
    assert ports.prefect != port
    assert len({ports.prefect, ports.labelstudio, ports.bridge}) == 3
    assert f"prefect-server: port {port} is taken, using {ports.prefect}" in lines(said)


def test_a_process_that_stopped_while_starting_fails_up_with_its_log(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    state = State(tmp_path)
    state.fresh()
    exiting = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    record(state, "bridge", exiting.pid)
    record(state, "worker", sleeper.pid)
    state.log_of("bridge").write_text("bind failed: address in use\n")
    assert exiting.stdin is not None
    exiting.stdin.close()
    exiting.wait(timeout=30)
    with pytest.raises(StackError) as raised:
        check_running(state)
    assert "bridge stopped while the stack was starting" in str(raised.value)
    assert "bind failed: address in use" in str(raised.value)
    assert "worker" not in str(raised.value).split(":", 1)[0]


def test_a_command_line_read_before_exec_finished_is_read_again(
    sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Just after exec the kernel shows an empty command line for a moment."""
    real = psutil.Process.cmdline
    calls: list[int] = []

    def cmdline(self: psutil.Process) -> list[str]:
        calls.append(self.pid)
        return [] if len(calls) < 3 else real(self)

    monkeypatch.setattr(psutil.Process, "cmdline", cmdline)
    recorded = Recorded.of("worker", sleeper.pid)
    assert recorded.cmdline == real(psutil.Process(sleeper.pid))
    assert len(calls) == 3
    assert recorded.process() is not None


def test_a_process_that_never_shows_a_command_line_is_not_recorded(
    sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(psutil.Process, "cmdline", lambda self: [])
    monkeypatch.setattr("devstack.stack.CMDLINE_WAIT", 0.05)
    with pytest.raises(StackError, match="shows no command line"):
        Recorded.of("worker", sleeper.pid)
