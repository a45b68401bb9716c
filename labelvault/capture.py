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
from labelvault.collector import fewer_collections
from labelvault.errors import ConfigurationError, IntegrityError
from labelvault.models import ProjectRef
from labelvault.platforms.base import (
    HEAD_PARTITION,
    WHOLE_PARTITION,
    Partition,
    PartitionedPlatform,
    Platform,
    ProjectInfo,
)
from labelvault.readahead import read_ahead
from labelvault.snapshot.manifest import Manifest, SnapshotSource, write_manifest
from labelvault.snapshot.merge import merge_parts
from labelvault.snapshot.schema import TABLES
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage import ObjectStore

__all__ = [
    "CaptureLease",
    "CaptureProgress",
    "CaptureResult",
    "CaptureStart",
    "PartitionProgress",
    "capture_partition",
    "capture_version",
    "commit_capture",
    "project_ref",
    "start_capture",
]

#: Pages a capture fetches ahead of the one its writer encodes.
READ_AHEAD_PAGES = 2

#: How often a partitioned capture reports progress and checks its lease.
_POLL_SECONDS = 0.5


class CaptureStopped(Exception):
    """A partition stopped because another one failed (the other's error is raised)."""


@dataclass(frozen=True)
class PartitionProgress:
    """How far one partition of a partitioned capture is."""

    label: str
    #: Items written so far.
    items: int
    #: Items it holds, as far as the platform said when it was planned (0: unknown).
    weight: int
    done: bool = False


