"""The restore engine: one entry for every platform, journaled and resumable.

A restore runs in three steps, which :func:`restore_version` chains (a flow runs them as
tasks): :func:`start_restore` claims the journal, plans the partitions and creates the project
and its datasets; :func:`restore_partition` restores one partition (run side by side, each
recording its steps in its own part of the journal); :func:`finish_restore` joins their
reports. A platform that restores in partitions (:class:`~labelvault.platforms.base.
PartitionedRestore`) gets a plan of item key ranges when more than one partition is asked
for; any other restores the whole version in one partition. The plan is recorded in the
journal, so a resume follows the plan the restore started with.

:func:`start_restore` checks the options against the version (a partial restore's datasets
and classes), claims the journal for this restore (a journal written by another restore, of
another version or filters is refused; another target only while the journal created no
project yet), returns the stored report of a restore that already finished, and otherwise
hands the version's tables to the platform's
:meth:`~labelvault.platforms.base.Platform.restore`, which records every finished step in the
journal. Its report is stored last, so asking again returns it; then the step records are
removed (see :mod:`labelvault.restore.journal`).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any

from labelvault.collector import fewer_collections
from labelvault.errors import ConfigurationError
from labelvault.models import RestoreOptions, RestoreReport, VersionOrigin
from labelvault.platforms.base import (
    WHOLE_PARTITION,
    Partition,
    PartitionedRestore,
    Platform,
    RangeReader,
    RestoreProgress,
    RestoreRequest,
    TableReader,
)
from labelvault.platforms.streams import Row, source_row, whole_range
from labelvault.restore.journal import StoreJournal
from labelvault.restore.report import report_from_json, report_to_json
from labelvault.restore.selection import select
from labelvault.storage.base import ObjectStore

__all__ = [
    "RestoreStart",
    "finish_restore",
    "restore_partition",
    "restore_version",
    "start_restore",
]

_JOURNAL_FORMAT = 2
#: What makes two runs the same restore; a journal of another restore is refused.
_IDENTITY = (
    "platform",
    "instance",
    "source_project_id",
    "version_number",
    "filters",
    "batch_size",
    "target",
)
#: The journal record of the plan (a step: compaction removes it).
PLAN_RECORD = "steps/plan.json"
#: Partitions planned per partition restored at once (so fast ones make up for slow ones).
PARTITIONS_PER_WORKER = 4
#: The whole version as one partition (a platform that does not partition, or one at a time).
_WHOLE = Partition(key=WHOLE_PARTITION, label="the whole version")
#: How the target options are spelled on the command line.
_OPTION_NAMES = {"workspace_id": "--workspace", "project_name": "--name"}


def _identity(
    target: Platform, origin: VersionOrigin, options: RestoreOptions, filters: Any
) -> dict[str, Any]:
    return {
        "format": _JOURNAL_FORMAT,
        "platform": target.name,
        "instance": target.instance,
        "source_project_id": origin.source_project_id,
        "version_number": origin.version_number,
        "version_id": origin.version_id,
        "filters": filters,
        "batch_size": options.batch_size,
        "target": {
            "workspace_id": options.workspace_id,
            "project_name": options.project_name,
        },
    }


def _check_identity(
    book: StoreJournal, stored: Mapping[str, Any], expected: Mapping[str, Any]
) -> bool:
    """Refuse a journal written by another restore; name every difference. A target option
    left unset on a resume takes the journal's value. New target options are taken while the
    journal has created no project yet (returns True: the caller re-claims the journal)."""
    prefix = book.prefix
    differ = [
        f"{name} {stored[name]!r}, not {expected[name]!r}"
        for name in _IDENTITY
        if name in stored and name != "target" and stored[name] != expected[name]
    ]
    if differ:
        raise ConfigurationError(
            f"restore journal {prefix} belongs to another restore ({'; '.join(differ)}); "
            "run it again with the options it was started with, or start a new restore "
            "(another restore id)"
        )
    journaled = stored.get("target") or {}
    retarget = [
        f"{_OPTION_NAMES.get(name, name)} "
        f"{'unset' if journaled.get(name) is None else repr(journaled.get(name))}, not {value!r}"
        for name, value in expected["target"].items()
        if value is not None and journaled.get(name) != value
    ]
    if not retarget:
        return False
    made = book.read("project.json")
    if made is None:
        return True
    raise ConfigurationError(
        f"restore journal {prefix} already created project {made.get('project_id')} with "
        f"other target options ({'; '.join(retarget)}); a resume cannot move it: run it again "
        "with the options it was started with, or start a new restore (another restore id)"
    )


@dataclass(frozen=True)
class RestoreStart:
    """A restore that has claimed its journal, planned its partitions and (when it restores
    in partitions) created its project and datasets: what the partitions and the finish
    need, as plain values (a task can pass it on)."""

    journal: str
    request: RestoreRequest
    partitions: tuple[Partition, ...]
    #: The project and datasets, when the restore runs in partitions.
    begun: RestoreReport | None = None


def start_restore(
    target: Platform,
    read_table: TableReader,
    *,
    store: ObjectStore,
    journal: str,
    origin: VersionOrigin,
    options: RestoreOptions,
    parallel: int = 1,
    read_range: RangeReader | None = None,
) -> RestoreStart | RestoreReport:
    """Claim the journal and plan the restore (``parallel`` partitions at once); the stored
    report when this restore already finished. See :func:`restore_version`."""
    given = [
        name.replace("_id", "").replace("_", " ")
        for name in target.restore_ignores
        if getattr(options, name) not in (None, False, ())
    ]
    if given:
        raise ConfigurationError(
            f"a {target.name} restore takes no {', '.join(given)}: it restores the whole "
            "version as one new project"
        )
    book = StoreJournal(store, journal)
    source = source_row(read_table)
    selection = select(read_table, source, options)
    expected = _identity(target, origin, options, selection.identity())
    claimed = book.read("restore.json")
    if claimed is None:
        book.record("restore.json", expected)
    elif _check_identity(book, claimed, expected):
        # Nothing was created under the old target (a workspace that did not exist, a name
        # that was taken): this run's target replaces it.
        book.forget("target.json", "restore.json")
        book.record("restore.json", expected)
    finished = book.read("report.json")
    if finished is not None:
        book.compact()  # a run killed between its report and its compaction
        return report_from_json(finished)
    request = RestoreRequest(origin=origin, options=options, selection=selection)
    partitions = _planned(
        book,
        target,
        read_range=read_range or whole_range(read_table),
        source=source,
        options=options,
        parallel=parallel,
    )
    if partitions == (_WHOLE,) or not isinstance(target, PartitionedRestore):
        return RestoreStart(journal=journal, request=request, partitions=(_WHOLE,))
    begun = target.begin_restore(read_table, request, book)
    return RestoreStart(journal=journal, request=request, partitions=partitions, begun=begun)


def _planned(
    book: StoreJournal,
    target: Platform,
    *,
    read_range: RangeReader,
    source: Row,
    options: RestoreOptions,
    parallel: int,
) -> tuple[Partition, ...]:
    """The journal's plan; else (a restore that created nothing yet) a new one, recorded."""
    recorded = book.read(PLAN_RECORD)
    if recorded is not None:
        return tuple(Partition(**part) for part in recorded["partitions"])
    if book.read("project.json") is not None:
        return (_WHOLE,)  # begun before restores were planned: in one partition, as begun
    if parallel > 1 and isinstance(target, PartitionedRestore):
        partitions = plan_partitions(
            read_range,
            cut=lambda key: target.restore_cut(source, key),
            parts=parallel * PARTITIONS_PER_WORKER,
            batch_size=options.batch_size,
        )
    else:
        partitions = (_WHOLE,)
    book.record(PLAN_RECORD, {"partitions": [asdict(part) for part in partitions]})
    return partitions


