"""Capture: one platform project → one committed version.

The protocol follows Supervisely's ``DataVersion``: reserve → write the snapshot → commit, and
"no change → return the existing version". A capture that fails or is killed at any point
leaves no visible version: chunks written before the failure are unreferenced (retention
collects them) and the reservation is cancelled, or expires if the process died.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from labelvault.catalog import Catalog, Reservation, VersionInfo, default_holder
from labelvault.catalog.reading import DAMAGE
from labelvault.models import ProjectRef
from labelvault.platforms.base import (
    HEAD_PARTITION,
    Partition,
    PartitionedPlatform,
    Platform,
    ProjectInfo,
)
from labelvault.snapshot.manifest import Manifest, SnapshotSource, write_manifest
from labelvault.snapshot.merge import merge_parts
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage import ObjectStore

__all__ = ["CaptureProgress", "CaptureResult", "capture_version", "project_ref"]

#: How often a partitioned capture reports progress and checks its lease.
_POLL_SECONDS = 0.5


class CaptureStopped(Exception):
    """A partition stopped because another one failed (the other's error is raised)."""


@dataclass(frozen=True)
class CaptureProgress:
    """Rows written so far, per table, and the item total the platform announced."""

    rows: dict[str, int]
    items_total: int | None

    @property
    def fraction(self) -> float | None:
        """Share of items captured, when the total is known."""
        if not self.items_total:
            return None
        return min(1.0, self.rows.get("items", 0) / self.items_total)


@dataclass(frozen=True)
class CaptureResult:
    """What a capture did: the version, and whether it is new."""

    version: VersionInfo
    created: bool
    project: ProjectInfo
    manifest: Manifest | None = None
    rows: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    bytes_reused: int = 0
    seconds: float = 0.0
    #: Captures it took to catch up with a project that changed while it was read.
    rounds: int = 1
    #: Numbers of the versions this capture committed, over all its rounds, oldest first.
    versions_created: tuple[int, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Plain values for logs, artifacts and flow results."""
        version = self.version
        items = self.rows.get("items", 0)
        return {
            "project": str(version.project),
            "platform": version.project.platform,
            "instance": version.project.instance,
            "project_id": version.project.project_id,
            "version": version.number,
            "version_id": version.id,
            "created": self.created,
            "reason": self.reason,
            "content_hash": version.content_hash,
            "rows": dict(self.rows),
            "bytes_written": self.bytes_written,
            "bytes_reused": self.bytes_reused,
            "seconds": round(self.seconds, 3),
            "items_per_second": round(items / self.seconds, 1) if self.seconds > 0 else None,
            "captures": self.rounds,
            "versions_created": list(self.versions_created),
        }

    @property
    def reason(self) -> str:
        """One line saying what happened, for logs and summaries."""
        number = self.version.number
        if self.created:
            created = self.versions_created or (number,)
            what = (
                f"created version {created[0]}"
                if len(created) == 1
                else f"created versions {', '.join(map(str, created))}"
            )
            if self.rounds > 1:
                what += f" ({self.rounds} captures: the project changed while it was read)"
            return what
        if self.manifest is None:
            return f"no change since version {number} (platform updated_at unchanged)"
        return f"no change since version {number} (same content)"


def project_ref(platform: Platform, project_id: str) -> ProjectRef:
    """The catalog identity of ``project_id`` on ``platform``'s server."""
    return ProjectRef(platform=platform.name, instance=platform.instance, project_id=project_id)


def capture_version(
    platform: Platform,
    project_id: str,
    *,
    store: ObjectStore,
    catalog: Catalog,
    title: str = "",
    description: str = "",
    tags: Sequence[str] = (),
    progress: Callable[[CaptureProgress], None] | None = None,
    parallel: int = 1,
) -> CaptureResult:
    """Capture ``project_id`` into a new version, or return the latest if nothing changed.

    With ``parallel`` above 1 and a platform that plans partitions, the partitions are read
    side by side by that many threads and merged (see :func:`_write_partitioned`).
    """
    started = time.monotonic()
    info = platform.get_project(project_id)
    ref = project_ref(platform, project_id)
    reserved = catalog.reserve(ref, source_updated_at=info.updated_at, holder=default_holder())
    if isinstance(reserved, VersionInfo):
        return CaptureResult(version=reserved, created=False, project=info)

    lease = _Lease(catalog, reserved)
    source = SnapshotSource(**ref.model_dump(), source_updated_at=info.updated_at)
    items_total = info.counts.get("items")
    try:
        job = _Job(platform, project_id, store, ref, source, lease, progress, items_total)
        if parallel > 1 and isinstance(platform, PartitionedPlatform):
            manifest = _write_partitioned(job, platform, parallel)
        else:
            manifest = _write_serial(job)
        reservation = lease.reservation
        # The manifest names its version, so a record pointing at it from elsewhere is caught.
        manifest = manifest.model_copy(update={"version_number": reservation.version_number})
        manifest_key = write_manifest(store, ref.prefix, manifest)
        committed = catalog.commit(
            reservation,
            manifest_key=manifest_key,
            content_hash=manifest.content_hash,
            title=title,
            description=description,
            tags=tags,
            source_updated_at=info.updated_at,
            stats={f"rows.{table}": count for table, count in manifest.row_counts.items()},
            manifest_sha256=hashlib.sha256(manifest.to_json()).hexdigest(),
        )
    except BaseException:
        catalog.cancel(lease.reservation)
        raise
    return CaptureResult(
        version=committed.version,
        created=committed.created,
        project=info,
        manifest=manifest,
        rows=manifest.row_counts,
        bytes_written=manifest.bytes_written,
        bytes_reused=manifest.bytes_reused,
        seconds=time.monotonic() - started,
    )


class _Lease:
    """The reservation of a capture, renewed when a third of its lease has passed."""

    def __init__(self, catalog: Catalog, reservation: Reservation) -> None:
        self.catalog = catalog
        self.reservation = reservation
        self._due = time.monotonic() + catalog.lease_seconds / 3

    def keep(self) -> None:
        """Renew the reservation if it is due."""
        if time.monotonic() >= self._due:
            self.reservation = self.catalog.renew(self.reservation)
            self._due = time.monotonic() + self.catalog.lease_seconds / 3


@dataclass(frozen=True)
class _Job:
    """One capture's settings, as the ways of writing its snapshot need them."""

    platform: Platform
    project_id: str
    store: ObjectStore
    ref: ProjectRef
    source: SnapshotSource
    lease: _Lease
    progress: Callable[[CaptureProgress], None] | None
    items_total: int | None

    def report(self, rows: dict[str, int]) -> None:
        if self.progress is not None:
            self.progress(CaptureProgress(rows=rows, items_total=self.items_total))


def _write_serial(job: _Job) -> Manifest:
    """The snapshot, page by page in one stream, as a delta against the latest version."""
    previous = previous_manifest(job.lease.catalog, job.ref)
    writer = SnapshotWriter(job.store, job.ref.prefix, source=job.source, previous=previous)
    with writer:
        for page in job.platform.iter_pages(job.project_id):
            writer.write(page.table, page.batch)
            job.report(writer.rows)
            job.lease.keep()
        return writer.finish()


def _write_partitioned(job: _Job, platform: PartitionedPlatform, parallel: int) -> Manifest:
    """The snapshot, each partition of the platform's plan written on its own by one of
    ``parallel`` threads, then merged in key order (see :mod:`labelvault.snapshot.merge`).

    The project's own rows (the head partition) are stored as a delta against the latest
    version, like a serial capture's; the other partitions as bases, whose content-defined
    chunk boundaries put rows unchanged since the last version in chunks the store already
    holds. The first failure stops the other partitions and is raised.
    """
    plan = platform.capture_plan(job.project_id)
    previous = previous_manifest(job.lease.catalog, job.ref)
    rows: dict[str, dict[str, int]] = {}
    stop = threading.Event()

    def capture_part(partition: Partition) -> Manifest:
        writer = SnapshotWriter(
            job.store,
            job.ref.prefix,
            source=job.source,
            previous=previous if partition.key == HEAD_PARTITION else None,
        )
        with writer:
            for page in platform.iter_partition(job.project_id, partition):
                if stop.is_set():
                    raise CaptureStopped(f"partition {partition.label!r} stopped")
                writer.write(page.table, page.batch)
                rows[partition.key] = writer.rows
            return writer.finish()

    def report() -> None:
        total: Counter[str] = Counter()
        for counts in list(rows.values()):
            total.update(counts)
        job.report(dict(total))

    with ThreadPoolExecutor(parallel, thread_name_prefix="partition") as pool:
        futures = [pool.submit(capture_part, partition) for partition in plan]
        try:
            pending: set[Future[Manifest]] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
                report()
                job.lease.keep()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    parts = [future.result() for future in futures]
    return merge_parts(
        job.store, job.ref.prefix, parts, source=job.source, shared=platform.shared_tables
    )


def previous_manifest(catalog: Catalog, ref: ProjectRef) -> Manifest | None:
    """The latest version's manifest, which a new version may store a delta against.

    ``None`` before the first version, and when the latest version cannot be read whole (a
    damaged version is never a base: the new version is then written whole).
    """
    try:
        latest = catalog.latest(ref)
        return None if latest is None else catalog.manifest(latest)
    except DAMAGE:
        return None


def wait_for_quiet(
    platform: Platform,
    project_id: str,
    *,
    quiet_seconds: float,
    max_wait_seconds: float,
    poll_seconds: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ProjectInfo:
    """Wait until the project's ``updated_at`` has not moved for ``quiet_seconds``.

    This is the trailing edge of a debounce: a burst of edits is captured once, after its
    last edit. Gives up waiting after ``max_wait_seconds`` (a project that never rests still
    gets versions) and returns the latest project info.
    """
    info = platform.get_project(project_id)
    started = last_change = clock()
    while clock() - last_change < quiet_seconds and clock() - started < max_wait_seconds:
        sleep(poll_seconds)
        current = platform.get_project(project_id)
        if current.updated_at != info.updated_at:
            info, last_change = current, clock()
    return info


def capture_until_current(
    platform: Platform,
    project_id: str,
    *,
    store: ObjectStore,
    catalog: Catalog,
    title: str = "",
    description: str = "",
    tags: Sequence[str] = (),
    progress: Callable[[CaptureProgress], None] | None = None,
    max_rounds: int = 3,
    parallel: int = 1,
) -> CaptureResult:
    """Capture, then capture again while the project changed during the previous capture.

    An edit that lands after a capture read the project but before the event that announced
    it is absorbed by the platform's throttle would otherwise wait for the next event; this
    makes the newest edit always end up in a version (up to ``max_rounds`` captures). Returns
    the last capture, with ``rounds`` set to the number of captures made, ``created`` true
    when any round committed a version (listed in ``versions_created``), and the bytes
    written and seconds spent over all rounds.
    """
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")
    started = time.monotonic()
    rounds, bytes_written = 0, 0
    created: list[int] = []
    while True:
        rounds += 1
        result = capture_version(
            platform,
            project_id,
            store=store,
            catalog=catalog,
            title=title,
            description=description,
            tags=tags,
            progress=progress,
            parallel=parallel,
        )
        bytes_written += result.bytes_written
        if result.created:
            created.append(result.version.number)
        now = platform.get_project(project_id).updated_at
        if rounds == max_rounds or now is None or now == result.project.updated_at:
            # A later round that found nothing new must not hide the version an earlier
            # round committed: the run made a version if any of its rounds did.
            return replace(
                result,
                created=bool(created),
                rounds=rounds,
                versions_created=tuple(created),
                bytes_written=bytes_written,
                seconds=time.monotonic() - started,
            )
