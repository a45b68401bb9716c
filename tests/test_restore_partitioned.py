"""A restore in partitions: the project and datasets first, then ranges of items restored side
by side, each journaled in its own part; resumable, and equal to a restore in one run."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest

from labelvault.errors import ConfigurationError
from labelvault.models import ProjectInfo, RestoreOptions, RestoreReport
from labelvault.platforms.base import WHOLE_PARTITION, Partition
from labelvault.platforms.streams import whole_range
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.restore.engine import (
    RestoreStart,
    finish_restore,
    plan_partitions,
    restore_partition,
    start_restore,
)
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.memory import MemoryStore
from tests.at_once import AtOnce
from tests.fakes.supervisely import FakeSupervisely, RichProject, capture_tables, table_reader
from tests.test_restore import (  # the fixtures too: the same project, restored in parts
    Killed,
    KillingStore,
    Tables,
    fake,
    fingerprint_multisets,
    origin,
    platform,
    project_names,
    restore,
    rich,
    source,
)

JOURNAL = "supervisely/restores/parts"
__all__ = ["fake", "platform", "rich", "source"]  # fixtures used by name


class PlanKeepingStore(KillingStore):
    """A store that keeps the restore's plan after the journal let go of its steps."""

    def __init__(self, fragment: str = "never written") -> None:
        super().__init__(fragment)
        self.plan: list[dict[str, Any]] = []

    def put_if_absent(self, key: str, data: bytes) -> str:
        if key.endswith("/steps/plan.json"):
            self.plan = json.loads(data)["partitions"]
        return super().put_if_absent(key, data)


def begin(
    platform: SuperviselyPlatform,
    source: Tables,
    rich: RichProject,
    store: MemoryStore,
    parallel: int = 3,
) -> RestoreStart:
    started = start_restore(
        platform,
        table_reader(source),
        store=store,
        journal=JOURNAL,
        origin=origin(rich),
        options=RestoreOptions(batch_size=4),
        parallel=parallel,
    )
    assert isinstance(started, RestoreStart)
    return started


def test_a_restore_in_partitions_equals_one_in_one_run(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    fake.calls.clear()
    serial = restore(platform, source, rich, journal="supervisely/restores/serial")
    sent = Counter(fake.methods_called())
    fake.calls.clear()
    store = PlanKeepingStore()
    report = restore(
        platform, source, rich, store=store, journal=JOURNAL, parallel=3, project_name="parts"
    )
    plan = store.plan
    assert len(plan) > 3  # several per thread
    assert plan[0]["spec"]["start"] is None
    assert plan[-1]["spec"]["stop"] is None
    for before, after in itertools.pairwise(plan):
        assert before["spec"]["stop"] == after["spec"]["start"] is not None
    assert report.failures == ()
    assert report.skipped == ()
    assert report.created == serial.created
    in_parts = Counter(fake.methods_called())
    for method in ("images.bulk.add", "figures.bulk.add", "tags.entities.bulk.add"):
        assert in_parts[method] == sent[method] > 0, method  # the same batches
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)
    # every partition recorded its batches in its own part of the journal (then compacted)
    assert not list(store.list(f"{JOURNAL}/steps/"))


def test_partitions_run_apart_each_with_a_platform_of_its_own(
    fake: FakeSupervisely, rich: RichProject, source: Tables
) -> None:
    """As tasks on other machines run them: each partition opens its own client and learns
    the project's definitions itself; only plain values pass between the steps."""
    store = MemoryStore()
    fake.calls.clear()
    started = begin(fake.platform(batch_size=4), source, rich, store)
    assert started.begun is not None
    assert started.begun.created["datasets"] == 6
    reports = []
    for partition in started.partitions:
        worker = fake.platform(batch_size=4)
        reports.append(
            restore_partition(
                worker,
                whole_range(table_reader(source)),
                store=store,
                start=started,
                partition=partition,
            )
        )
        worker.close()
    report = finish_restore(store, started, reports)
    assert report.created["items"] == 30
    # the project's meta and settings were written once; the partitions only read them back
    written = fake.methods_called()
    assert written.count("projects.meta.update") == written.count("projects.settings.update") == 1
    assert written.count("projects.meta") == 1 + len(started.partitions)
    again = capture_tables(fake.platform(), report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)