def plan_partitions(
    read_range: RangeReader, *, cut: Callable[[str], str], parts: int, batch_size: int
) -> tuple[Partition, ...]:
    """About ``parts`` partitions of the items, in key order: each the item keys in
    ``[start, stop)``, made of whole batches as a restore in one run makes them (a batch
    ends when it is full or its dataset does), and starting where ``cut`` allows. A
    partition's weight is its items. Memory holds the first key of every batch."""
    keys: list[str] = []  # the first key of every batch, and the items before it
    positions: list[int] = []
    total, filled, dataset = 0, 0, object()
    for batch in read_range("items", None, None):
        datasets = (
            batch.column("dataset_key").to_pylist()
            if "dataset_key" in batch.schema.names
            else [None] * batch.num_rows
        )
        for key, owner in zip(batch.column("key").to_pylist(), datasets, strict=True):
            if filled == batch_size or owner != dataset:
                keys.append(key)
                positions.append(total)
                filled, dataset = 0, owner
            filled += 1
            total += 1
    if total == 0:
        return (_WHOLE,)
    size = math.ceil(total / max(1, parts))
    starts: list[tuple[str, int]] = []
    last = 0  # where the last partition starts
    for key, position in zip(keys, positions, strict=True):
        if position < last + size:
            continue
        moved = cut(key)
        at = positions[bisect_left(keys, moved)] if moved != key else position
        if at > last:
            starts.append((moved, at))
            last = at
    bounds: list[str | None] = [None, *(key for key, _ in starts), None]
    before = [0, *(position for _, position in starts), total]
    count = len(bounds) - 1
    return tuple(
        Partition(
            key=f"p{index:05d}",
            label=f"part {index + 1} of {count}",
            weight=before[index + 1] - before[index],
            spec={"start": bounds[index], "stop": bounds[index + 1]},
        )
        for index in range(count)
    )