@dataclass(frozen=True)
class CaptureProgress:
    """Rows written so far, per table, and the item total the platform announced; in a
    partitioned capture, each started partition's progress too (in plan order)."""

    rows: dict[str, int]
    items_total: int | None
    partitions: tuple[PartitionProgress, ...] = ()

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
    side by side by that many threads and merged; otherwise the project is read in one
    stream. Both are :func:`start_capture` → :func:`capture_partition` per partition →
    :func:`commit_capture`, the steps a Prefect flow runs as tasks.
    """
    started = time.monotonic()
    begun = start_capture(platform, project_id, catalog=catalog, parallel=parallel)
    if isinstance(begun, CaptureResult):
        return begun
    lease = CaptureLease(catalog, begun)
    try:
        if len(begun.partitions) == 1:
            [only] = begun.partitions
            parts = [
                capture_partition(
                    platform,
                    begun,
                    only,
                    store=store,
                    catalog=catalog,
                    progress=lambda rows: begun.report(progress, rows),
                    keep=lease.keep,
                )
            ]
        else:
            parts = _capture_side_by_side(
                platform, begun, store, lease, parallel=parallel, progress=progress
            )
        return commit_capture(
            lease.current,
            parts,
            store=store,
            catalog=catalog,
            title=title,
            description=description,
            tags=tags,
            started=started,
        )
    except BaseException:
        catalog.cancel(lease.current.reservation)
        raise


@dataclass(frozen=True)
class CaptureStart:
    """A capture that holds the reservation of its version and has planned its partitions:
    what the partitions and the commit need, as plain values (a task can pass it on)."""

    project: ProjectInfo
    ref: ProjectRef
    reservation: Reservation
    source: SnapshotSource
    partitions: tuple[Partition, ...]
    #: Tables whose rows several partitions may hold (see :mod:`labelvault.snapshot.merge`).
    shared_tables: frozenset[str] = frozenset()
    #: Tables the partitions with a key range hold, each its range of them.
    ranged_tables: frozenset[str] = frozenset()

    def report(
        self,
        progress: Callable[[CaptureProgress], None] | None,
        rows: dict[str, int],
        partitions: tuple[PartitionProgress, ...] = (),
    ) -> None:
        """Tell ``progress`` the rows written so far."""
        if progress is not None:
            items_total = self.project.counts.get("items")
            progress(CaptureProgress(rows=rows, items_total=items_total, partitions=partitions))


def start_capture(
    platform: Platform, project_id: str, *, catalog: Catalog, parallel: int = 1
) -> CaptureStart | CaptureResult:
    """Reserve the next version and plan the capture; or, when the platform says nothing
    changed since the latest version, that version (as a result that created nothing)."""
    info = platform.get_project(project_id)
    ref = project_ref(platform, project_id)
    reserved = catalog.reserve(ref, source_updated_at=info.updated_at, holder=default_holder())
    if isinstance(reserved, VersionInfo):
        return CaptureResult(version=reserved, created=False, project=info)
    try:
        if parallel > 1 and isinstance(platform, PartitionedPlatform):
            partitions = tuple(platform.capture_plan(project_id))
        else:
            partitions = (Partition(key=WHOLE_PARTITION, label="the whole project"),)
    except BaseException:
        catalog.cancel(reserved)
        raise
    shared = frozenset(getattr(platform, "shared_tables", ()))
    ranged: frozenset[str] = frozenset()
    if any(partition.key_range is not None for partition in partitions):
        ranged = frozenset(TABLES) - shared - frozenset(getattr(platform, "head_tables", ()))
    return CaptureStart(
        project=info,
        ref=ref,
        reservation=reserved,
        source=SnapshotSource(**ref.model_dump(), source_updated_at=info.updated_at),
        partitions=partitions,
        shared_tables=shared,
        ranged_tables=ranged,
    )


def capture_partition(
    platform: Platform,
    start: CaptureStart,
    partition: Partition,
    *,
    store: ObjectStore,
    catalog: Catalog,
    progress: Callable[[dict[str, int]], None] | None = None,
    keep: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> Manifest:
    """Write one partition of ``start``'s plan into chunks; its manifest (not stored).

    The head partition, a plan's only partition and a partition with a key range are stored
    as a delta against the latest version (a partition with a key range: against that
    version's rows in its range); others whole.
    ``progress`` hears the rows written so far, ``keep`` is called after every page (to renew
    the lease), and a set ``stop`` ends the partition.
    """
    alone = len(start.partitions) == 1
    previous = None
    if alone or partition.key == HEAD_PARTITION or partition.key_range is not None:
        previous = previous_manifest(catalog, start.ref)
    if partition.key == WHOLE_PARTITION:
        pages = platform.iter_pages(start.ref.project_id)
    elif isinstance(platform, PartitionedPlatform):
        pages = platform.iter_partition(start.ref.project_id, partition)
    else:
        raise ConfigurationError(
            f"{platform.name} captures a project whole and cannot capture partition"
            f" {partition.label!r}; start the capture again to plan it for this platform"
        )
    writer = SnapshotWriter(
        store,
        start.ref.prefix,
        source=start.source,
        previous=previous,
        key_range=partition.key_range,
        ranged_tables=start.ranged_tables,
    )
    with fewer_collections(), writer:
        # The next pages are fetched while the writer encodes this one.
        for page in read_ahead(pages, depth=READ_AHEAD_PAGES):
            if stop is not None and stop.is_set():
                raise CaptureStopped(f"partition {partition.label!r} stopped")
            writer.write(page.table, page.batch)
            if progress is not None:
                progress(writer.rows)
            if keep is not None:
                keep()
        return writer.finish()


def commit_capture(
    start: CaptureStart,
    parts: Sequence[Manifest],
    *,
    store: ObjectStore,
    catalog: Catalog,
    title: str = "",
    description: str = "",
    tags: Sequence[str] = (),
    started: float | None = None,
    check_chunks: bool = False,
) -> CaptureResult:
    """Merge the partitions' manifests (in plan order), store the manifest and commit the
    version; an unchanged content returns the latest version. The caller cancels the
    reservation when this fails.

    ``check_chunks``: first make sure every chunk the parts name is still stored (parts kept
    from an earlier attempt may be older than retention's grace period).
    """
    if check_chunks:
        _check_chunks(store, parts)
    if len(parts) > 1:
        ranges = [partition.key_range for partition in start.partitions]
        manifest = merge_parts(
            store,
            start.ref.prefix,
            parts,
            source=start.source,
            shared=start.shared_tables,
            ranges=ranges,
            ranged_tables=start.ranged_tables,
            previous=previous_manifest(catalog, start.ref) if any(ranges) else None,
        )
    else:
        [manifest] = parts
    reservation = start.reservation
    # The manifest names its version, so a record pointing at it from elsewhere is caught.
    manifest = manifest.model_copy(update={"version_number": reservation.version_number})
    manifest_key = write_manifest(store, start.ref.prefix, manifest)
    committed = catalog.commit(
        reservation,
        manifest_key=manifest_key,
        content_hash=manifest.content_hash,
        title=title,
        description=description,
        tags=tags,
        source_updated_at=start.project.updated_at,
        stats={f"rows.{table}": count for table, count in manifest.row_counts.items()},
        manifest_sha256=hashlib.sha256(manifest.to_json()).hexdigest(),
    )
    return CaptureResult(
        version=committed.version,
        created=committed.created,
        project=start.project,
        manifest=manifest,
        rows=manifest.row_counts,
        bytes_written=manifest.bytes_written,
        bytes_reused=manifest.bytes_reused,
        seconds=0.0 if started is None else time.monotonic() - started,
    )


def _check_chunks(store: ObjectStore, parts: Sequence[Manifest]) -> None:
    for part in parts:
        for entry in part.tables.values():
            for chunk in entry.all_chunks:
                if not store.exists(chunk.key):
                    raise IntegrityError(
                        f"chunk {chunk.key} of a captured partition is gone (collected since "
                        "it was written); capture the project again"
                    )


class CaptureLease:
    """A capture's reservation, renewed when a third of its lease has passed: whoever waits
    for the partitions calls :meth:`keep`, and commits :attr:`current`."""

    def __init__(self, catalog: Catalog, start: CaptureStart) -> None:
        self.catalog = catalog
        self.current = start
        self._due = time.monotonic() + catalog.lease_seconds / 3

    def keep(self) -> None:
        """Renew the reservation if it is due."""
        if time.monotonic() >= self._due:
            renewed = self.catalog.renew(self.current.reservation)
            self.current = replace(self.current, reservation=renewed)
            self._due = time.monotonic() + self.catalog.lease_seconds / 3


def _capture_side_by_side(
    platform: Platform,
    start: CaptureStart,
    store: ObjectStore,
    lease: CaptureLease,
    *,
    parallel: int,
    progress: Callable[[CaptureProgress], None] | None,
) -> list[Manifest]:
    """The partitions of ``start``'s plan, each written by one of ``parallel`` threads, in
    plan order. The first failure stops the other partitions and is raised."""
    rows: dict[str, dict[str, int]] = {}
    finished: set[str] = set()
    stop = threading.Event()

    def capture_part(partition: Partition) -> Manifest:
        def note(counts: dict[str, int]) -> None:
            rows[partition.key] = counts

        rows[partition.key] = {}
        manifest = capture_partition(
            platform, start, partition, store=store, catalog=lease.catalog, progress=note, stop=stop
        )
        finished.add(partition.key)
        return manifest

    def report() -> None:
        total: Counter[str] = Counter()
        for counts in list(rows.values()):
            total.update(counts)
        started = [
            PartitionProgress(
                label=partition.label,
                items=rows[partition.key].get("items", 0),
                weight=partition.weight,
                done=partition.key in finished,
            )
            for partition in start.partitions
            if partition.key in rows and partition.key != HEAD_PARTITION
        ]
        start.report(progress, dict(total), tuple(started))

    with ThreadPoolExecutor(parallel, thread_name_prefix="partition") as pool:
        futures = [pool.submit(capture_part, partition) for partition in start.partitions]
        try:
            pending: set[Future[Manifest]] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
                report()
                lease.keep()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return [future.result() for future in futures]


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
