"""Hypothesis strategies for the snapshot tables, and a deterministic synthetic project.

- :func:`table_rows` / :func:`tables` / :func:`snapshots`: generated rows of every table, with
  nulls, empty tables, unicode, very long strings, nested JSON and float edge values in JSON
  columns (sub-pixel coordinates, ``0.1 + 0.2``, ``1e-300``, ``-0.0``, huge integers).
- :func:`synthetic_project`: a seeded, streaming project of any size (items with figures and
  tags), with switches to edit, drop or insert items, for incremental, diff and benchmark runs.
"""

from __future__ import annotations

import random
from collections.abc import Container, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from labelvault.snapshot.schema import SCHEMAS, TABLES, canonical_json, fingerprint

__all__ = [
    "EDGE_FLOATS",
    "item_key",
    "json_values",
    "snapshots",
    "synthetic_project",
    "table_rows",
    "tables",
    "texts",
]

#: Floats that must survive a round trip exactly inside JSON text.
EDGE_FLOATS = (
    0.1 + 0.2,
    1e-300,
    5e-324,
    -0.0,
    0.0,
    1.7976931348623157e308,
    123.456789012345678,
    1 / 3,
    -2.5e-7,
)

_ALPHABET = st.characters(exclude_categories=("Cs",))  # no lone surrogates: not UTF-8
texts = st.text(_ALPHABET, max_size=40)
# Long strings are built by repetition: cheap to draw, still thousands of characters long.
_long_texts = st.builds(
    lambda text, times: text * times,
    st.text(_ALPHABET, min_size=1, max_size=8),
    st.integers(200, 5000),
)
_keys = st.text(_ALPHABET, min_size=1, max_size=24)

