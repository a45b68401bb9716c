"""The streaming writer: schema and key-order checks, interleaving, abort, bounded buffers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from labelvault.errors import IntegrityError, SchemaMismatch, SnapshotError
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import OPTIONAL_TABLES, TABLES, schema_for
from labelvault.snapshot.writer import SnapshotWriter, chunk_key
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import PREFIX, SOURCE, write_version
from tests.strategies import synthetic_project


def _item(key: str, **values: Any) -> dict[str, Any]:
    return {"key": key, "fingerprint": "a" * 64, "raw": "{}", **values}


def _items(*keys: str) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([_item(k) for k in keys], schema=schema_for("items"))


def _writer(store: ObjectStore | None = None, **options: Any) -> SnapshotWriter:
    return SnapshotWriter(store or MemoryStore(), PREFIX, source=SOURCE, **options)


# --- schema --------------------------------------------------------------------------------


def test_unknown_table_is_named() -> None:
    with pytest.raises(SchemaMismatch, match=r"'frames'.*tables are"):
        _writer().write("frames", _items("a"))


def test_missing_and_unexpected_columns_are_named() -> None:
    writer = _writer()
    batch = _items("a")
    with pytest.raises(SchemaMismatch, match=r"'items': missing columns \['width'\]"):
        writer.write("items", batch.drop_columns(["width"]))
    with pytest.raises(SchemaMismatch, match=r"'items': unexpected columns \['colour'\]"):
        writer.write("items", batch.append_column("colour", pa.array(["red"])))


def test_compatible_types_are_cast() -> None:
    store = MemoryStore()
    writer = _writer(store)
    batch = pa.RecordBatch.from_pydict(
        {
            "raw": pa.array(["{}"], pa.large_string()),  # other order, large strings
            "key": pa.array(["a"], pa.large_string()),
            "fingerprint": ["b" * 64],
            "dataset_key": ["d"],
            "name": ["img.jpg"],
            "kind": ["image"],
            "hash": [None],
            "link": [None],
            "size_bytes": pa.array([12], pa.int32()),
            "width": pa.array([640], pa.int64()),
            "height": pa.array([480], pa.int64()),
            "meta": ["{}"],
            "created_at": pa.array([datetime(2024, 1, 2, 3, 4, 5)], pa.timestamp("ms")),
            "updated_at": pa.array([None], pa.timestamp("us", tz="UTC")),
        }
    )
    writer.write("items", batch)
    back = SnapshotReader(store, writer.finish()).read_table("items")
    row = back.to_pylist()[0]
    assert row["width"] == 640
    assert row["size_bytes"] == 12
    assert row["raw"] == "{}"
    assert row["created_at"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert back.schema.equals(schema_for("items"))


def test_incompatible_types_name_the_column() -> None:
    batch = _items("a")
    index = batch.schema.get_field_index("width")
    bad = batch.set_column(index, "width", pa.array(["wide"]))
    with pytest.raises(SchemaMismatch, match="'items', column 'width': cannot convert string"):
        _writer().write("items", bad)
    too_big = batch.set_column(index, "width", pa.array([2**40], pa.int64()))
    with pytest.raises(SchemaMismatch, match="column 'width'"):
        _writer().write("items", too_big)


def test_nulls_where_the_schema_forbids_them() -> None:
    rows = [{"key": "f1", "fingerprint": "c" * 64, "raw": "{}", "item_key": None}]
    batch = pa.RecordBatch.from_pylist(rows, schema=schema_for("annotations").with_metadata({}))
    with pytest.raises(SchemaMismatch, match="column 'item_key': 1 null"):
        _writer().write("annotations", batch)


def test_fingerprints_must_be_sha256_hex() -> None:
    rows = [_item("a"), {**_item("b"), "fingerprint": "not-a-hash"}]
    batch = pa.RecordBatch.from_pylist(rows, schema=schema_for("items"))
    with pytest.raises(SchemaMismatch, match="key 'b' has 'not-a-hash'"):
        _writer().write("items", batch)


# --- key order -----------------------------------------------------------------------------


def test_keys_out_of_order_within_a_batch() -> None:
    with pytest.raises(SchemaMismatch, match="out of order: 'b' is followed by 'a'"):
        _writer().write("items", _items("0", "b", "a"))


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(SchemaMismatch, match="duplicate key: 'b' is followed by 'b'"):
        _writer().write("items", _items("a", "b", "b"))


def test_keys_out_of_order_across_batches() -> None:
    writer = _writer()
    writer.write("items", _items("a", "m"))
    with pytest.raises(SchemaMismatch, match=r"'items'.*'m' is followed by 'c'"):
        writer.write("items", _items("c"))
    with pytest.raises(SchemaMismatch, match="duplicate key"):
        writer.write("items", _items("m"))
    writer.write("items", _items("n"))  # a rejected batch leaves the writer usable
    assert writer.finish().table("items").rows == 3


def test_key_order_is_code_point_order() -> None:
    writer = _writer()
    writer.write("items", _items("Z", "a", "z", "é", "😀"))
    with pytest.raises(SchemaMismatch, match="out of order"):
        writer.write("items", _items("ü"))  # U+00FC < U+1F600


def test_tables_interleave_with_their_own_order() -> None:
    store = MemoryStore()
    writer = _writer(store, target_chunk_rows=2)
    writer.write("items", _items("a", "b", "c"))
    annotation = {"fingerprint": "d" * 64, "raw": "{}", "item_key": "a"}
    figures = pa.RecordBatch.from_pylist(
        [{**annotation, "key": "a/1"}, {**annotation, "key": "a/2"}],
        schema=schema_for("annotations"),
    )
    writer.write("annotations", figures)
    writer.write("items", _items("d", "e"))  # the items' open chunk is still there
    writer.write("items", pa.Table.from_batches([_items("f"), _items("g")]))
    manifest = writer.finish()
    reader = SnapshotReader(store, manifest)
    assert reader.read_table("items").column("key").to_pylist() == list("abcdefg")
    assert reader.read_table("annotations").num_rows == 2
    always = [t for t in TABLES if t not in OPTIONAL_TABLES]  # the others: listed with rows
    assert manifest.row_counts == {**dict.fromkeys(always, 0), "items": 7, "annotations": 2}


# --- lifecycle -----------------------------------------------------------------------------


def test_abort_leaves_only_unreferenced_chunks() -> None:
    store = MemoryStore()
    writer = _writer(store, target_chunk_rows=16)
    for table, batch in synthetic_project(range(200), batch_rows=50):
        writer.write(table, batch)
    writer.abort()
    keys = [info.key for info in store.list()]
    assert keys, "full chunks were flushed before the abort"
    assert all(key.startswith(f"{PREFIX}/chunks/") for key in keys)
    with pytest.raises(SnapshotError, match="finished or aborted"):
        writer.write("items", _items("z"))
    with pytest.raises(SnapshotError, match="finished or aborted"):
        writer.finish()


def test_context_manager_aborts_on_error() -> None:
    store = MemoryStore()
    with pytest.raises(SchemaMismatch), _writer(store) as writer:
        writer.write("items", _items("b", "a"))
    with pytest.raises(SnapshotError):
        writer.finish()
    assert list(store.list()) == []


def test_finish_lists_every_table_and_the_stats() -> None:
    store = MemoryStore()
    manifest = write_version(store, synthetic_project(range(50)), target_chunk_rows=8)
    assert list(manifest.tables) == [t for t in TABLES if t not in OPTIONAL_TABLES]
    assert manifest.table("users").chunks == ()
    assert manifest.table("figures").rows == 0  # an optional table it lacks reads as empty
    assert manifest.source.project_id == "42"
    assert manifest.bytes_written == manifest.data_bytes > 0
    assert manifest.bytes_reused == 0
    assert manifest.chunks_written == len(manifest.chunk_keys())
    stored = {info.key: info.size for info in store.list()}
    for table in manifest.tables.values():
        for chunk in table.chunks:
            assert chunk.key == chunk_key(PREFIX, chunk.sha256)
            assert stored[chunk.key] == chunk.bytes


def test_source_timestamps() -> None:
    updated = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    writer = SnapshotWriter(
        MemoryStore(),
        PREFIX,
        source={**SOURCE, "captured_at": "2024-05-06T08:00:00+02:00", "source_updated_at": updated},
    )
    manifest = writer.finish()
    assert manifest.captured_at == datetime(2024, 5, 6, 6, 0, tzinfo=UTC)
    assert manifest.source_updated_at == updated


def test_memory_stays_bounded_while_writing() -> None:
    """The open chunk never holds more than the policy's maximum, however long the table."""
    writer = _writer(target_chunk_rows=100)
    peak = 0
    for table, batch in synthetic_project(range(3000), annotations_per_item=3, batch_rows=400):
        writer.write(table, batch)
        peak = max(peak, writer.buffered_rows)
    assert 0 < peak < writer.policy.max_weight * 3  # at most one open chunk per table
    manifest = writer.finish()
    assert manifest.table("annotations").rows == 9000
    assert max(c.rows for c in manifest.table("annotations").chunks) <= writer.policy.max_weight


def test_a_corrupt_stored_chunk_is_not_silently_reused() -> None:
    store = MemoryStore()
    first = write_version(store, synthetic_project(range(20)))
    victim = first.table("items").chunks[0]
    store.put(victim.key, b"truncated")
    with pytest.raises(IntegrityError, match=victim.key):
        write_version(store, synthetic_project(range(20)))
