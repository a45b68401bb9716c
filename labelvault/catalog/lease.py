"""The reservation lease: one holder per project, taken over only by compare-and-swap.

The lease is the object ``<prefix>/lease.json``, a
:class:`~labelvault.catalog.records.LeaseRecord`. Every transition is one conditional write,
so it is atomic on every backend:

=================  ==========================================================================
acquire            ``put_if_absent``: exactly one of many racing callers creates it
take over          ``put_if_match`` on the etag of an *expired* lease: exactly one taker wins
renew              ``put_if_match`` on the etag of the caller's own lease
release            ``delete(if_match=etag)``: never removes a lease somebody else took over
=================  ==========================================================================

A caller that finds the lease held and unexpired waits with capped exponential backoff and
jitter (:class:`ReserveWait`), never sleeping past the lease's expiry, and gives up with
:class:`~labelvault.errors.LeaseHeld` after ``max_wait`` seconds. It does not wait for a lease
that cannot be honoured; such a lease is taken over at once (by the same compare-and-swap),
with a warning in the log:

- an unreadable lease (not JSON, missing fields) or an absurd one (expiring further ahead than
  a lease lasts, or before it was acquired);
- a lease whose process is gone: written on this host (same host name and, on Linux, the same
  boot and pid namespace) by a pid that no longer runs, or that now belongs to a process
  started at another time (the pid was reused).

A lease held from another host is honoured until it expires: its process cannot be seen.

Expiry is judged by the clock of the machine that reads the lease, so hosts that share a
store should keep their clocks roughly in sync (NTP); the lease duration should be far larger
than any skew. Even when a lease is overrun, no version is lost or duplicated: the version
record itself is written create-only.
"""

from __future__ import annotations

import enum
import functools
import os
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import Field

from labelvault.catalog.records import LeaseRecord, dump_record, lease_key, parse_record
from labelvault.errors import AlreadyExists, CorruptRecord, ObjectNotFound, PreconditionFailed
from labelvault.models import FrozenModel, ProjectRef
from labelvault.storage.base import ObjectStore

__all__ = [
    "MAX_LEASE_SECONDS",
    "CurrentLease",
    "HolderState",
    "LeaseStore",
    "ProcessIdentity",
    "ReserveWait",
    "default_holder",
    "describe_holder",
    "holder_state",
    "lease_problem",
    "this_process",
]

_MAX_EXPONENT = 64
#: How far a lease's expiry may lie beyond "now + lease length" before it counts as absurd:
#: room for clocks that are a little apart.
CLOCK_SKEW_ALLOWANCE = timedelta(seconds=60)
#: The longest a lease may last between renewals; a lease claiming more is absurd.
MAX_LEASE_SECONDS = 24 * 3600.0


def default_holder() -> str:
    """``host:pid`` of this process: who holds a lease, for humans reading errors."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ReserveWait(FrozenModel):
    """How ``reserve`` waits for a lease somebody else holds.

    The n-th sleep (from 0) is ``min(max_delay, initial * factor**n)``, shortened by a random
    fraction of at most ``jitter`` (so it never exceeds ``max_delay``), by the time left until
    the lease expires, and by the time left of ``max_wait``. After ``max_wait`` seconds in
    total, ``reserve`` raises :class:`~labelvault.errors.LeaseHeld`.
    """

    initial: float = Field(default=0.5, gt=0)
    factor: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=15.0, gt=0)
    max_wait: float = Field(default=120.0, ge=0)
    jitter: float = Field(default=0.2, ge=0, le=1)

    def delay(self, attempt: int, random_fraction: float) -> float:
        """The sleep before retry ``attempt`` (0-based); ``random_fraction`` is in [0, 1)."""
        nominal = min(self.max_delay, self.initial * self.factor ** min(attempt, _MAX_EXPONENT))
        return nominal * (1.0 - self.jitter * random_fraction)


@dataclass(frozen=True)
class ProcessIdentity:
    """Who this process is, as recorded in the leases it writes."""

    host: str
    host_id: str | None
    pid: int
    pid_started: int | None


def this_process() -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(socket.gethostname(), _host_id(), pid, _start_time(pid))


@functools.cache
def _host_id() -> str | None:
    """Boot id and pid namespace (Linux): equal only for processes that can see each other."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    _, _, rest = raw.rpartition(")")
    fields = rest.split()
    return fields if len(fields) > 19 else None


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of ``/proc/<pid>/stat``)."""
    fields = _proc_stat(pid)
    if fields is None:
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


class HolderState(enum.Enum):
    """What this process can tell about a lease's holder."""

    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


