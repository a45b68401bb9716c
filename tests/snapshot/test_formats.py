"""Format 3's stored layout, and versions written by older formats read, queried and diffed.

``fixtures/format2`` holds two versions written by the format-2 writer (see its README): a base
and a version on it with a delta; ``fixtures/format2-supervisely`` the same for a rich
Supervisely project, which is restored.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelvault.diff import diff
from labelvault.http import RequestSettings
from labelvault.models import ProjectRef
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.query import connect, table_dataset
from labelvault.snapshot.delta import DeltaPolicy
from labelvault.snapshot.layout import (
    FINGERPRINT_TYPE,
    FLAG,
    MARKER,
    bytes_to_hex,
    hex_to_bytes,
)
from labelvault.snapshot.manifest import Manifest, load_manifest, write_manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import FORMAT_VERSION, TABLES, canonical_json, schema_for
from labelvault.storage.base import ObjectStore
from labelvault.storage.local import LocalStore
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project
from tests.snapshot.helpers import PREFIX, write_version
from tests.strategies import synthetic_project

FIXTURE = Path(__file__).parent / "fixtures" / "format2"
FIXTURE_SUPERVISELY = Path(__file__).parent / "fixtures" / "format2-supervisely"
FIRST_IDS = list(range(40))
SECOND_IDS = [i for i in FIRST_IDS if i != 5] + [41]


def _first_pages() -> Any:
    return synthetic_project(FIRST_IDS, annotations_per_item=3, batch_rows=7)


def _second_pages() -> Any:
    return synthetic_project(SECOND_IDS, annotations_per_item=3, edited={10, 11}, batch_rows=7)


@pytest.fixture
def old_store(tmp_path: Path) -> LocalStore:
    """A copy of the format-2 store (a local store keeps its bookkeeping in its folder)."""
    shutil.copytree(FIXTURE, tmp_path / "store")
    return LocalStore(tmp_path / "store")


def _old_versions(store: ObjectStore) -> tuple[Manifest, Manifest]:
    first, second = (FIXTURE / "VERSIONS").read_text().split()
    return load_manifest(store, first), load_manifest(store, second)


def _tables(store: ObjectStore, manifest: Manifest) -> dict[str, pa.Table]:
    reader = SnapshotReader(store, manifest)
    return {name: reader.read_table(name) for name in TABLES}


def _sql_table(store: ObjectStore, manifest: Manifest, table: str) -> pa.Table:
    with connect(store, manifest) as session:
        result = session.execute(f"SELECT * FROM {table} ORDER BY key")
    return result.cast(schema_for(table))


def test_the_fixture_is_format_2_with_a_delta(old_store: LocalStore) -> None:
    first, second = _old_versions(old_store)
    assert (first.format_version, second.format_version) == (2, 2)
    assert second.table("annotations").has_delta
    assert FORMAT_VERSION > 2
    for manifest, key in zip(
        (first, second), (FIXTURE / "VERSIONS").read_text().split(), strict=True
    ):
        assert manifest.key == key  # read back, a manifest keeps its bytes


def test_format_2_versions_read_as_the_same_rows_written_now(old_store: LocalStore) -> None:
    first, second = _old_versions(old_store)
    store = MemoryStore()
    for old, pages in ((first, _first_pages()), (second, _second_pages())):
        new = write_version(store, pages, target_chunk_rows=16)
        assert new.format_version == FORMAT_VERSION
        assert new.content_hash == old.content_hash  # the content hash did not change
        old_tables, new_tables = _tables(old_store, old), _tables(store, new)
        for name in TABLES:
            assert old_tables[name].equals(new_tables[name]), name


def test_format_2_versions_are_queried_as_readers_see_them(old_store: LocalStore) -> None:
    _, second = _old_versions(old_store)
    for name in ("annotations", "items", "tags"):
        expected = SnapshotReader(old_store, second).read_table(name)
        assert _sql_table(old_store, second, name).equals(expected)
        dataset = table_dataset(old_store, second, name)
        assert dataset.to_table().equals(expected)


def test_format_2_versions_are_diffed_and_rewritten_once(old_store: LocalStore) -> None:
    first, second = _old_versions(old_store)
    changes = diff(old_store, first, second).tables["annotations"]
    assert {k.split("/")[0] for k in changes.removed_keys} == {"000000000005"}
    assert {k.split("/")[0] for k in changes.added_keys} == {"000000000041"}
    assert {k.split("/")[0] for k in changes.changed_keys} == {"000000000010", "000000000011"}

    # A capture on a format-2 version writes the current format whole (one layout per
    # manifest).
    policy = DeltaPolicy(prefer_smaller=False)
    third = write_version(
        old_store, _second_pages(), target_chunk_rows=16, previous=second, delta_policy=policy
    )
    stored = load_manifest(old_store, write_manifest(old_store, PREFIX, third))
    assert stored.format_version == FORMAT_VERSION
    assert not any(stored.table(name).has_delta for name in TABLES)
    assert stored.content_hash == second.content_hash
    for name in TABLES:
        assert _tables(old_store, stored)[name].equals(_tables(old_store, second)[name])
    assert diff(old_store, second, stored).tables["annotations"].changed == 0

    # The next capture is a delta on it.
    fourth = write_version(
        old_store,
        synthetic_project(SECOND_IDS, annotations_per_item=3, edited={10, 11, 12}, batch_rows=7),
        target_chunk_rows=16,
        previous=stored,
        delta_policy=policy,
    )
    assert fourth.table("annotations").has_delta
    assert {
        k.split("/")[0] for k in diff(old_store, stored, fourth).tables["annotations"].changed_keys
    } == {"000000000012"}


def test_a_format_1_version_is_read_and_diffed(old_store: LocalStore) -> None:
    """Format 1 stored chunks as format 2 does; its manifest only lacks the deltas."""
    first, _ = _old_versions(old_store)
    as_format_1 = first.model_copy(update={"format_version": 1})
    old = load_manifest(old_store, write_manifest(old_store, PREFIX, as_format_1))
    assert old.format_version == 1
    new = write_version(MemoryStore(), _first_pages(), target_chunk_rows=16)
    assert old.content_hash == new.content_hash
    for name in TABLES:
        assert _tables(old_store, old)[name].equals(_tables(old_store, first)[name])
    assert _sql_table(old_store, old, "annotations").equals(
        _tables(old_store, first)["annotations"]
    )
    assert diff(old_store, old, first).tables["annotations"].changed == 0


# --- the format-3 layout --------------------------------------------------------------------


def _stored(store: ObjectStore, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(store.get(key).data))


def test_chunks_store_binary_fingerprints_and_raw_without_the_geometry() -> None:
    store = MemoryStore()
    manifest = write_version(store, synthetic_project(range(20), annotations_per_item=3))
    chunk = manifest.table("annotations").chunks[0]
    stored = _stored(store, chunk.key)
    assert stored.schema.field("fingerprint").type == FINGERPRINT_TYPE
    logical = SnapshotReader(store, manifest).read_table("annotations")
    first_raw, first_geometry = (
        logical.column("raw")[0].as_py(),
        logical.column("geometry")[0].as_py(),
    )
    assert first_geometry in first_raw
    assert first_geometry not in stored.column("raw")[0].as_py()
    assert MARKER in stored.column("raw")[0].as_py()
    assert stored.column(FLAG).to_pylist() == [True] * stored.num_rows
    assert bytes_to_hex(stored.column("fingerprint")).to_pylist() == (
        logical.column("fingerprint").slice(0, stored.num_rows).to_pylist()
    )


def _annotations(raws: list[str], geometries: list[str | None]) -> pa.Table:
    rows = [
        {
            "key": f"{index:04d}",
            "fingerprint": f"{index:064x}",
            "item_key": "item",
            "kind": "figure",
            "class_name": "car",
            "geometry_type": "polygon",
            "geometry": geometry,
            "author": None,
            "created_at": None,
            "updated_at": None,
            "raw": raw,
        }
        for index, (raw, geometry) in enumerate(zip(raws, geometries, strict=True))
    ]
    return pa.Table.from_pylist(rows, schema=schema_for("annotations"))


@pytest.mark.parametrize(
    ("copies", "only_spliced"),
    [(1, False), (100, False), (300, True)],
    ids=["row by row", "kernels, mixed", "kernels, every row spliced"],
)
def test_raw_that_cannot_be_spliced_is_stored_whole_and_read_back_exactly(
    copies: int, only_spliced: bool
) -> None:
    geometry = canonical_json({"points": {"exterior": [[1.5, 2.25], [3, 4]], "interior": []}})
    raws = [
        canonical_json({"geometry": json.loads(geometry), "é": "ü"}),  # spliced
        canonical_json({"other": 1}),  # the geometry is not in raw
        canonical_json({"g": json.loads(geometry), "m": "\x01"}).replace("\\u0001", "\x01"),
        canonical_json({"g": "short"}),  # too short to splice
        canonical_json({"twice": [json.loads(geometry), json.loads(geometry)]}),
        "not json at all " + geometry,
    ]
    geometries = [geometry, geometry, geometry, '"short"', geometry, geometry]
    geometries[1] = None
    flags = [True, None, None, None, True, True]
    if only_spliced:
        raws, geometries, flags = raws[:1], geometries[:1], flags[:1]
    table = _annotations(raws * copies, geometries * copies)
    store = MemoryStore()
    manifest = write_version(store, [("annotations", table.to_batches()[0])])
    (chunk,) = manifest.table("annotations").chunks
    assert _stored(store, chunk.key).column(FLAG).to_pylist() == flags * copies
    back = SnapshotReader(store, manifest).read_table("annotations")
    assert back.equals(table)
    assert _sql_table(store, manifest, "annotations").equals(table)


def test_hex_fingerprints_round_trip_through_bytes() -> None:
    values = pa.array([f"{index:064x}" for index in range(10)] + ["ab" * 32])
    for part in (values, values.slice(3, 4), values.slice(0, 0)):
        assert bytes_to_hex(hex_to_bytes(part)).to_pylist() == part.to_pylist()
    with pytest.raises(ValueError, match="64 hex digits"):
        hex_to_bytes(pa.array(["abc"]))


def test_sql_over_format_3_with_a_delta_sees_what_readers_see() -> None:
    store = MemoryStore()
    base = write_version(store, synthetic_project(range(60), annotations_per_item=3))
    edited = write_version(
        store,
        synthetic_project([i for i in range(61) if i != 7], annotations_per_item=3, edited={20}),
        previous=base,
        delta_policy=DeltaPolicy(prefer_smaller=False),
        target_chunk_rows=32,
    )
    assert edited.table("annotations").has_delta
    for name in ("annotations", "items", "tags"):
        expected = SnapshotReader(store, edited).read_table(name)
        assert _sql_table(store, edited, name).equals(expected)
        assert table_dataset(store, edited, name).to_table().equals(expected)


def _json_gzip_bytes(table: pa.Table) -> int:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as stream:
        for row in table.to_pylist():
            stream.write(json.dumps(row, default=str, ensure_ascii=False).encode() + b"\n")
    return len(buffer.getvalue())


def test_an_annotation_takes_less_room_than_gzipped_json() -> None:
    store = MemoryStore()
    manifest = write_version(store, synthetic_project(range(2000), annotations_per_item=10))
    annotations = SnapshotReader(store, manifest).read_table("annotations")
    assert manifest.table("annotations").bytes < _json_gzip_bytes(annotations)


def test_format_2_supervisely_versions_restore_to_their_content(tmp_path: Path) -> None:
    """Versions an older labelvault wrote, one with a delta, restore without loss today."""
    shutil.copytree(FIXTURE_SUPERVISELY, tmp_path / "store")
    fake = FakeSupervisely(default_per_page=3)
    generate_rich_project(fake)  # the images the versions reference
    platform = SuperviselyPlatform(
        "http://sly.test",
        fake.token,
        settings=RequestSettings(backoff_jitter=0),
        transport=fake.transport(),
        sleep=lambda seconds: None,
    )
    source = ProjectRef(platform="supervisely", instance="sly.test:80", project_id="5007")
    with Vault(LocalStore(tmp_path / "store")) as vault:
        first, second = (vault.version(source, number) for number in (1, 2))
        assert vault.manifest(first).format_version == 2
        old = vault.manifest(second)
        assert old.format_version == 2
        assert old.table("annotations").delta
        assert old.table("annotations").displaced

        for version in (first, second):
            _, report = vault.restore(
                platform, source, version.number, restore_id=f"from-format-2-{version.number}"
            )
            restored = vault.capture(platform, report.project.project_id)
            assert restored.version.content_hash == version.content_hash
            assert restored.manifest is not None
            assert restored.manifest.format_version == FORMAT_VERSION

        _, _, changes = vault.diff(source, 1, 2)
        annotations, tags = changes.tables["annotations"], changes.tables["tags"]
        assert (annotations.added, annotations.removed, annotations.changed) == (1, 1, 0)
        # the deleted figure's tags went with it
        [deleted] = annotations.removed_keys
        assert (tags.added, tags.changed) == (0, 0)
        assert tags.removed == len(tags.removed_keys) > 0
        assert all(key.startswith(f"{deleted}!") for key in tags.removed_keys)
        assert all(
            not (table.added or table.removed or table.changed)
            for name, table in changes.tables.items()
            if name not in ("annotations", "tags")
        )
