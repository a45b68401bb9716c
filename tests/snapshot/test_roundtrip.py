"""read(write(x)) == x for generated tables of every schema."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelvault.snapshot.manifest import load_manifest, write_manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import (
    OPTIONAL_TABLES,
    TABLES,
    canonical_json,
    fingerprint,
    schema_for,
)
from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import PREFIX, split, write_version
from tests.strategies import EDGE_FLOATS, snapshots, tables

_settings = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _content_sum(table: pa.Table) -> str:
    total = sum(int(f, 16) for f in table.column("fingerprint").to_pylist())
    return format(total % 2**256, "064x")


@pytest.mark.parametrize("table_name", TABLES)
@_settings
@given(data=st.data())
def test_table_round_trip(table_name: str, data: st.DataObject) -> None:
    table = data.draw(tables(table_name, max_rows=40), label="table")
    sizes = data.draw(st.lists(st.integers(1, 15), min_size=1, max_size=4), label="batch sizes")
    target = data.draw(st.sampled_from([1, 2, 5, 64]), label="target chunk rows")
    store = MemoryStore()

    manifest = write_version(
        store,
        ((table_name, batch) for batch in split(table, sizes)),
        target_chunk_rows=target,
        row_group_rows=3,
    )
    loaded = load_manifest(store, write_manifest(store, PREFIX, manifest))
    assert loaded == manifest
    back = SnapshotReader(store, loaded).read_table(table_name)

    assert back.schema.equals(schema_for(table_name))
    assert back.equals(table)
    entry = loaded.table(table_name)
    assert entry.rows == table.num_rows
    assert sum(chunk.rows for chunk in entry.chunks) == table.num_rows
    assert entry.content_sum == _content_sum(table)
    keys = table.column("key").to_pylist()
    assert [c.min_key for c in entry.chunks] == [keys[i] for i in _chunk_starts(entry.chunks)]


def _chunk_starts(chunks: tuple[object, ...]) -> list[int]:
    starts, position = [], 0
    for chunk in chunks:
        starts.append(position)
        position += chunk.rows  # type: ignore[attr-defined]
    return starts


@settings(_settings, max_examples=15)
@given(project=snapshots(max_rows=12), batch=st.integers(1, 7))
def test_whole_project_round_trip_with_interleaved_tables(
    project: dict[str, pa.Table], batch: int
) -> None:
    store = MemoryStore()
    iterators = {name: iter(list(split(table, [batch]))) for name, table in project.items()}
    pages = []
    while iterators:  # one page of each table in turn, as a platform streams them
        for name in list(iterators):
            page = next(iterators[name], None)
            if page is None:
                del iterators[name]
            else:
                pages.append((name, page))
    manifest = write_version(store, pages, target_chunk_rows=4)

    reader = SnapshotReader(store, load_manifest(store, write_manifest(store, PREFIX, manifest)))
    for name, table in project.items():
        assert reader.read_table(name).equals(table), name
        assert manifest.table(name).rows == table.num_rows
    # a table added without a format bump is listed only when it has rows
    listed = {n for n in TABLES if n not in OPTIONAL_TABLES or project[n].num_rows}
    assert set(manifest.tables) == listed


def test_json_floats_survive_exactly() -> None:
    points = [[x, y] for x in EDGE_FLOATS for y in (0.1 + 0.2, -0.0)]
    geometry = {"points": {"exterior": points, "interior": []}, "big": 2**80, "tiny": 1e-300}
    row = {
        "key": "fig-1",
        "fingerprint": fingerprint(geometry),
        "item_key": "item-1",
        "geometry": canonical_json(geometry),
        "raw": canonical_json({"geometry": geometry}),
    }
    store = MemoryStore()
    table = pa.Table.from_pylist([row], schema=schema_for("annotations"))
    manifest = write_version(store, [("annotations", b) for b in table.to_batches()])

    back = SnapshotReader(store, manifest).read_table("annotations")
    decoded = json.loads(back.column("geometry")[0].as_py())
    for (x, y), (bx, by) in zip(points, decoded["points"]["exterior"], strict=True):
        assert (bx, by) == (x, y)
        assert math.copysign(1, bx) == math.copysign(1, x)
        assert math.copysign(1, by) == math.copysign(1, y)
    assert decoded["big"] == 2**80
    assert decoded["tiny"] == 1e-300
    assert back.column("raw")[0].as_py() == row["raw"]


def test_very_long_strings_and_empty_tables_round_trip() -> None:
    long_text = "ü" * 3_000_000  # a 6 MB readme: one row larger than a target chunk
    row = {"key": "p", "fingerprint": "0" * 64, "readme": long_text, "raw": "{}"}
    store = MemoryStore()
    table = pa.Table.from_pylist([row], schema=schema_for("project"))
    manifest = write_version(store, [("project", table.to_batches()[0])])

    reader = SnapshotReader(store, manifest)
    assert reader.read_table("project").equals(table)
    for name in TABLES:
        if name != "project":
            assert manifest.table(name).rows == 0
            assert manifest.table(name).chunks == ()
            assert reader.read_table(name).num_rows == 0
            assert reader.read_table(name).schema.equals(schema_for(name))


def test_columns_are_selected_and_ordered() -> None:
    rows = [
        {"key": f"k{i}", "fingerprint": f"{i:064x}", "login": f"u{i}", "raw": "{}"}
        for i in range(5)
    ]
    store = MemoryStore()
    manifest = write_version(
        store, [("users", pa.RecordBatch.from_pylist(rows, schema=schema_for("users")))]
    )
    batches = list(SnapshotReader(store, manifest).iter_batches("users", ["login", "key"]))
    assert pa.Table.from_batches(batches).to_pylist() == [
        {"login": f"u{i}", "key": f"k{i}"} for i in range(5)
    ]
    with pytest.raises(ValueError, match="nope"):
        list(SnapshotReader(store, manifest).iter_batches("users", ["nope"]))