def test_a_killed_partition_resumes_alone(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    """Killed in one partition, the restore resumes: the finished partitions write nothing
    again, the killed one adopts what landed, and the plan stays the one it started with."""
    restore(platform, source, rich, journal="supervisely/restores/serial", project_name="one")
    batches = fake.methods_called().count("images.bulk.add")
    store = PlanKeepingStore("steps/p00003/b00000000-2-annotations")
    with pytest.raises(Killed):
        restore(platform, source, rich, store=store, journal=JOURNAL, parallel=2)
    assert len(store.plan) > 3
    journaled = [info.key for info in store.list(f"{JOURNAL}/steps/")]
    items_done = len([key for key in journaled if key.endswith("-items.json")])
    assert 0 < items_done < batches
    fake.calls.clear()
    report = restore(platform, source, rich, store=store, journal=JOURNAL, parallel=1)
    assert report.resumed
    assert fake.methods_called().count("images.bulk.add") == batches - items_done
    assert fake.methods_called().count("projects.add") == 0
    assert project_names(fake).count("Проект λ — rich 🚀, from ver. 3") == 1
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)  # nothing twice


def test_a_journal_begun_without_a_plan_resumes_in_one_run(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    """A restore begun before restores were planned (its journal has no plan) resumes as
    it began, in one run, whatever parallelism the resume asks for."""
    store = KillingStore("steps/b00000002-1-items")
    with pytest.raises(Killed):
        restore(platform, source, rich, store=store, journal=JOURNAL)
    store.delete(f"{JOURNAL}/steps/plan.json")
    report = restore(platform, source, rich, store=store, journal=JOURNAL, parallel=4)
    assert report.resumed
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)


def test_the_plan_cuts_whole_batches_where_the_platform_allows() -> None:
    """Partitions are made of the batches a restore in one run sends (a batch ends when it
    is full or its dataset does), so a restore in partitions sends the same requests."""
    keys = [f"d{dataset}#{item:04d}" for dataset in range(3) for item in range(10)]
    table = pa.table({"key": keys, "dataset_key": [key[:2] for key in keys]})

    def read(name: str, start: str | None, stop: str | None) -> Any:
        assert name == "items"
        return iter(table.to_batches(max_chunksize=7))

    # batches start at items 0 3 6 9 | 10 13 16 19 | 20 23 26 29
    anywhere = plan_partitions(read, cut=lambda key: key, parts=5, batch_size=3)
    starts = [part.spec["start"] for part in anywhere]
    assert starts == [None, "d0#0006", "d1#0003", "d1#0009", "d2#0006"]
    assert [part.spec["stop"] for part in anywhere] == [*starts[1:], None]
    assert [part.weight for part in anywhere] == [6, 7, 6, 7, 4]
    by_dataset = plan_partitions(
        read, cut=lambda key: key[: key.index("#") + 1], parts=5, batch_size=3
    )
    assert [part.spec["start"] for part in by_dataset] == [None, "d1#", "d2#"]
    assert [part.weight for part in by_dataset] == [10, 10, 10]
    assert plan_partitions(lambda *_: iter(()), cut=str, parts=4, batch_size=3) == (
        Partition(key=WHOLE_PARTITION, label="the whole version"),
    )


def test_a_key_range_of_a_version_reads_only_its_rows(
    platform: SuperviselyPlatform, rich: RichProject
) -> None:
    store = MemoryStore()
    writer = SnapshotWriter(
        store,
        "supervisely/sly.test/1",
        source={"platform": "supervisely", "instance": "sly.test:80", "project_id": "1"},
        target_chunk_rows=8,
    )
    for page in platform.iter_pages(str(rich.project_id)):
        writer.write(page.table, page.batch)
    reader = SnapshotReader(store, writer.finish())
    keys = [key for batch in reader.iter_batches("annotations") for key in batch["key"].to_pylist()]
    assert len(reader.chunks("annotations")) > 3
    for start, stop in [(None, None), (keys[5], keys[20]), (keys[9], None), (None, keys[1])]:
        before = reader.chunks_read
        got = [
            k
            for b in reader.iter_key_range("annotations", start, stop)
            for k in b["key"].to_pylist()
        ]
        assert got == [
            k for k in keys if (start is None or k >= start) and (stop is None or k < stop)
        ]
        if start is not None and stop is not None:
            assert reader.chunks_read - before < len(reader.chunks("annotations"))


