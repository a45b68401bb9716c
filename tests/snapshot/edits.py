"""Annotation rows, edits of them and the checks the format's property tests share."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from labelvault.diff import diff
from labelvault.query import query
from labelvault.snapshot.delta import DEFAULT_DELTA_POLICY, DeltaPolicy
from labelvault.snapshot.manifest import Manifest, load_manifest, write_manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import canonical_json, fingerprint, schema_for
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import PREFIX, SOURCE

Rows = dict[str, tuple[str, int]]  # key -> (class name, a value standing for the geometry)

PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def annotations_table(rows: Rows, *, author: str = "a@example.com") -> pa.Table:
    records = []
    for key in sorted(rows):
        class_name, value = rows[key]
        geometry = canonical_json({"points": [value, value + 0.5]})
        records.append(
            {
                "key": key,
                "fingerprint": fingerprint([class_name, geometry]),
                "item_key": f"item/{key[:2]}",
                "kind": "figure",
                "class_name": class_name,
                "geometry_type": "rectangle",
                "geometry": geometry,
                "author": author,
                "created_at": None,
                "updated_at": None,
                "raw": canonical_json(
                    {"key": key, "class": class_name, "geometry": json.loads(geometry)}
                ),
            }
        )
    return pa.Table.from_pylist(records, schema=schema_for("annotations"))


def write_annotations(
    store: ObjectStore,
    table: pa.Table,
    previous: Manifest | None,
    policy: DeltaPolicy = DEFAULT_DELTA_POLICY,
    batch_rows: int = 7,
    **options: Any,
) -> Manifest:
    """``table`` written as one version (``options`` go to the writer), stored and read back."""
    writer = SnapshotWriter(
        store,
        PREFIX,
        source=SOURCE,
        target_chunk_rows=4,
        previous=previous,
        delta_policy=policy,
        **options,
    )
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write("annotations", batch)
    manifest = writer.finish()
    return load_manifest(store, write_manifest(store, PREFIX, manifest))


def initial_rows(count: int) -> Rows:
    return {f"{index:04d}": (f"class{index % 3}", index) for index in range(0, count * 2, 2)}


def changed_at(rows: Rows, positions: range) -> Rows:
    """``rows`` with the rows at ``positions`` (in key order) changed."""
    return {
        key: (name, value + 1) if index in positions else (name, value)
        for index, (key, (name, value)) in enumerate(sorted(rows.items()))
    }


@st.composite
def random_edits(draw: st.DrawFn, rows: Rows) -> Rows:
    """Some rows changed, removed, or added (between or after)."""
    keys = sorted(rows)
    edited = dict(rows)
    for key in draw(st.lists(st.sampled_from(keys), max_size=6)) if keys else []:
        edited[key] = (draw(st.sampled_from(["class0", "class9"])), draw(st.integers(0, 9)))
    for key in draw(st.lists(st.sampled_from(keys), max_size=4)) if keys else []:
        edited.pop(key, None)
    for index in draw(st.lists(st.integers(0, 120), max_size=5)):
        edited[f"{index:04d}{'x' if index % 2 == 0 else ''}"] = ("class1", index)
    return edited


@st.composite
def clustered_edits(draw: st.DrawFn, rows: Rows) -> Rows:
    """A run of consecutive rows changed (one re-labelled image batch), some of it removed."""
    keys = sorted(rows)
    if not keys:
        return dict(rows)
    start = draw(st.integers(0, len(keys) - 1))
    run = keys[start : start + draw(st.integers(1, 12))]
    value = draw(st.integers(100, 200))
    edited = {**rows, **dict.fromkeys(run, ("class2", value))}
    if draw(st.booleans()):
        edited.pop(run[-1])
    return edited


@st.composite
def scattered_edits(draw: st.DrawFn, rows: Rows) -> Rows:
    """Every ``step``-th row changed, and rows inserted every ``step`` keys."""
    keys = sorted(rows)
    step = draw(st.integers(2, 10))
    value = draw(st.integers(300, 400))
    edited = dict(rows)
    for key in keys[draw(st.integers(0, step - 1)) :: step]:
        edited[key] = (rows[key][0], value)
    if draw(st.booleans()):
        for key in keys[::step]:
            edited[f"{key}i"] = ("class3", value)
    return edited


@st.composite
def renamed_class(draw: st.DrawFn, rows: Rows) -> Rows:
    """One class renamed in every row that has it."""
    old = draw(st.sampled_from(["class0", "class1", "class2", "class9"]))
    new = draw(st.sampled_from(["renamed", "class1"]))
    return {key: (new if name == old else name, value) for key, (name, value) in rows.items()}


def edits(rows: Rows) -> st.SearchStrategy[Rows]:
    """A new state of ``rows``: random, clustered or scattered edits, or a class renamed."""
    return st.one_of(
        random_edits(rows), clustered_edits(rows), scattered_edits(rows), renamed_class(rows)
    )


policies = st.builds(
    DeltaPolicy,
    max_share=st.sampled_from([0.0, 0.1, 0.5, 10.0]),
    max_chain=st.sampled_from([0, 1, 3, 16]),
    prefer_smaller=st.booleans(),
)


def pairs(table: pa.Table, left: str, right: str) -> dict[Any, Any]:
    return dict(zip(table.column(left).to_pylist(), table.column(right).to_pylist(), strict=True))


def expected_diff(old: Rows, new: Rows) -> dict[str, set[str]]:
    old_fp = pairs(annotations_table(old), "key", "fingerprint")
    new_fp = pairs(annotations_table(new), "key", "fingerprint")
    return {
        "added": set(new_fp) - set(old_fp),
        "removed": set(old_fp) - set(new_fp),
        "changed": {k for k in set(old_fp) & set(new_fp) if old_fp[k] != new_fp[k]},
    }


def assert_version_holds(
    store: ObjectStore, previous: Manifest, new: Manifest, before: Rows, rows: Rows
) -> None:
    """``new`` reads back as ``rows`` (streaming and in SQL), has the content hash of those
    rows written whole, and its diff from ``previous`` (which held ``before``) is exact."""
    assert SnapshotReader(store, new).read_table("annotations").equals(annotations_table(rows))
    sql = query(store, new, "SELECT * FROM annotations ORDER BY key")
    assert sql.cast(schema_for("annotations")).equals(annotations_table(rows))
    assert new.table("annotations").rows == len(rows)
    whole = write_annotations(MemoryStore(), annotations_table(rows), None)
    assert new.content_hash == whole.content_hash
    changes = diff(store, previous, new, tables=["annotations"]).tables["annotations"]
    got = {
        "added": set(changes.added_keys),
        "removed": set(changes.removed_keys),
        "changed": set(changes.changed_keys),
    }
    assert got == expected_diff(before, rows)
