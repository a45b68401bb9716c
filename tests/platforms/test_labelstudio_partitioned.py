"""Label Studio partitioned capture on the real server (``-m labelstudio``): task id ranges
read side by side give the version a serial capture gives."""

from __future__ import annotations

import pyarrow as pa
import pytest

from labelvault.platforms.base import HEAD_PARTITION, PartitionedPlatform
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import TABLES
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.platforms.test_labelstudio import (
    LABEL_CONFIG,
    _box,
    _ok,
    build_rich_project,
    platform_for,
)
from tests.servers.labelstudio import LabelStudio, ProjectFactory

pytestmark = pytest.mark.labelstudio


def tables_of(vault: Vault, result: object) -> dict[str, pa.Table]:
    version = result.version  # type: ignore[attr-defined]
    reader = SnapshotReader(vault.store, vault.manifest(version))
    return {name: reader.read_table(name) for name in TABLES}


@pytest.mark.parametrize("partition_tasks", [1, 3])
def test_task_id_ranges_captured_side_by_side_are_the_serial_capture(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory, partition_tasks: int
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    with (
        platform_for(labelstudio_server) as serial_ls,
        platform_for(labelstudio_server, export_partition_tasks=partition_tasks) as split_ls,
        Vault(MemoryStore()) as serial,
        Vault(MemoryStore()) as split,
    ):
        assert isinstance(split_ls, PartitionedPlatform)
        plan = split_ls.capture_plan(rich.project_id)
        assert plan[0].key == HEAD_PARTITION
        assert len(plan) == 1 + -(-rich.tasks // partition_tasks)
        one = serial.capture(serial_ls, rich.project_id)
        many = split.capture(split_ls, rich.project_id, parallel=3)
        assert many.version.content_hash == one.version.content_hash
        assert many.rows == one.rows
        assert many.rows["users"] >= 2, "both annotators, each once"
        assert tables_of(split, many) == tables_of(serial, one)


def test_export_mode_reads_the_project_in_one_partition(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    with (
        platform_for(labelstudio_server) as serial_ls,
        platform_for(labelstudio_server, capture_mode="export") as export_ls,
        Vault(MemoryStore()) as serial,
        Vault(MemoryStore()) as split,
    ):
        [whole] = export_ls.capture_plan(rich.project_id)
        assert whole.key != HEAD_PARTITION
        one = serial.capture(serial_ls, rich.project_id)
        many = split.capture(export_ls, rich.project_id, parallel=2)
        assert many.rows == one.rows
        assert many.rows["items"] == rich.tasks


def test_a_small_edit_is_stored_as_deltas_by_the_task_ranges(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory
) -> None:
    project_id = labelstudio_project(LABEL_CONFIG, title="ranges")
    tasks = [
        {
            "data": {"image": f"http://example.invalid/{n}.jpg", "caption": f"task {n}"},
            "annotations": [{"result": [_box("cat", float(n), f"b{n}")]}],
        }
        for n in range(60)
    ]
    with labelstudio_server.client() as client:
        answer = client.post(
            f"/api/projects/{project_id}/import", params={"return_task_ids": "true"}, json=tasks
        )
        ids = _ok(answer)["task_ids"]
    project = str(project_id)
    with (
        platform_for(labelstudio_server, export_partition_tasks=20) as split_ls,
        platform_for(labelstudio_server) as serial_ls,
        Vault(MemoryStore()) as split,
        Vault(MemoryStore()) as serial,
    ):
        first = split.capture(split_ls, project, parallel=3)
        with labelstudio_server.client() as client:
            client.delete(f"/api/tasks/{ids[30]}/").raise_for_status()
        second = split.capture(split_ls, project, parallel=3)
        assert second.created
        assert first.manifest is not None
        assert second.manifest is not None
        for name in ("items", "annotations"):
            entry = second.manifest.table(name)
            assert entry.has_delta, name
            assert entry.chunks == first.manifest.table(name).chunks, name
            assert entry.rows == 59, name
        whole = serial.capture(serial_ls, project)
        assert second.version.content_hash == whole.version.content_hash
        assert tables_of(split, second) == tables_of(serial, whole)