def restore_partition(
    target: Platform,
    read_range: RangeReader,
    *,
    store: ObjectStore,
    start: RestoreStart,
    partition: Partition,
    progress: RestoreProgress | None = None,
) -> RestoreReport:
    """Restore one partition of ``start``'s plan; its report (the whole report, for the
    whole version)."""
    book = StoreJournal(store, start.journal)
    with fewer_collections():
        if start.begun is None or partition.key == WHOLE_PARTITION:
            return target.restore(
                lambda table: read_range(table, None, None), start.request, book, progress
            )
        if not isinstance(target, PartitionedRestore):
            raise ConfigurationError(
                f"{target.name} restores a version whole and cannot restore partition "
                f"{partition.label!r}; start the restore again to plan it for this platform"
            )
        return target.restore_partition(
            read_range,
            start.request,
            book,
            begun=start.begun,
            partition=partition,
            progress=progress,
        )


def finish_restore(
    store: ObjectStore, start: RestoreStart, reports: Sequence[RestoreReport]
) -> RestoreReport:
    """Join the partitions' reports (in plan order), store the report and let the journal
    go of its steps; the restore's report."""
    if start.begun is None:
        if len(reports) != 1:
            raise ConfigurationError(
                f"a restore in one partition has one report, not {len(reports)}"
            )
        report = reports[0]
    else:
        report = start.begun.joined(*reports)
    book = StoreJournal(store, start.journal)
    book.record("report.json", report_to_json(report))
    book.compact()
    return report


def restore_version(
    target: Platform,
    read_table: TableReader,
    *,
    store: ObjectStore,
    journal: str,
    origin: VersionOrigin,
    options: RestoreOptions,
    progress: RestoreProgress | None = None,
    parallel: int = 1,
    read_range: RangeReader | None = None,
) -> RestoreReport:
    """Restore a version's tables into a new project on ``target``; see the module docstring.

    ``journal`` is the object-store prefix of this restore's journal (see
    :func:`~labelvault.restore.journal.journal_prefix`); calling again with the same journal
    resumes, or returns the report of a restore that already finished. ``parallel``
    partitions are restored at once by threads; ``read_range`` reads a key range of a table
    without reading it all (:meth:`~labelvault.snapshot.reader.SnapshotReader.iter_key_range`).

    Raises:
        RestoreError: the restore stopped; it names the created project and the progress.
        ConfigurationError: the journal belongs to another restore, a dataset or class to
            restore is not in the version, or the version is invalid.
    """
    ranges = read_range or whole_range(read_table)
    start = start_restore(
        target,
        read_table,
        store=store,
        journal=journal,
        origin=origin,
        options=options,
        parallel=parallel,
        read_range=ranges,
    )
    if isinstance(start, RestoreReport):
        return start
    reports = _side_by_side(
        target, ranges, store=store, start=start, parallel=parallel, progress=progress
    )
    return finish_restore(store, start, reports)


def _side_by_side(
    target: Platform,
    read_range: RangeReader,
    *,
    store: ObjectStore,
    start: RestoreStart,
    parallel: int,
    progress: RestoreProgress | None,
) -> list[RestoreReport]:
    """The partitions of ``start``'s plan, ``parallel`` at a time, in plan order. After the
    first failure no other partition starts; it is raised once the running ones stopped.
    ``progress`` hears the sums over all partitions, from one thread at a time."""
    created: dict[str, Mapping[str, int]] = {}
    head = dict(start.begun.created) if start.begun is not None else {}
    one_at_a_time = threading.Lock()

    def run(partition: Partition) -> RestoreReport:
        def heard(counts: Mapping[str, int]) -> None:
            with one_at_a_time:
                created[partition.key] = dict(counts)
                if progress is not None:
                    total = dict(head)
                    for part in created.values():
                        for table, count in part.items():
                            total[table] = total.get(table, 0) + count
                    progress(total)

        return restore_partition(
            target, read_range, store=store, start=start, partition=partition, progress=heard
        )

    threads = max(1, min(parallel, len(start.partitions)))
    with ThreadPoolExecutor(threads, thread_name_prefix="restore") as pool:
        futures = [pool.submit(run, partition) for partition in start.partitions]
        wait(futures, return_when=FIRST_EXCEPTION)
        errors = [
            error
            for future in futures
            if future.done() and not future.cancelled() and (error := future.exception())
        ]
        if errors:
            for future in futures:
                future.cancel()
    if errors:  # raised once the running partitions stopped
        raise errors[0]
    return [future.result() for future in futures]
