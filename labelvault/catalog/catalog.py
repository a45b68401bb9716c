"""The versions catalog: reserve → commit | cancel, and reading the history back.

It needs no server: it lives on the same :class:`~labelvault.storage.base.ObjectStore` as the
snapshots, and every mutation is one conditional write, so it behaves the same on a local
folder and on S3 shared by many machines. Under ``<project.prefix>/``:

``versions/<number:08d>.json``
    The version record (:class:`~labelvault.catalog.records.VersionRecord`), written once with
    ``put_if_absent`` by :meth:`Catalog.commit` and never rewritten. That single write is the
    moment a version exists. It carries the ``commit_token`` of the reservation that made it,
    so a commit retried after a lost response recognises its own record and reports success.
``meta/<number:08d>.json``
    The version's current title, description and tags, and the link to its preview project
    (:class:`~labelvault.catalog.records.VersionMeta`), written only by :meth:`Catalog.update`
    and :meth:`Catalog.link_preview` with compare-and-swap (``put_if_absent`` the first
    time, then ``put_if_match``) and merged over the record on every read. The record keeps
    the values given at commit time.
``lease.json``
    The reservation lease (see :mod:`labelvault.catalog.lease`): at most one holder per
    project; a crashed holder's lease is taken over after it expires.

Every read of a version (:meth:`Catalog.get`, :meth:`Catalog.list`, :meth:`Catalog.latest`,
:meth:`Catalog.manifest`) checks its record against the manifest it points at (see
:mod:`labelvault.catalog.integrity`). Damage stays local: :meth:`Catalog.list` returns the
versions that read back whole and names the damaged ones in ``.damaged``; a capture still
commits after a damaged latest version (it gets the next number, and is never "no change"
from a version that cannot be trusted).

Version numbers are ``latest + 1``, computed while holding the lease from a fresh listing of
``versions/`` (damaged records count, so no number is reused); nothing is cached between
calls. A number is never reused, because the latest
version is never deleted (:meth:`Catalog.delete_version` refuses it, and retention always keeps
it). Other versions may be deleted, leaving gaps.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from labelvault.catalog.editing import CatalogEdits
from labelvault.catalog.lease import (
    MAX_LEASE_SECONDS,
    CurrentLease,
    HolderState,
    LeaseStore,
    ReserveWait,
    default_holder,
    describe_holder,
    holder_state,
    lease_problem,
    this_process,
)
from labelvault.catalog.reading import (
    CAS_ATTEMPTS,
    DAMAGE,
    DamagedVersion,
    VersionList,
    tag_tuple,
)
from labelvault.catalog.records import (
    LeaseRecord,
    VersionRecord,
    dump_record,
    version_key,
)
from labelvault.errors import (
    AlreadyExists,
    CatalogError,
    LeaseHeld,
    LeaseLost,
)
from labelvault.models import CommitResult, ProjectRef, Reservation, VersionInfo, as_utc
from labelvault.storage.base import ObjectStore
from labelvault.storage.keys import validate_key

__all__ = ["BrokenLease", "Catalog", "DamagedVersion", "VersionList"]


log = logging.getLogger(__name__)

#: What makes one version unreadable without affecting the others.

_COMMIT_ATTEMPTS = 5
_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BrokenLease:
    """The lease :meth:`Catalog.unlock` removed: who held it, as far as can be told."""

    project: ProjectRef
    holder: str
    record: LeaseRecord | None
    state: HolderState
    problem: str | None = None

    def summary(self) -> dict[str, object]:
        """Plain values for logs and the command line."""
        record = self.record
        return {
            "project": str(self.project),
            "holder": self.holder,
            "state": self.state.value,
            "version": None if record is None else record.version_number,
            "expires_at": None if record is None else record.expires_at.isoformat(),
            "problem": self.problem,
        }


class Catalog(CatalogEdits):
    """The versions of every project on one object store.

    ``lease_seconds`` is how long a reservation lasts without :meth:`renew`; ``wait`` says how
    :meth:`reserve` waits for a reservation somebody else holds. ``clock`` (returning an aware
    datetime) and ``sleep`` are injectable for tests. The catalog keeps no state between calls,
    so one instance may be shared by threads.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        lease_seconds: float = 600.0,
        wait: ReserveWait | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not 0 < lease_seconds <= MAX_LEASE_SECONDS:
            raise ValueError(f"lease_seconds must be positive and at most {MAX_LEASE_SECONDS:g}")
        self.store = store
        self.lease_seconds = float(lease_seconds)
        self.wait = wait or ReserveWait()
        self._clock = clock or _utcnow
        self._sleep = sleep or time.sleep
        self._random = random.Random()
        self._leases = LeaseStore(store)

    def __repr__(self) -> str:
        return f"Catalog({self.store!r}, lease_seconds={self.lease_seconds:g})"

    # --- reserve / renew / cancel ------------------------------------------------------------

    def reserve(
        self,
        project: ProjectRef,
        *,
        source_updated_at: datetime | None = None,
        holder: str | None = None,
    ) -> Reservation | VersionInfo:
        """Reserve the next version of ``project``, waiting while somebody else holds it.

        When ``source_updated_at`` (the platform's ``updated_at`` now) equals that of the latest
        committed version, nothing changed since: returns that :class:`VersionInfo` ("use the
        existing version") and holds nothing. Otherwise returns a :class:`Reservation` to
        :meth:`commit` or :meth:`cancel`.

        Raises:
            LeaseHeld: the reservation stayed held by another caller for ``wait.max_wait``
                seconds; names the holder and until when.
        """
        holder = default_holder() if holder is None else holder
        wanted = None if source_updated_at is None else as_utc(source_updated_at)
        me = this_process()
        started = self._clock()
        waited = 0.0
        attempt = 0
        while True:
            top, latest = self._head(project)
            if _unchanged(latest, wanted):
                assert latest is not None
                return latest
            now = self.now()
            lease = LeaseRecord(
                holder=holder,
                token=uuid.uuid4().hex,
                version_number=top + 1,
                acquired_at=now,
                expires_at=now + timedelta(seconds=self.lease_seconds),
                host=me.host,
                host_id=me.host_id,
                pid=me.pid,
                pid_started=me.pid_started,
                lease_seconds=self.lease_seconds,
            )
            outcome = self._try_acquire(project, lease)
            if isinstance(outcome, str):
                return self._settle(project, lease, outcome, wanted)
            if outcome is None:  # the lease changed hands while we looked: try again now
                continue
            elapsed = max(waited, (self._clock() - started).total_seconds())
            held = outcome
            who = describe_holder(held)
            if elapsed >= self.wait.max_wait:
                raise LeaseHeld(
                    f"project {project} is reserved by {who} (version {held.version_number}) "
                    f"until {held.expires_at.isoformat()}; gave up after waiting {elapsed:.1f} s. "
                    "If that capture is gone, break its lease with `labelvault unlock`",
                    project=str(project),
                    holder=held.holder,
                    expires_at=held.expires_at.isoformat(),
                )
            if attempt == 0:
                log.info(
                    "project %s is reserved by %s until %s; waiting up to %.0f s",
                    project,
                    who,
                    held.expires_at.isoformat(),
                    self.wait.max_wait - elapsed,
                )
            until_expiry = (held.expires_at - self.now()).total_seconds()
            delay = min(
                self.wait.delay(attempt, self._random.random()),
                self.wait.max_wait - elapsed,
                max(until_expiry, 0.0),
            )
            self._sleep(delay)
            waited += delay
            attempt += 1

    def _try_acquire(self, project: ProjectRef, lease: LeaseRecord) -> str | LeaseRecord | None:
        """One attempt: the new etag when acquired, the blocking lease when it is held and
        must be honoured, ``None`` when it changed hands meanwhile."""
        etag = self._leases.create(project, lease)
        if etag is not None:
            return etag
        current = self._leases.read(project)
        if current is None:
            return None
        stale = self._stale(project, current)
        if stale is None:
            assert current.record is not None
            return current.record
        if stale:
            log.warning("taking over the lease of project %s: %s", project, stale)
        return self._leases.replace(project, lease, current.etag)

    def _stale(self, project: ProjectRef, current: CurrentLease) -> str | None:
        """Why ``current`` may be taken over now (``""`` when it merely expired), or ``None``
        when it must be honoured."""
        record = current.record
        if record is None:
            return f"the lease is unreadable ({current.problem})"
        now = self.now()
        problem = lease_problem(record, now, self.lease_seconds)
        if problem is not None:
            return f"the lease of {record.holder!r} is absurd: {problem}"
        state, why = holder_state(record)
        if state is HolderState.DEAD:
            return f"its holder {record.holder!r} (host {record.host}, pid {record.pid}) is {why}"
        if record.expires_at > now:
            return None
        return ""

    def _settle(
        self, project: ProjectRef, lease: LeaseRecord, etag: str, wanted: datetime | None
    ) -> Reservation | VersionInfo:
        """Holding the lease: check "no change" again and fix the version number if a commit
        landed between our listing and our acquiring."""
        try:
            top, latest = self._head(project)
            if _unchanged(latest, wanted):
                assert latest is not None
                self._leases.release(project, etag)
                return latest
            number = top + 1
            if number != lease.version_number:
                lease = lease.model_copy(update={"version_number": number})
                new_etag = self._leases.replace(project, lease, etag)
                if new_etag is None:
                    raise self._lost(project, number, "was taken over while it was being set up")
                etag = new_etag
        except BaseException:
            self._leases.release(project, etag)
            raise
        return Reservation(
            project=project,
            version_number=lease.version_number,
            commit_token=lease.token,
            holder=lease.holder,
            acquired_at=lease.acquired_at,
            expires_at=lease.expires_at,
            lease_etag=etag,
            source_updated_at=wanted,
        )

    def renew(self, reservation: Reservation) -> Reservation:
        """Extend the reservation by ``lease_seconds`` from now (a heartbeat for long captures).

        Raises:
            LeaseLost: the reservation was cancelled, committed or taken over.
        """
        project = reservation.project
        for _ in range(CAS_ATTEMPTS):
            current = self._own_lease(reservation)
            if current is None:
                raise self._lost(project, reservation.version_number, "cannot be renewed")
            assert current.record is not None
            me = this_process()
            record = current.record.model_copy(
                update={
                    "expires_at": self.now() + timedelta(seconds=self.lease_seconds),
                    "host": me.host,
                    "host_id": me.host_id,
                    "pid": me.pid,
                    "pid_started": me.pid_started,
                    "lease_seconds": self.lease_seconds,
                }
            )
            etag = self._leases.replace(project, record, current.etag)
            if etag is not None:
                return reservation.model_copy(
                    update={"expires_at": record.expires_at, "lease_etag": etag}
                )
        raise self._lost(project, reservation.version_number, "kept changing while renewing")

    def cancel(self, reservation: Reservation) -> None:
        """Give the reservation up. Idempotent: a reservation that is no longer held (already
        cancelled, committed or taken over) is left alone."""
        for _ in range(CAS_ATTEMPTS):
            current = self._own_lease(reservation)
            if current is None or self._leases.release(reservation.project, current.etag):
                return
        raise self._lost(
            reservation.project, reservation.version_number, "kept changing while cancelling"
        )

    def unlock(self, project: ProjectRef, *, force: bool = False) -> BrokenLease | None:
        """Break the project's lease on purpose; ``None`` when nobody holds it.

        Whoever held it loses it (its renew and commit raise ``LeaseLost``; no version is lost
        or duplicated, the record is written create-only). A holder that is alive on this host
        is left alone unless ``force``.

        Raises:
            LeaseHeld: the holder is alive on this host and ``force`` is off; names it.
            UnsupportedRecordVersion: the lease was written by a newer labelvault.
        """
        for _ in range(CAS_ATTEMPTS):
            current = self._leases.read(project)
            if current is None:
                return None
            record = current.record
            if record is None:
                broken = BrokenLease(
                    project, "an unreadable lease", None, HolderState.UNKNOWN, current.problem
                )
            else:
                state, _ = holder_state(record)
                who = describe_holder(record)
                if state is HolderState.ALIVE and not force:
                    raise LeaseHeld(
                        f"project {project} is reserved by {who} (version "
                        f"{record.version_number}) until {record.expires_at.isoformat()}; that "
                        "process still runs on this host, so the lease stays: stop it, or "
                        "break the lease anyway with --force",
                        project=str(project),
                        holder=record.holder,
                        expires_at=record.expires_at.isoformat(),
                    )
                problem = lease_problem(record, self.now(), self.lease_seconds)
                broken = BrokenLease(project, who, record, state, problem)
            if self._leases.release(project, current.etag):
                log.warning("broke the lease of project %s held by %s", project, broken.holder)
                return broken
        raise CatalogError(
            f"the lease of project {project} kept changing while being broken; try again",
            project=str(project),
        )

    def lease(self, project: ProjectRef) -> CurrentLease | None:
        """The project's lease as stored (``record`` is ``None`` when it is unreadable)."""
        return self._leases.read(project)

    def _own_lease(self, reservation: Reservation) -> CurrentLease | None:
        current = self._leases.read(reservation.project)
        if current is None or current.record is None:
            return None
        if current.record.token != reservation.commit_token:
            return None
        return current

    def _lost(self, project: ProjectRef, number: int, what: str) -> LeaseLost:
        return LeaseLost(
            f"the reservation of version {number} of project {project} {what}: it is no longer "
            "held (cancelled, committed, or expired and taken over by another capture)",
            project=str(project),
            version=number,
        )

    # --- commit ------------------------------------------------------------------------------

    def commit(
        self,
        reservation: Reservation,
        *,
        manifest_key: str,
        content_hash: str,
        title: str = "",
        description: str = "",
        tags: Sequence[str] = (),
        source_updated_at: datetime | None = None,
        stats: Mapping[str, int] | None = None,
        manifest_sha256: str | None = None,
    ) -> CommitResult:
        """Create the reserved version, write-once, and release the reservation.

        When ``content_hash`` equals the latest version's, nothing is committed: the lease is
        released and the latest version is returned with ``created=False``. A commit retried
        after its record already landed (say, the response was lost) finds its record by the
        commit token and returns it as a success. A lease that lapsed but that nobody took over
        is still the caller's: it is renewed (by compare-and-swap) before the record is
        written. ``source_updated_at`` defaults to the one given to :meth:`reserve`.

        ``manifest_sha256`` is the sha256 of the manifest's stored bytes; the record keeps it,
        and every read checks the manifest against it. A manifest with a digest is taken to
        name the reserved version number, so such a commit lands at that number or not at all.

        Raises:
            LeaseLost: the reservation is no longer held and its record never landed, or (with
                ``manifest_sha256``) its number was committed by another holder meanwhile.
        """
        project = reservation.project
        validate_key(manifest_key, store=self.store.name)
        tags = tag_tuple(tags)
        updated = reservation.source_updated_at if source_updated_at is None else source_updated_at
        for _ in range(_COMMIT_ATTEMPTS):
            current = self._own_lease(reservation)
            numbers = self._numbers(project)
            own = self._find_own(project, reservation, numbers)
            if own is not None:
                if current is not None:
                    self._leases.release(project, current.etag)
                return CommitResult(
                    version=own.info(self._read_meta(project, own.number)), created=True
                )
            if current is None:
                raise self._lost(project, reservation.version_number, "cannot commit")
            current = self._refresh(reservation, current)
            if current is None:
                continue  # it changed under us: look again
            latest = self._trusted(project, numbers[-1]) if numbers else None
            if latest is not None and latest.content_hash == content_hash:
                self._leases.release(project, current.etag)
                return CommitResult(version=latest, created=False)
            number = numbers[-1] + 1 if numbers else 1
            if manifest_sha256 is not None and number != reservation.version_number:
                self._leases.release(project, current.etag)
                raise self._lost(
                    project,
                    reservation.version_number,
                    f"cannot commit (version {number - 1} was committed by another capture while "
                    "its lease had lapsed); capture again",
                )
            record = VersionRecord(
                project=project,
                number=number,
                id=str(uuid.uuid4()),
                created_at=self.now(),
                title=title,
                description=description,
                tags=tags,
                manifest_key=manifest_key,
                content_hash=content_hash,
                source_updated_at=updated,
                stats=dict(stats or {}),
                commit_token=reservation.commit_token,
                manifest_sha256=manifest_sha256,
            )
            try:
                self.store.put_if_absent(version_key(project, record.number), dump_record(record))
            except AlreadyExists:
                continue  # an overrun lease let another holder commit this number: look again
            self._leases.release(project, current.etag)
            return CommitResult(version=record.info(), created=True)
        raise self._lost(project, reservation.version_number, "kept losing the version number")

    def _refresh(self, reservation: Reservation, current: CurrentLease) -> CurrentLease | None:
        """Renew a lease that has less than half its time left, so that a commit never runs on
        a lapsed lease; ``None`` when the lease changed meanwhile."""
        assert current.record is not None
        left = (current.record.expires_at - self.now()).total_seconds()
        if left >= self.lease_seconds / 2:
            return current
        record = current.record.model_copy(
            update={"expires_at": self.now() + timedelta(seconds=self.lease_seconds)}
        )
        etag = self._leases.replace(reservation.project, record, current.etag)
        return None if etag is None else CurrentLease(record, etag)

    def _find_own(
        self, project: ProjectRef, reservation: Reservation, numbers: Sequence[int]
    ) -> VersionRecord | None:
        """The record this reservation committed, if any (at its number or, after an overrun
        lease, a later one)."""
        for number in numbers:
            if number < reservation.version_number:
                continue
            try:
                record = self._read_record(project, number)
            except DAMAGE:
                continue  # unreadable: whoever wrote it, it cannot be trusted as ours
            if record is not None and record.commit_token == reservation.commit_token:
                return record
        return None


def _unchanged(latest: VersionInfo | None, wanted: datetime | None) -> bool:
    return (
        latest is not None
        and wanted is not None
        and latest.source_updated_at is not None
        and latest.source_updated_at == wanted
    )
