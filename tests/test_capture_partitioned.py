"""Partitioned capture: partitions read side by side give the version a serial capture gives.

Supervisely plans a project as its own rows plus one partition per dataset; each partition is
written on its own and the parts are merged in key order (``labelvault.snapshot.merge``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pytest

from labelvault.capture import CaptureProgress, CaptureStart, capture_partition, start_capture
from labelvault.catalog import Catalog
from labelvault.errors import ConfigurationError, SnapshotError
from labelvault.models import ProjectRef
from labelvault.platforms.base import HEAD_PARTITION, Partition, PartitionedPlatform, TablePage
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.snapshot.manifest import Manifest, SnapshotSource
from labelvault.snapshot.merge import merge_parts
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import TABLES, fingerprint, schema_for
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.at_once import AtOnce
from tests.fakes.supervisely import FakeSupervisely, FaultPlan, generate_rich_project
from tests.fakes.supervisely_video import (
    generate_rich_video_project,
    generate_rich_volume_project,
)

SOURCE = SnapshotSource(platform="supervisely", instance="sly.test:80", project_id="1")
PREFIX = "supervisely/sly.test/1"


def _images(fake: FakeSupervisely) -> int:
    return generate_rich_project(fake, labelers=True).project_id


def _videos(fake: FakeSupervisely) -> int:
    return generate_rich_video_project(fake).project_id


def _volumes(fake: FakeSupervisely) -> int:
    return generate_rich_volume_project(fake).project_id


PROJECTS: dict[str, Callable[[FakeSupervisely], int]] = {
    "images": _images,
    "videos": _videos,
    "volumes": _volumes,
}


def platform_for(fake: FakeSupervisely) -> SuperviselyPlatform:
    return fake.platform(batch_size=2, list_page_size=3)


def tables_of(vault: Vault, version: Any) -> dict[str, pa.Table]:
    """Every table of a version as a reader sees it (key order)."""
    reader = SnapshotReader(vault.store, vault.manifest(version))
    return {name: reader.read_table(name) for name in TABLES}


@pytest.mark.parametrize("kind", sorted(PROJECTS))
@pytest.mark.parametrize("parallel", [2, 4])
def test_a_partitioned_capture_is_the_serial_capture(kind: str, parallel: int) -> None:
    fake = FakeSupervisely(default_per_page=3)
    project = str(PROJECTS[kind](fake))
    platform = platform_for(fake)
    assert isinstance(platform, PartitionedPlatform)
    plan = platform.capture_plan(project)
    assert plan[0].key == HEAD_PARTITION
    assert len(plan) > 2, "the project must have several datasets"

    with Vault(MemoryStore()) as serial, Vault(MemoryStore()) as split:
        one = serial.capture(platform, project)
        many = split.capture(platform, project, parallel=parallel)
        assert many.version.content_hash == one.version.content_hash
        assert many.rows == one.rows
        assert many.manifest is not None
        assert not any(entry.has_delta for entry in many.manifest.tables.values())
        assert tables_of(split, many.version) == tables_of(serial, one.version)
        if kind == "images":
            assert many.rows["users"] == 4, "the labellers of every dataset, each once"


def test_the_same_plan_gives_the_same_chunks_and_unchanged_rows_reuse_them() -> None:
    fake = FakeSupervisely(default_per_page=3)
    project = str(_images(fake))
    platform = platform_for(fake)
    with Vault(MemoryStore()) as first, Vault(MemoryStore()) as second:
        a = first.capture(platform, project, parallel=3)
        b = second.capture(platform, project, parallel=2)
        assert a.manifest is not None
        assert b.manifest is not None
        assert {n: t.chunks for n, t in a.manifest.tables.items()} == {
            n: t.chunks for n, t in b.manifest.tables.items()
        }
        # The project's time moved, nothing else: no version, and only the project's own row
        # (which carries that time) is stored anew, as a serial capture does.
        fake.touch_project(int(project))
        again = first.capture(platform, project, parallel=3)
        assert not again.created
        assert again.version.number == a.version.number
        assert again.manifest is not None
        changed = {
            name
            for name, entry in again.manifest.tables.items()
            if entry != a.manifest.tables[name]
        }
        assert changed == {"project"}
        assert again.bytes_written == again.manifest.tables["project"].bytes


def test_partitions_under_ten_percent_faults_give_the_same_version() -> None:
    fake = FakeSupervisely(default_per_page=3)
    project = str(_images(fake))
    platform = platform_for(fake)
    with Vault(MemoryStore()) as clean:
        expected = clean.capture(platform, project).version.content_hash
    fake.faults = FaultPlan(rate=0.1, seed=7, retry_after="0")
    with Vault(MemoryStore()) as faulty:
        result = faulty.capture(platform, project, parallel=4)
    assert fake.fault_log
    assert result.version.content_hash == expected


class _FailingDataset(SuperviselyPlatform):
    """A platform whose last dataset cannot be read."""

    def iter_partition(self, project_id: str, partition: Partition) -> Iterator[TablePage]:
        plan = self.capture_plan(project_id)
        if partition.key == plan[-1].key:
            raise RuntimeError(f"dataset {partition.label} is unreadable")
        yield from super().iter_partition(project_id, partition)


def test_a_failed_partition_leaves_no_version_and_no_reservation() -> None:
    fake = FakeSupervisely(default_per_page=3)
    project = str(_images(fake))
    failing = _FailingDataset(
        "http://sly.test",
        fake.token,
        transport=fake.transport(),
        sleep=lambda seconds: None,
        batch_size=2,
    )
    store = MemoryStore()
    with Vault(store) as vault:
        with pytest.raises(RuntimeError, match="is unreadable"):
            vault.capture(failing, project, parallel=3)
        ref = ProjectRef(platform="supervisely", instance="sly.test:80", project_id=project)
        assert Catalog(store).list(ref) == []
        # the reservation was cancelled: the next capture goes ahead at once
        assert vault.capture(platform_for(fake), project, parallel=3).version.number == 1


def _part(store: MemoryStore, table: str, rows: dict[str, str]) -> Manifest:
    """A part holding ``table`` rows: key → the content they fingerprint."""
    schema = schema_for(table)
    full = []
    for key, content in rows.items():
        row: dict[str, Any] = dict.fromkeys(schema.names)
        row.update(key=key, fingerprint=fingerprint({"content": content}), raw="{}")
        full.append(row)
    writer = SnapshotWriter(store, PREFIX, source=SOURCE)
    writer.write(table, pa.RecordBatch.from_pylist(full, schema=schema))
    return writer.finish()


def test_parts_out_of_key_order_are_refused() -> None:
    store = MemoryStore()
    first = _part(store, "datasets", {"b": "b", "c": "c"})
    second = _part(store, "datasets", {"a": "a"})
    with pytest.raises(SnapshotError, match="out of key order"):
        merge_parts(store, PREFIX, [first, second], source=SOURCE)
    merged = merge_parts(store, PREFIX, [second, first], source=SOURCE)
    whole = _part(store, "datasets", {"a": "a", "b": "b", "c": "c"})
    assert merged.content_hash == whole.content_hash
    keys = SnapshotReader(store, merged).read_table("datasets").column("key").to_pylist()
    assert keys == ["a", "b", "c"]


def test_a_shared_row_is_kept_once_and_must_be_the_same_row() -> None:
    store = MemoryStore()
    first = _part(store, "users", {"a": "a", "b": "b"})
    second = _part(store, "users", {"b": "b", "c": "c"})
    merged = merge_parts(store, PREFIX, [first, second], source=SOURCE, shared={"users"})
    keys = SnapshotReader(store, merged).read_table("users").column("key").to_pylist()
    assert keys == ["a", "b", "c"]
    assert merged.content_hash == _part(store, "users", {"a": "a", "b": "b", "c": "c"}).content_hash

    other = _part(store, "users", {"b": "another b"})
    with pytest.raises(SnapshotError, match="different rows of table 'users' under key 'b'"):
        merge_parts(store, PREFIX, [first, other], source=SOURCE, shared={"users"})


def test_progress_names_each_partition_and_its_items() -> None:
    fake = FakeSupervisely(default_per_page=3)
    project = str(_images(fake))
    platform = platform_for(fake)
    plan = platform.capture_plan(project)
    updates: list[CaptureProgress] = []
    with Vault(MemoryStore()) as vault:
        result = vault.capture(platform, project, parallel=2, progress=updates.append)
    last = updates[-1]
    assert [part.label for part in last.partitions] == [p.label for p in plan[1:]]
    assert all(part.done for part in last.partitions)
    assert sum(part.items for part in last.partitions) == result.rows["items"]
    assert [part.weight for part in last.partitions] == [part.items for part in last.partitions]
    assert last.rows["items"] == result.rows["items"]


class _Whole:
    """Supervisely seen as a platform that captures a project whole only."""

    def __init__(self, platform: SuperviselyPlatform) -> None:
        self._platform = platform
        self.name = platform.name

    def __getattr__(self, name: str) -> Any:
        if name in ("capture_plan", "iter_partition"):
            raise AttributeError(name)
        return getattr(self._platform, name)


def test_a_partition_given_to_a_platform_that_captures_whole_is_refused_in_one_line() -> None:
    fake = FakeSupervisely(default_per_page=3)
    project = str(_images(fake))
    store = MemoryStore()
    catalog = Catalog(store)
    start = start_capture(platform_for(fake), project, catalog=catalog, parallel=3)
    assert isinstance(start, CaptureStart)
    dataset = next(part for part in start.partitions if part.key != HEAD_PARTITION)
    whole = _Whole(platform_for(fake))
    assert not isinstance(whole, PartitionedPlatform)
    with pytest.raises(ConfigurationError) as refused:
        capture_partition(whole, start, dataset, store=store, catalog=catalog)
    message = str(refused.value)
    assert "\n" not in message
    assert f"cannot capture partition {dataset.label!r}" in message
    assert "start the capture again" in message


def test_partitions_read_at_once_read_no_more_batches_than_the_platforms_concurrency() -> None:
    """Side by side, partitions take their batches from the platform's ``concurrency``: no
    more batches of figures are read at once than one capture reads."""
    fake = FakeSupervisely()
    project = str(_images(fake))
    platform = fake.platform(batch_size=2, list_page_size=3, concurrency=2)
    datasets = [part for part in platform.capture_plan(project) if part.key != HEAD_PARTITION]
    assert len(datasets) >= 3
    at_once = AtOnce(limit=2)

    def pages(platform: SuperviselyPlatform, partition: Partition) -> list[tuple[str, int]]:
        read = platform.iter_partition(project, partition)
        return [(page.table, page.batch.num_rows) for page in read]

    platform._capture_batch = at_once.wrap(platform._capture_batch)  # type: ignore[method-assign]
    with ThreadPoolExecutor(len(datasets)) as pool:
        side_by_side = list(pool.map(lambda part: pages(platform, part), datasets))
    assert at_once.most == 2
    alone = platform_for(fake)
    assert side_by_side == [pages(alone, part) for part in datasets]
    platform.close()
    alone.close()