def holder_state(record: LeaseRecord) -> tuple[HolderState, str]:
    """Whether the process that wrote ``record`` still runs, and a phrase saying why.

    Only a holder on this host can be seen; anything else is :attr:`HolderState.UNKNOWN`.
    """
    me = this_process()
    if record.host is None or record.pid is None:
        return HolderState.UNKNOWN, "the lease does not name its process"
    if record.host != me.host or (
        record.host_id is not None and me.host_id is not None and record.host_id != me.host_id
    ):
        return HolderState.UNKNOWN, "on another host: cannot tell whether it is alive"
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return HolderState.UNKNOWN, "cannot check processes on this platform"
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return HolderState.DEAD, "no longer running"
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return HolderState.UNKNOWN, "cannot check the process"
    fields = _proc_stat(record.pid)
    if fields is not None and fields[0] in ("Z", "X"):
        return HolderState.DEAD, "exited (a zombie process)"
    if record.pid_started is not None:
        started = _start_time(record.pid)
        if started is not None and started != record.pid_started:
            return HolderState.DEAD, "exited (its pid now belongs to another process)"
    return HolderState.ALIVE, "alive on this host"


def describe_holder(record: LeaseRecord) -> str:
    """``'<holder>' (host H, pid P, <state>)``: who holds a lease, for messages."""
    if record.host is None or record.pid is None:
        return f"{record.holder!r}"
    _, why = holder_state(record)
    return f"{record.holder!r} (host {record.host}, pid {record.pid}, {why})"


def lease_problem(record: LeaseRecord, now: datetime, lease_seconds: float) -> str | None:
    """Why a parsed lease cannot be honoured, or ``None`` when it looks sane.

    A lease may reach ``now`` plus the longer of the reader's lease length and the one the
    lease says its writer uses (at most :data:`MAX_LEASE_SECONDS`), plus some clock skew.
    """
    length = lease_seconds
    if record.lease_seconds is not None:
        if record.lease_seconds > MAX_LEASE_SECONDS:
            return (
                f"it claims to last {record.lease_seconds:g} s, more than any lease may "
                f"({MAX_LEASE_SECONDS:g} s)"
            )
        length = max(length, record.lease_seconds)
    longest = now + timedelta(seconds=length) + CLOCK_SKEW_ALLOWANCE
    if record.expires_at > longest:
        return (
            f"it expires at {record.expires_at.isoformat()}, further ahead than a lease of "
            f"{length:g} s can reach"
        )
    if record.expires_at < record.acquired_at:
        return "it expires before it was acquired"
    return None


@dataclass(frozen=True)
class CurrentLease:
    """A lease as read from the store, with the etag to compare-and-swap against.

    ``record`` is ``None`` when the stored lease cannot be parsed; ``problem`` then says why.
    """

    record: LeaseRecord | None
    etag: str
    problem: str | None = None


class LeaseStore:
    """The four conditional operations on one store's lease objects."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def read(self, project: ProjectRef) -> CurrentLease | None:
        """The project's lease, or ``None`` when nobody holds it.

        A lease that does not parse comes back with ``record=None`` and the reason; one
        written by a newer labelvault raises
        :class:`~labelvault.errors.UnsupportedRecordVersion` (it is never trampled).
        """
        key = lease_key(project)
        try:
            stored = self.store.get(key)
        except ObjectNotFound:
            return None
        try:
            record = parse_record(LeaseRecord, stored.data, key=key, project=project)
        except CorruptRecord as exc:
            return CurrentLease(None, stored.etag, exc.message)
        return CurrentLease(record, stored.etag)

    def create(self, project: ProjectRef, record: LeaseRecord) -> str | None:
        """Take a free lease; the new etag, or ``None`` when a lease is already there."""
        try:
            return self.store.put_if_absent(lease_key(project), dump_record(record))
        except AlreadyExists:
            return None

    def replace(self, project: ProjectRef, record: LeaseRecord, etag: str) -> str | None:
        """Overwrite the lease read with ``etag``; the new etag, or ``None`` when it changed."""
        try:
            return self.store.put_if_match(lease_key(project), dump_record(record), etag)
        except (PreconditionFailed, ObjectNotFound):
            return None

    def release(self, project: ProjectRef, etag: str) -> bool:
        """Delete the lease read with ``etag``; ``False`` when it changed or is gone."""
        try:
            self.store.delete(lease_key(project), if_match=etag)
        except (PreconditionFailed, ObjectNotFound):
            return False
        return True