_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(EDGE_FLOATS),
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Nested JSON values: objects, arrays, strings, numbers (edge floats), booleans, null."""
    scalars = st.one_of(st.none(), st.booleans(), _numbers, texts)
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


_geometries = st.fixed_dictionaries(
    {
        "points": st.fixed_dictionaries(
            {
                "exterior": st.lists(st.tuples(_numbers, _numbers), max_size=6),
                "interior": st.just([]),
            }
        )
    }
)

_timestamps = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(UTC),
    ),
)


def _value_strategy(field: pa.Field) -> st.SearchStrategy[Any]:
    """Values for one normalized column (JSON-valued columns hold canonical JSON text)."""
    name, kind = field.name, field.type
    if pa.types.is_timestamp(kind):
        return _timestamps
    if pa.types.is_int32(kind):
        values: st.SearchStrategy[Any] = st.integers(-(2**31), 2**31 - 1)
    elif pa.types.is_int64(kind):
        values = st.integers(-(2**63), 2**63 - 1)
    elif pa.types.is_floating(kind):  # NaN != NaN would fail equality, not the format
        values = st.floats(allow_nan=False)
    elif name == "geometry":
        values = _geometries.map(canonical_json)
    elif name in ("definitions", "settings", "custom_data", "meta", "value"):
        values = json_values().map(canonical_json)
    else:
        values = st.one_of(texts, _long_texts) if name in ("description", "readme") else texts
    return values if not field.nullable else st.one_of(st.none(), values)


def _row(table: str) -> st.SearchStrategy[dict[str, Any]]:
    schema = SCHEMAS[table]
    content = {
        field.name: _value_strategy(field)
        for field in schema
        if field.name not in ("key", "fingerprint", "raw")
    }
    return st.fixed_dictionaries(
        {**content, "raw": st.one_of(json_values(), _long_texts).map(canonical_json)}
    )


def _finish_rows(keys: Iterable[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    finished = []
    for key, row in zip(sorted(keys), rows, strict=True):
        content = {k: v for k, v in row.items() if k != "raw"}
        finished.append(
            {
                "key": key,
                "fingerprint": fingerprint({k: _jsonable(v) for k, v in content.items()}),
                **row,
            }
        )
    return finished


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@st.composite
def table_rows(draw: st.DrawFn, table: str, max_rows: int = 30) -> list[dict[str, Any]]:
    """Rows of ``table`` (as dicts) in strictly increasing key order; possibly none."""
    keys = draw(st.sets(_keys, max_size=max_rows))
    rows = draw(st.lists(_row(table), min_size=len(keys), max_size=len(keys)))
    return _finish_rows(keys, rows)


def tables(table: str, max_rows: int = 30) -> st.SearchStrategy[pa.Table]:
    """A ``pa.Table`` of ``table`` in its schema, keys strictly increasing."""
    return table_rows(table, max_rows).map(
        lambda rows: pa.Table.from_pylist(rows, schema=SCHEMAS[table])
    )


@st.composite
def snapshots(draw: st.DrawFn, max_rows: int = 20) -> dict[str, pa.Table]:
    """One table per name in :data:`TABLES` (some empty)."""
    return {name: draw(tables(name, max_rows)) for name in TABLES}


# --- a deterministic synthetic project ------------------------------------------------------

_CLASSES = ("car", "person", "bicycle", "tree", "traffic light", "dog", "cat", "bus", "sign")
_AUTHORS = ("alice", "bob", "carol", "dave")
_BASE_US = 1_700_000_000_000_000


def item_key(item_id: int) -> str:
    """The key of synthetic item ``item_id`` (fixed width, so key order is id order)."""
    return f"{item_id:012d}"


def _batches(table: str, rows: Iterator[dict[str, Any]], batch_rows: int) -> Iterator[Any]:
    schema = SCHEMAS[table]
    buffer: list[dict[str, Any]] = []
    for row in rows:
        buffer.append(row)
        if len(buffer) >= batch_rows:
            yield table, pa.RecordBatch.from_pylist(buffer, schema=schema)
            buffer = []
    if buffer:
        yield table, pa.RecordBatch.from_pylist(buffer, schema=schema)


def _annotation(item_id: int, index: int, salt: str, rng: random.Random) -> dict[str, Any]:
    class_name = _CLASSES[rng.randrange(len(_CLASSES))]
    x, y = rng.uniform(0, 4000), rng.uniform(0, 3000)
    if rng.random() < 0.5:
        geometry_type = "rectangle"
        points = [[round(x, 3), round(y, 3)], [round(x + 50.5, 3), round(y + 20.25, 3)]]
    else:
        geometry_type = "polygon"
        points = [
            [round(x + rng.uniform(-40, 40), 3), round(y + rng.uniform(-40, 40), 3)]
            for _ in range(rng.randrange(3, 9))
        ]
    geometry = canonical_json({"points": {"exterior": points, "interior": []}})
    author = _AUTHORS[rng.randrange(len(_AUTHORS))]
    figure_id = item_id * 1000 + index
    created = _BASE_US + figure_id * 1_000
    content = {
        "item": item_key(item_id),
        "class": class_name,
        "geometry_type": geometry_type,
        "geometry": geometry,
        "salt": salt,
    }
    raw = {
        "id": figure_id,
        "entityId": item_id,
        "classTitle": class_name,
        "geometryType": geometry_type,
        "geometry": {"points": {"exterior": points, "interior": []}},
        "labelerLogin": author,
        "tags": [],
        "meta": {"salt": salt} if salt else {},
        "createdAt": created,
    }
    return {
        "key": f"{item_key(item_id)}/{index:04d}",
        "fingerprint": fingerprint(content),
        "item_key": item_key(item_id),
        "kind": "figure",
        "class_name": class_name,
        "geometry_type": geometry_type,
        "geometry": geometry,
        "author": author,
        "created_at": created,
        "updated_at": created,
        "raw": canonical_json(raw),
    }


def synthetic_project(
    item_ids: Iterable[int],
    *,
    annotations_per_item: int = 10,
    edited: Container[int] = (),
    salt: str = "v2",
    batch_rows: int = 1000,
    seed: int = 0,
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Stream ``(table, batch)`` pages of a synthetic project, each table in key order.

    ``item_ids`` (increasing) chooses the items; each has ``annotations_per_item`` figures and
    one tag. Items in ``edited`` have their figures changed (tagged with ``salt``). Pages
    interleave tables like a platform does: project, datasets, then a page of items followed
    by their annotations and tags, and so on. Deterministic: the same arguments give the same
    rows.
    """
    ids = item_ids
    project = {
        "key": "project",
        "fingerprint": fingerprint({"name": "synthetic"}),
        "name": "synthetic",
        "description": "a generated project",
        "kind": "images",
        "definitions": canonical_json({"classes": list(_CLASSES)}),
        "settings": "{}",
        "custom_data": "{}",
        "readme": "",
        "created_at": _BASE_US,
        "updated_at": _BASE_US,
        "raw": canonical_json({"id": 1, "name": "synthetic"}),
    }
    yield "project", pa.RecordBatch.from_pylist([project], schema=SCHEMAS["project"])
    dataset = {
        "key": "dataset-1",
        "fingerprint": fingerprint({"path": "train"}),
        "parent_key": None,
        "name": "train",
        "path": "train",
        "description": "",
        "custom_data": "{}",
        "created_at": _BASE_US,
        "updated_at": _BASE_US,
        "raw": canonical_json({"id": 1, "name": "train"}),
    }
    yield "datasets", pa.RecordBatch.from_pylist([dataset], schema=SCHEMAS["datasets"])

    def items(group: list[int]) -> Iterator[dict[str, Any]]:
        for item_id in group:
            rng = random.Random(f"{seed}/item/{item_id}")
            name = f"img_{item_id:09d}.jpg"
            width, height = rng.choice(((1920, 1080), (4000, 3000), (640, 480)))
            image_hash = f"{rng.getrandbits(128):032x}"
            content = {"name": name, "hash": image_hash, "dataset": "train"}
            yield {
                "key": item_key(item_id),
                "fingerprint": fingerprint(content),
                "dataset_key": "dataset-1",
                "name": name,
                "kind": "image",
                "hash": image_hash,
                "link": None,
                "size_bytes": rng.randrange(10_000, 5_000_000),
                "width": width,
                "height": height,
                "meta": "{}",
                "created_at": _BASE_US + item_id,
                "updated_at": _BASE_US + item_id,
                "raw": canonical_json(
                    {"id": item_id, "name": name, "hash": image_hash, "width": width}
                ),
            }

    def annotations(group: list[int]) -> Iterator[dict[str, Any]]:
        for item_id in group:
            item_salt = salt if item_id in edited else ""
            rng = random.Random(f"{seed}/figures/{item_id}/{item_salt}")
            for index in range(annotations_per_item):
                yield _annotation(item_id, index, item_salt, rng)

    def tags(group: list[int]) -> Iterator[dict[str, Any]]:
        for item_id in group:
            value = "good" if item_id % 3 else "review"
            yield {
                "key": f"{item_key(item_id)}/quality",
                "fingerprint": fingerprint({"item": item_key(item_id), "value": value}),
                "owner_type": "item",
                "owner_key": item_key(item_id),
                "name": "quality",
                "value": canonical_json(value),
                "author": "alice",
                "created_at": _BASE_US,
                "updated_at": _BASE_US,
                "raw": canonical_json({"tagId": 7, "entityId": item_id, "value": value}),
            }

    # A page of items, then the pages of their figures and tags: the tables interleave.
    group: list[int] = []
    for item_id in ids:
        group.append(item_id)
        if len(group) == batch_rows:
            yield from _batches("items", items(group), batch_rows)
            yield from _batches("annotations", annotations(group), batch_rows)
            yield from _batches("tags", tags(group), batch_rows)
            group = []
    if group:
        yield from _batches("items", items(group), batch_rows)
        yield from _batches("annotations", annotations(group), batch_rows)
        yield from _batches("tags", tags(group), batch_rows)
