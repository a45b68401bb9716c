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
from tests.platforms.test_labelstudio import build_rich_project, platform_for
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
