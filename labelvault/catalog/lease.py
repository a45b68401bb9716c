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
:class:`~labelvault.errors.LeaseHeld` after ``max_wait`` seconds.

Expiry is judged by the clock of the machine that reads the lease, so hosts that share a
store should keep their clocks roughly in sync (NTP); the lease duration should be far larger
than any skew. Even when a lease is overrun, no version is lost or duplicated: the version
record itself is written create-only.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from pydantic import Field

from labelvault.catalog.records import LeaseRecord, dump_record, lease_key, parse_record
from labelvault.errors import AlreadyExists, ObjectNotFound, PreconditionFailed
from labelvault.models import FrozenModel, ProjectRef
from labelvault.storage.base import ObjectStore

__all__ = ["CurrentLease", "LeaseStore", "ReserveWait", "default_holder"]

_MAX_EXPONENT = 64


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
class CurrentLease:
    """A lease as read from the store, with the etag to compare-and-swap against."""

    record: LeaseRecord
    etag: str


class LeaseStore:
    """The four conditional operations on one store's lease objects."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def read(self, project: ProjectRef) -> CurrentLease | None:
        """The project's lease, or ``None`` when nobody holds it."""
        key = lease_key(project)
        try:
            stored = self.store.get(key)
        except ObjectNotFound:
            return None
        return CurrentLease(
            parse_record(LeaseRecord, stored.data, key=key, project=project), stored.etag
        )

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
