"""A capture after a small edit stores a delta against the latest version, and reads back
the same rows as a capture written whole."""

from __future__ import annotations

from labelvault.capture import capture_version
from labelvault.catalog import Catalog
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import TABLES
from labelvault.storage import MemoryStore
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project


def test_a_small_edit_is_captured_as_a_delta_that_reads_back_whole() -> None:
    fake = FakeSupervisely(seed=5)
    rich = generate_rich_project(fake, images_per_dataset=30)
    platform = SuperviselyPlatform("http://sly.test", fake.token, transport=fake.transport())
    project_id = str(rich.project_id)
    store = MemoryStore("deltas")
    catalog = Catalog(store)
    first = capture_version(platform, project_id, store=store, catalog=catalog)

    meta = fake.metas[rich.project_id]
    [box] = [c for c in meta["classes"] if c["shape"] == "rectangle"]
    image = next(i for i in fake.images.values() if i["projectId"] == rich.project_id)
    geometry = {"points": {"exterior": [[1.5, 2.5], [30.25, 40.75]], "interior": []}}
    fake.create_figure(image["id"], box["id"], "rectangle", geometry)
    fake.touch_project(rich.project_id)
    second = capture_version(platform, project_id, store=store, catalog=catalog)

    assert second.created
    assert second.manifest is not None
    assert first.manifest is not None
    entry = second.manifest.table("annotations")
    assert entry.has_delta
    assert entry.chunks == first.manifest.table("annotations").chunks
    whole_store = MemoryStore("whole")
    whole = capture_version(platform, project_id, store=whole_store, catalog=Catalog(whole_store))
    assert whole.manifest is not None
    assert whole.version.content_hash == second.version.content_hash
    for table in TABLES:
        merged = SnapshotReader(store, second.manifest).read_table(table)
        assert merged.equals(SnapshotReader(whole_store, whole.manifest).read_table(table)), table
    platform.close()