def test_a_finished_partitioned_restore_answers_from_its_report(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    first: RestoreReport = restore(platform, source, rich, store=store, journal=JOURNAL, parallel=2)
    fake.calls.clear()
    second = restore(platform, source, rich, store=store, journal=JOURNAL, parallel=2)
    assert fake.calls == []
    assert second.created == first.created
    assert second.project == first.project


class _WholeOnly:
    """A platform that restores a version whole (as Label Studio does)."""

    name = "whole-only"
    restore_ignores: tuple[str, ...] = ()
    instance = "whole.test:80"

    def __init__(self, inner: SuperviselyPlatform) -> None:
        self.inner = inner

    def restore(self, *args: Any, **kwargs: Any) -> RestoreReport:
        return self.inner.restore(*args, **kwargs)


def test_a_platform_that_restores_whole_gets_one_partition(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    whole = _WholeOnly(platform)
    store = MemoryStore()
    started = start_restore(
        whole,  # type: ignore[arg-type]
        table_reader(source),
        store=store,
        journal=JOURNAL,
        origin=origin(rich),
        options=RestoreOptions(batch_size=4),
        parallel=4,
    )
    assert isinstance(started, RestoreStart)
    assert started.partitions == (Partition(key=WHOLE_PARTITION, label="the whole version"),)
    assert started.begun is None
    with pytest.raises(ConfigurationError, match="restores a version whole"):
        restore_partition(
            whole,  # type: ignore[arg-type]
            whole_range(table_reader(source)),
            store=store,
            start=replace(started, begun=RestoreReport(project=_project(), journal=JOURNAL)),
            partition=Partition(key="p00001", label="part 2 of 3"),
        )
    part = restore_partition(
        whole,  # type: ignore[arg-type]
        whole_range(table_reader(source)),
        store=store,
        start=started,
        partition=started.partitions[0],
    )
    report = finish_restore(store, started, [part])
    assert report.created["items"] == 30
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)


def _project() -> ProjectInfo:
    return ProjectInfo(
        platform="whole-only", instance="whole.test:80", project_id="1", name="p", kind="images"
    )


def test_progress_is_heard_from_one_partition_at_a_time(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    """A progress callback (a terminal's bar) need not be thread-safe: two partitions never
    call it at once. The first call waits for a second one to join it; they never meet."""
    meeting = threading.Barrier(2)
    met: list[bool] = []
    heard: list[int] = []

    def progress(created: Mapping[str, int]) -> None:
        try:
            meeting.wait(timeout=1)
            met.append(True)
        except threading.BrokenBarrierError:
            pass
        heard.append(created["items"])

    report = restore(platform, source, rich, journal=JOURNAL, parallel=3, progress=progress)
    assert not met
    assert heard[-1] == report.created["items"] == 30


def test_partitions_restored_side_by_side_take_turns_from_the_platforms_concurrency(
    fake: FakeSupervisely, rich: RichProject, source: Tables
) -> None:
    """Side by side, partitions restore in turns from the platform's ``concurrency``: no more
    partitions read, hold and send batches at once than one restore sends requests."""
    platform = fake.platform(batch_size=4, list_page_size=5, concurrency=2)
    at_once = AtOnce(limit=2)
    platform.add_items = at_once.wrap(platform.add_items)  # type: ignore[method-assign]
    report = restore(platform, source, rich, parallel=4, project_name="in turns")
    assert at_once.most == 2
    assert report.failures == ()
    again = capture_tables(platform, report.project.project_id)
    assert fingerprint_multisets(again) == fingerprint_multisets(source)
