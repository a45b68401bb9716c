"""Format 2 deltas: a version read back equals the rows captured, whatever mix of deltas and
compactions wrote it; diffs on a shared base read the deltas only; format 1 stays readable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelvault.diff import diff
from labelvault.query import query
from labelvault.snapshot.delta import DEFAULT_DELTA_POLICY, NO_DELTAS, DeltaPolicy
from labelvault.snapshot.manifest import Manifest, load_manifest, write_manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import canonical_json, fingerprint, schema_for
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import PREFIX, SOURCE

Rows = dict[str, tuple[str, int]]  # key -> (class name, a value standing for the geometry)

_settings = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _table(rows: Rows, *, author: str = "a@example.com") -> pa.Table:
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


def _write(
    store: ObjectStore,
    table: pa.Table,
    previous: Manifest | None,
    policy: DeltaPolicy = DEFAULT_DELTA_POLICY,
    batch_rows: int = 7,
) -> Manifest:
    writer = SnapshotWriter(
        store,
        PREFIX,
        source=SOURCE,
        target_chunk_rows=4,
        previous=previous,
        delta_policy=policy,
    )
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write("annotations", batch)
    manifest = writer.finish()
    return load_manifest(store, write_manifest(store, PREFIX, manifest))


def _initial(count: int) -> Rows:
    return {f"{index:04d}": (f"class{index % 3}", index) for index in range(0, count * 2, 2)}


@st.composite
def _random_edits(draw: st.DrawFn, rows: Rows) -> Rows:
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
def _clustered_edits(draw: st.DrawFn, rows: Rows) -> Rows:
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
def _scattered_edits(draw: st.DrawFn, rows: Rows) -> Rows:
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
def _renamed_class(draw: st.DrawFn, rows: Rows) -> Rows:
    """One class renamed in every row that has it."""
    old = draw(st.sampled_from(["class0", "class1", "class2", "class9"]))
    new = draw(st.sampled_from(["renamed", "class1"]))
    return {key: (new if name == old else name, value) for key, (name, value) in rows.items()}


def _edits(rows: Rows) -> st.SearchStrategy[Rows]:
    """A new state of ``rows``: random, clustered or scattered edits, or a class renamed."""
    return st.one_of(
        _random_edits(rows), _clustered_edits(rows), _scattered_edits(rows), _renamed_class(rows)
    )


_policies = st.builds(
    DeltaPolicy,
    max_share=st.sampled_from([0.0, 0.1, 0.5, 10.0]),
    max_chain=st.sampled_from([0, 1, 3, 16]),
    prefer_smaller=st.booleans(),
)


def _pairs(table: pa.Table, left: str, right: str) -> dict[Any, Any]:
    return dict(zip(table.column(left).to_pylist(), table.column(right).to_pylist(), strict=True))


def _expected_diff(old: Rows, new: Rows) -> dict[str, set[str]]:
    old_fp = _pairs(_table(old), "key", "fingerprint")
    new_fp = _pairs(_table(new), "key", "fingerprint")
    return {
        "added": set(new_fp) - set(old_fp),
        "removed": set(old_fp) - set(new_fp),
        "changed": {k for k in set(old_fp) & set(new_fp) if old_fp[k] != new_fp[k]},
    }


@_settings
@given(data=st.data())
def test_random_edit_sequences_read_back_as_captured(data: st.DataObject) -> None:
    store = MemoryStore()
    rows = _initial(data.draw(st.integers(0, 40), label="rows"))
    policy = data.draw(_policies, label="policy")
    batch_rows = data.draw(st.integers(1, 9), label="batch rows")
    manifest = _write(store, _table(rows), None, policy, batch_rows)
    for _ in range(data.draw(st.integers(1, 5), label="versions")):
        edited = data.draw(_edits(rows), label="edits")
        new = _write(store, _table(edited), manifest, policy, batch_rows)

        back = SnapshotReader(store, new).read_table("annotations")
        assert back.equals(_table(edited))
        sql = query(store, new, "SELECT * FROM annotations ORDER BY key")
        assert sql.cast(schema_for("annotations")).equals(_table(edited))
        assert new.table("annotations").rows == len(edited)
        whole = _write(MemoryStore(), _table(edited), None)
        assert new.content_hash == whole.content_hash
        changes = diff(store, manifest, new, tables=["annotations"]).tables["annotations"]
        got = {
            "added": set(changes.added_keys),
            "removed": set(changes.removed_keys),
            "changed": set(changes.changed_keys),
        }
        assert got == _expected_diff(rows, edited)
        rows, manifest = edited, new


#: Room for the three versions of :func:`_versions` (about 3% of the rows change in each, and
#: deltas are cumulative) to stay deltas on the first one.
_ROOMY = DeltaPolicy(max_share=0.125)


def _versions(store: ObjectStore, policy: DeltaPolicy) -> Iterator[tuple[Rows, Manifest]]:
    rows = _initial(200)
    manifest = _write(store, _table(rows), None, policy)
    yield rows, manifest
    for step in range(1, 4):
        rows = dict(rows)
        for index in range(step, 400, 97):  # scattered: one row in every 97
            key = f"{index - index % 2:04d}"
            rows[key] = ("class7", step)
        rows.pop(f"{step * 10:04d}", None)
        rows[f"{step * 10 + 1:04d}"] = ("class8", step)
        manifest = _write(store, _table(rows), manifest, policy)
        yield rows, manifest


def test_a_scattered_change_is_stored_as_a_small_delta() -> None:
    store = MemoryStore()
    history = list(_versions(store, _ROOMY))
    first, latest = history[0][1], history[-1][1]
    entry = latest.table("annotations")
    assert entry.has_delta
    assert entry.chain == 3
    assert [c.key for c in entry.chunks] == [c.key for c in first.table("annotations").chunks]
    assert latest.bytes_written < first.bytes_written / 4


@pytest.mark.parametrize(
    ("step", "stored_as_delta"), [(100, True), (50, True), (10, False)], ids=["1%", "2%", "10%"]
)
def test_the_default_policy_keeps_small_changes_as_deltas_and_compacts_large_ones(
    step: int, stored_as_delta: bool
) -> None:
    store = MemoryStore()
    rows = _initial(1000)
    base = _write(store, _table(rows), None)
    edited = {
        key: (name, value + 1) if index % step == 0 else (name, value)
        for index, (key, (name, value)) in enumerate(sorted(rows.items()))
    }
    new = _write(store, _table(edited), base)
    assert new.table("annotations").has_delta is stored_as_delta
    assert SnapshotReader(store, new).read_table("annotations").equals(_table(edited))


def test_without_deltas_every_version_is_written_whole() -> None:
    store = MemoryStore()
    for _, manifest in _versions(store, NO_DELTAS):
        assert not manifest.table("annotations").has_delta


def test_a_long_chain_is_compacted() -> None:
    store = MemoryStore()
    chains = [
        m.table("annotations").chain
        for _, m in _versions(store, DeltaPolicy(max_share=_ROOMY.max_share, max_chain=2))
    ]
    assert chains == [0, 1, 2, 0]


def test_a_delta_past_its_share_is_compacted_while_streaming() -> None:
    store = MemoryStore()
    rows = _initial(200)
    base = _write(store, _table(rows), None)
    renamed = {key: ("renamed", value) for key, (_, value) in rows.items()}
    new = _write(store, _table(renamed), base)
    assert not new.table("annotations").has_delta
    assert SnapshotReader(store, new).read_table("annotations").equals(_table(renamed))


def test_the_same_inputs_make_the_same_manifest() -> None:
    runs = []
    for _ in range(2):
        store = MemoryStore()
        runs.append([m.table("annotations") for _, m in _versions(store, _ROOMY)])
    assert runs[0] == runs[1]


def test_a_row_whose_only_change_is_outside_the_fingerprint_is_kept() -> None:
    store = MemoryStore()
    rows = _initial(50)
    base = _write(store, _table(rows), None)
    new = _write(store, _table(rows, author="b@example.com"), base, DeltaPolicy(max_share=10))
    assert (
        SnapshotReader(store, new)
        .read_table("annotations")
        .equals(_table(rows, author="b@example.com"))
    )


def test_diff_of_consecutive_delta_versions_reads_the_deltas_only() -> None:
    store = MemoryStore()
    history = list(_versions(store, _ROOMY))
    (old_rows, old), (new_rows, new) = history[-2], history[-1]
    result = diff(store, old, new, tables=["annotations"])
    entries = (old.table("annotations"), new.table("annotations"))
    assert result.chunks_read == sum(len(e.delta) + len(e.displaced) for e in entries)
    changes = result.tables["annotations"]
    assert set(changes.changed_keys) == _expected_diff(old_rows, new_rows)["changed"]


def test_diff_of_a_base_and_the_delta_on_it_reads_the_delta_only() -> None:
    store = MemoryStore()
    (old_rows, old), (new_rows, new) = list(_versions(store, _ROOMY))[:2]
    assert not old.table("annotations").has_delta
    entry = new.table("annotations")
    assert entry.has_delta
    assert [c.sha256 for c in entry.chunks] == [c.sha256 for c in old.table("annotations").chunks]
    result = diff(store, old, new, tables=["annotations"])
    assert result.chunks_read == len(entry.delta) + len(entry.displaced)
    expected = _expected_diff(old_rows, new_rows)
    changes = result.tables["annotations"]
    assert set(changes.changed_keys) == expected["changed"]
    assert set(changes.removed_keys) == expected["removed"]
    assert set(changes.added_keys) == expected["added"]


def test_sql_sees_the_merged_table() -> None:
    store = MemoryStore()
    rows, manifest = list(_versions(store, _ROOMY))[-1]
    assert manifest.table("annotations").has_delta
    result = query(
        store,
        manifest,
        "SELECT class_name, count(*) AS n FROM annotations GROUP BY 1 ORDER BY 1",
    )
    expected: dict[str, int] = {}
    for class_name, _ in rows.values():
        expected[class_name] = expected.get(class_name, 0) + 1
    assert _pairs(result, "class_name", "n") == expected


def test_delta_chunks_are_referenced_by_the_version() -> None:
    store = MemoryStore()
    _, manifest = list(_versions(store, _ROOMY))[-1]
    entry = manifest.table("annotations")
    assert {c.key for c in (*entry.delta, *entry.displaced)} <= manifest.referenced_keys()


def test_a_manifest_without_deltas_keeps_its_format_1_form() -> None:
    store = MemoryStore()
    manifest = _write(store, _table(_initial(10)), None)
    stored: dict[str, Any] = json.loads(manifest.to_json())
    assert set(stored["tables"]["annotations"]) == {"rows", "bytes", "content_sum", "chunks"}


@pytest.mark.parametrize(
    ("field", "value"), [("max_share", -0.5), ("max_chain", -1)], ids=["share", "chain"]
)
def test_a_bad_policy_is_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{field} must not be negative"):
        DeltaPolicy(**{field: value})
