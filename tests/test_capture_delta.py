"""A capture after a small edit stores a delta against the latest version, and reads back
the same rows as a capture written whole."""

from __future__ import annotations

from datetime import timedelta

from labelvault.capture import capture_version, project_ref
from labelvault.catalog import Catalog
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.retention import RetentionPolicy
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import TABLES
from labelvault.storage import MemoryStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project


def _add_box(fake: FakeSupervisely, project_id: int) -> None:
    meta = fake.metas[project_id]
    [box] = [c for c in meta["classes"] if c["shape"] == "rectangle"]
    image = next(i for i in fake.images.values() if i["projectId"] == project_id)
    geometry = {"points": {"exterior": [[1.5, 2.5], [30.25, 40.75]], "interior": []}}
    fake.create_figure(image["id"], box["id"], "rectangle", geometry)
    fake.touch_project(project_id)


def test_a_small_edit_is_captured_as_a_delta_that_reads_back_whole() -> None:
    fake = FakeSupervisely(seed=5)
    rich = generate_rich_project(fake, images_per_dataset=30)
    platform = SuperviselyPlatform("http://sly.test", fake.token, transport=fake.transport())
    project_id = str(rich.project_id)
    store = MemoryStore("deltas")
    catalog = Catalog(store)
    first = capture_version(platform, project_id, store=store, catalog=catalog)

    _add_box(fake, rich.project_id)
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


def test_expiring_the_base_version_keeps_the_chunks_the_delta_version_needs() -> None:
    fake = FakeSupervisely(seed=6)
    rich = generate_rich_project(fake, images_per_dataset=30)
    platform = SuperviselyPlatform("http://sly.test", fake.token, transport=fake.transport())
    project_id = str(rich.project_id)
    store = MemoryStore("retention")
    catalog = Catalog(store)
    capture_version(platform, project_id, store=store, catalog=catalog)
    _add_box(fake, rich.project_id)
    second = capture_version(platform, project_id, store=store, catalog=catalog)
    assert second.manifest is not None
    assert second.manifest.table("annotations").has_delta

    vault = Vault(store, catalog=catalog)
    project = project_ref(platform, project_id)
    policy = RetentionPolicy(keep_last=1, keep_tagged=False)
    report = vault.expire(project, policy, dry_run=False, now=catalog.now() + timedelta(days=1))

    assert report.versions_deleted == (1,)
    assert report.deleted_count > 0  # the first version's manifest at least
    survivor = vault.manifest(catalog.get(project, 2))
    assert SnapshotReader(store, survivor).verify() > 0
    for table in TABLES:
        SnapshotReader(store, survivor).read_table(table)
    platform.close()
