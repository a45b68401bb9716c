"""A partitioned capture after edits stores deltas: each dataset's partition writes what
changed in its key range, and the version reads back as a serial capture of the same project."""

from __future__ import annotations

from typing import Any

from labelvault.capture import CaptureResult
from labelvault.snapshot.manifest import Manifest
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project
from tests.test_capture_partitioned import platform_for, tables_of

_GEOMETRY = {"points": {"exterior": [[1.5, 2.5], [30.25, 40.75]], "interior": []}}


def _project(seed: int) -> tuple[FakeSupervisely, RichProject]:
    fake = FakeSupervisely(default_per_page=3, seed=seed)
    return fake, generate_rich_project(fake, images_per_dataset=30, seed=seed)


def _box_class(fake: FakeSupervisely, project_id: int) -> int:
    [box] = [c for c in fake.metas[project_id]["classes"] if c["shape"] == "rectangle"]
    return int(box["id"])


def _images_of(fake: FakeSupervisely, dataset_id: int) -> list[dict[str, Any]]:
    return fake.images.where("datasetId", [dataset_id])


def _add_boxes(fake: FakeSupervisely, rich: RichProject, every: int) -> int:
    """A box on every ``every``-th image of every dataset: a change spread over the project."""
    box = _box_class(fake, rich.project_id)
    added = 0
    for dataset_id in rich.dataset_ids:
        for image in _images_of(fake, dataset_id)[::every]:
            fake.create_figure(image["id"], box, "rectangle", _GEOMETRY)
            added += 1
    fake.touch_project(rich.project_id)
    return added


def _remove_dataset(fake: FakeSupervisely, dataset_id: int) -> None:
    """Delete a dataset that has no children, with its images and their figures."""
    assert not [d for d in fake.datasets.values() if d.get("parentId") == dataset_id]
    project_id = fake.datasets[dataset_id]["projectId"]
    fake.remove_dataset(dataset_id)
    fake.touch_project(project_id)


def _leaf(fake: FakeSupervisely, rich: RichProject) -> int:
    parents = {d.get("parentId") for d in fake.datasets.values()}
    return next(d for d in rich.dataset_ids if d not in parents and _images_of(fake, d))


def _manifest(result: CaptureResult) -> Manifest:
    assert result.manifest is not None
    return result.manifest


def _the_serial_capture(
    fake: FakeSupervisely, project: str, result: CaptureResult, vault: Vault
) -> None:
    """``result`` holds what a serial capture of the project holds now."""
    with Vault(MemoryStore()) as serial:
        whole = serial.capture(platform_for(fake), project)
        assert result.version.content_hash == whole.version.content_hash
        assert tables_of(vault, result.version) == tables_of(serial, whole.version)


def test_a_spread_edit_is_stored_as_deltas_on_the_previous_base() -> None:
    fake, rich = _project(seed=5)
    project = str(rich.project_id)
    platform = platform_for(fake)
    with Vault(MemoryStore()) as vault:
        first = vault.capture(platform, project, parallel=3)
        added = _add_boxes(fake, rich, every=10)
        second = vault.capture(platform, project, parallel=3)

        entry = _manifest(second).table("annotations")
        assert entry.has_delta
        assert entry.chunks == _manifest(first).table("annotations").chunks
        assert sum(chunk.rows for chunk in entry.delta) == added
        assert len(entry.delta) == len(rich.dataset_ids), "one delta chunk per dataset"
        assert _manifest(second).table("tags") == _manifest(first).table("tags")
        assert not entry.displaced, "boxes were only added"
        _the_serial_capture(fake, project, second, vault)


def test_a_removed_dataset_and_an_added_one_read_back_as_the_project_now() -> None:
    fake, rich = _project(seed=6)
    project = str(rich.project_id)
    platform = platform_for(fake)
    with Vault(MemoryStore()) as vault:
        first = vault.capture(platform, project, parallel=2)
        _remove_dataset(fake, _leaf(fake, rich))
        fresh = fake.create_dataset(rich.project_id, "added later")
        media = fake.register_hash(width=64, height=48, seed="late")
        image = fake.create_image(fresh["id"], "late.jpg", media_hash=media)
        fake.create_figure(image["id"], _box_class(fake, rich.project_id), "rectangle", _GEOMETRY)
        fake.touch_project(rich.project_id)
        second = vault.capture(platform, project, parallel=2)

        assert second.created
        assert second.rows["items"] < first.rows["items"]
        _the_serial_capture(fake, project, second, vault)
        third = vault.capture(platform, project, parallel=4)
        assert not third.created, "captured again with another plan: nothing changed"
