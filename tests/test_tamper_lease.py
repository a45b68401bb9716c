"""Leases that cannot be honoured, on every backend: garbage, absurd, and dead holders.

A lease that does not parse, expires further ahead than any lease reaches, or was written on
this host by a process that is gone, is taken over at once (no waiting: the fake clock never
sleeps). A live holder on this host, or any holder on another host, is waited for; the message
says which host and pid holds it and whether it is alive. ``unlock`` breaks a lease on purpose.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest

from labelvault.catalog import Catalog, HolderState, lease_key
from labelvault.catalog.lease import this_process
from labelvault.errors import LeaseHeld, LeaseLost
from labelvault.models import ProjectRef
from labelvault.storage.base import ObjectStore
from tests.catalog.backends import store
from tests.catalog.helpers import FakeClock, add_version, commit, fake_catalog, new_project, reserve

__all__ = ["store"]  # the backend fixture, imported for these tests


def put_lease(store: ObjectStore, project: ProjectRef, clock: FakeClock, **fields: Any) -> None:
    """Store a lease as some other process would have written it."""
    me = this_process()
    lease: dict[str, Any] = {
        "schema_version": 2,
        "holder": "someone",
        "token": "t" * 32,
        "version_number": 1,
        "acquired_at": clock.now.isoformat(),
        "expires_at": (clock.now + timedelta(seconds=30)).isoformat(),
        "host": me.host,
        "host_id": me.host_id,
        "pid": os.getpid(),
        "pid_started": me.pid_started,
        "lease_seconds": 60,
    }
    lease.update(fields)
    store.put(lease_key(project), json.dumps({k: v for k, v in lease.items() if v != ...}).encode())


def holder_of(store: ObjectStore, project: ProjectRef) -> str:
    holder: str = json.loads(store.get(lease_key(project)).data)["holder"]
    return holder


def dead_pid() -> int:
    """The pid of a child process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.mark.parametrize(
    "garbage",
    [b"{not json", b"[]", b'{"schema_version": 2, "holder": "x"}', b"\xff\xfe"],
    ids=["not-json", "not-an-object", "missing-fields", "not-utf8"],
)
def test_a_garbage_lease_is_taken_over_at_once(
    store: ObjectStore, clock: FakeClock, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    project = new_project()
    catalog = fake_catalog(store, clock)
    add_version(catalog, project, "a")
    store.put(lease_key(project), garbage)
    with caplog.at_level(logging.WARNING):
        taken = reserve(catalog, project, holder="me")
    assert clock.sleeps == []
    assert "lease is unreadable" in caplog.text
    assert commit(catalog, taken, "b").version.number == 2
    assert [v.number for v in catalog.list(project)] == [1, 2]


def test_a_far_future_lease_is_taken_over_at_once(
    store: ObjectStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    project = new_project()
    catalog = fake_catalog(store, clock)
    put_lease(store, project, clock, expires_at="2099-01-01T00:00:00+00:00", host="elsewhere")
    with caplog.at_level(logging.WARNING):
        taken = reserve(catalog, project, holder="me")
    assert clock.sleeps == []
    assert "absurd" in caplog.text
    assert "2099" in caplog.text
    assert holder_of(store, project) == "me"
    assert commit(catalog, taken, "a").version.number == 1


def test_a_lease_claiming_an_absurd_length_is_taken_over(
    store: ObjectStore, clock: FakeClock
) -> None:
    project = new_project()
    expires = (clock.now + timedelta(days=30)).isoformat()
    put_lease(store, project, clock, expires_at=expires, lease_seconds=90 * 24 * 3600)
    reserve(fake_catalog(store, clock), project, holder="me")
    assert clock.sleeps == []


def test_a_longer_lease_of_a_live_holder_is_honoured(store: ObjectStore, clock: FakeClock) -> None:
    project = new_project()
    reserve(fake_catalog(store, clock, lease_seconds=600), project, holder="long")
    with pytest.raises(LeaseHeld):
        reserve(fake_catalog(store, clock, lease_seconds=60, max_wait=5), project)


def test_a_dead_holder_on_this_host_is_taken_over_at_once(
    store: ObjectStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    project = new_project()
    catalog = fake_catalog(store, clock)
    add_version(catalog, project, "a")
    pid = dead_pid()
    put_lease(store, project, clock, holder="killed capture", pid=pid, pid_started=None)
    with caplog.at_level(logging.WARNING):
        taken = reserve(catalog, project, holder="me")
    assert clock.sleeps == []
    assert f"pid {pid}" in caplog.text
    assert "no longer running" in caplog.text
    assert commit(catalog, taken, "b").version.number == 2


def test_a_reused_pid_does_not_keep_a_dead_holders_lease(
    store: ObjectStore, clock: FakeClock
) -> None:
    me = this_process()
    if me.pid_started is None:
        pytest.skip("process start times are not available on this platform")
    project = new_project()
    put_lease(store, project, clock, pid=os.getpid(), pid_started=me.pid_started + 1)
    reserve(fake_catalog(store, clock), project, holder="me")
    assert clock.sleeps == []


def test_a_live_holder_on_this_host_is_waited_for_and_named(
    store: ObjectStore, clock: FakeClock
) -> None:
    project = new_project()
    put_lease(store, project, clock, holder="busy capture")
    with pytest.raises(LeaseHeld) as caught:
        reserve(fake_catalog(store, clock, max_wait=10), project)
    message = str(caught.value)
    assert f"host {socket.gethostname()}, pid {os.getpid()}, alive on this host" in message
    assert "labelvault unlock" in message
    assert clock.sleeps, "a live holder is waited for"


def test_a_holder_on_another_host_is_waited_for_until_expiry(
    store: ObjectStore, clock: FakeClock
) -> None:
    project = new_project()
    put_lease(store, project, clock, host="other-host", pid=dead_pid())
    with pytest.raises(LeaseHeld, match=r"host other-host, pid .*cannot tell whether it is alive"):
        reserve(fake_catalog(store, clock, max_wait=10), project)
    taken = reserve(fake_catalog(store, clock, max_wait=60), project, holder="me")
    assert sum(clock.sleeps) == pytest.approx(30.0)  # exactly until the lease expired
    assert taken.version_number == 1


def test_same_host_name_on_another_machine_is_not_judged(
    store: ObjectStore, clock: FakeClock
) -> None:
    project = new_project()
    put_lease(store, project, clock, host_id="another-boot/pid:[1]", pid=dead_pid())
    with pytest.raises(LeaseHeld, match="cannot tell"):
        reserve(fake_catalog(store, clock, max_wait=5), project)


def test_unlock_names_the_holder_and_refuses_a_live_one(
    store: ObjectStore, clock: FakeClock
) -> None:
    project = new_project()
    catalog = fake_catalog(store, clock)
    assert catalog.unlock(project) is None
    held = reserve(catalog, project, holder="running capture")
    with pytest.raises(LeaseHeld, match=r"still runs on this host.*--force"):
        catalog.unlock(project)
    broken = catalog.unlock(project, force=True)
    assert broken is not None
    assert broken.state is HolderState.ALIVE
    assert "running capture" in broken.holder
    assert broken.summary()["version"] == 1
    assert not store.exists(lease_key(project))
    with pytest.raises(LeaseLost):
        commit(catalog, held, "a")


@pytest.mark.parametrize("kind", ["dead", "other-host", "garbage"])
def test_unlock_breaks_leases_it_cannot_honour(
    store: ObjectStore, clock: FakeClock, kind: str
) -> None:
    project = new_project()
    if kind == "garbage":
        store.put(lease_key(project), b"garbage")
    else:
        host = "other-host" if kind == "other-host" else socket.gethostname()
        put_lease(store, project, clock, holder="gone", host=host, pid=dead_pid())
    broken = Catalog(store).unlock(project)
    assert broken is not None
    expected = {"dead": HolderState.DEAD, "other-host": HolderState.UNKNOWN}
    assert broken.state is expected.get(kind, HolderState.UNKNOWN)
    assert ("gone" in broken.holder) is (kind != "garbage")
    assert not store.exists(lease_key(project))


def test_a_lease_without_process_fields_is_still_honoured(
    store: ObjectStore, clock: FakeClock
) -> None:
    project = new_project()
    put_lease(
        store, project, clock, schema_version=1, host=..., host_id=..., pid=..., pid_started=...
    )
    raw = json.loads(store.get(lease_key(project)).data)
    assert "pid" not in raw
    with pytest.raises(LeaseHeld, match="'someone'"):
        reserve(fake_catalog(store, clock, max_wait=5), project)


def test_the_lease_records_this_process(store: ObjectStore, clock: FakeClock) -> None:
    project = new_project()
    reserve(fake_catalog(store, clock), project, holder="me")
    raw = json.loads(store.get(lease_key(project)).data)
    assert (raw["host"], raw["pid"]) == (socket.gethostname(), os.getpid())
    assert raw["lease_seconds"] == 60
    assert datetime.fromisoformat(raw["expires_at"]) == clock.now + timedelta(seconds=60)
