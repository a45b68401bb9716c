"""Format 2 deltas: a version read back equals the rows captured, whatever mix of deltas and
compactions wrote it; diffs on a shared base read the deltas only; format 1 stays readable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelvault.diff import diff
from labelvault.query import query
from labelvault.snapshot.delta import NO_DELTAS, DeltaPolicy
from labelvault.snapshot.manifest import Manifest, load_manifest, write_manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import FORMAT_VERSION
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot.edits import (
    PROPERTY_SETTINGS,
    Rows,
    annotations_table,
    assert_version_holds,
    changed_at,
    edits,
    expected_diff,
    initial_rows,
    pairs,
    policies,
    write_annotations,
)
from tests.snapshot.helpers import PREFIX


@PROPERTY_SETTINGS
@given(data=st.data())
def test_random_edit_sequences_read_back_as_captured(data: st.DataObject) -> None:
    store = MemoryStore()
    rows = initial_rows(data.draw(st.integers(0, 40), label="rows"))
    policy = data.draw(policies, label="policy")
    batch_rows = data.draw(st.integers(1, 9), label="batch rows")
    manifest = write_annotations(store, annotations_table(rows), None, policy, batch_rows)
    for _ in range(data.draw(st.integers(1, 5), label="versions")):
        edited = data.draw(edits(rows), label="edits")
        new = write_annotations(store, annotations_table(edited), manifest, policy, batch_rows)

        assert_version_holds(store, manifest, new, rows, edited)
        rows, manifest = edited, new


#: Room for the three versions of :func:`_versions` (about 3% of the rows change in each, and
#: deltas are cumulative) to stay deltas on the first one.
_ROOMY = DeltaPolicy(max_share=0.125)


def _versions(store: ObjectStore, policy: DeltaPolicy) -> Iterator[tuple[Rows, Manifest]]:
    rows = initial_rows(200)
    manifest = write_annotations(store, annotations_table(rows), None, policy)
    yield rows, manifest
    for step in range(1, 4):
        rows = dict(rows)
        for index in range(step, 400, 97):  # scattered: one row in every 97
            key = f"{index - index % 2:04d}"
            rows[key] = ("class7", step)
        rows.pop(f"{step * 10:04d}", None)
        rows[f"{step * 10 + 1:04d}"] = ("class8", step)
        manifest = write_annotations(store, annotations_table(rows), manifest, policy)
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
    rows = initial_rows(1000)
    base = write_annotations(store, annotations_table(rows), None)
    edited = changed_at(rows, range(0, len(rows), step))
    new = write_annotations(store, annotations_table(edited), base)
    assert new.table("annotations").has_delta is stored_as_delta
    assert SnapshotReader(store, new).read_table("annotations").equals(annotations_table(edited))


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
    rows = initial_rows(200)
    base = write_annotations(store, annotations_table(rows), None)
    renamed = {key: ("renamed", value) for key, (_, value) in rows.items()}
    new = write_annotations(store, annotations_table(renamed), base)
    assert not new.table("annotations").has_delta
    assert SnapshotReader(store, new).read_table("annotations").equals(annotations_table(renamed))


def test_the_same_inputs_make_the_same_manifest() -> None:
    runs = []
    for _ in range(2):
        store = MemoryStore()
        runs.append([m.table("annotations") for _, m in _versions(store, _ROOMY)])
    assert runs[0] == runs[1]


def test_a_row_whose_only_change_is_outside_the_fingerprint_is_kept() -> None:
    store = MemoryStore()
    rows = initial_rows(50)
    base = write_annotations(store, annotations_table(rows), None)
    new = write_annotations(
        store, annotations_table(rows, author="b@example.com"), base, DeltaPolicy(max_share=10)
    )
    assert (
        SnapshotReader(store, new)
        .read_table("annotations")
        .equals(annotations_table(rows, author="b@example.com"))
    )


def test_diff_of_consecutive_delta_versions_reads_the_deltas_only() -> None:
    store = MemoryStore()
    history = list(_versions(store, _ROOMY))
    (old_rows, old), (new_rows, new) = history[-2], history[-1]
    result = diff(store, old, new, tables=["annotations"])
    entries = (old.table("annotations"), new.table("annotations"))
    assert result.chunks_read == sum(len(e.delta) + len(e.displaced) for e in entries)
    changes = result.tables["annotations"]
    assert set(changes.changed_keys) == expected_diff(old_rows, new_rows)["changed"]


def test_diff_of_a_base_and_the_delta_on_it_reads_the_delta_only() -> None:
    store = MemoryStore()
    (old_rows, old), (new_rows, new) = list(_versions(store, _ROOMY))[:2]
    assert not old.table("annotations").has_delta
    entry = new.table("annotations")
    assert entry.has_delta
    assert [c.sha256 for c in entry.chunks] == [c.sha256 for c in old.table("annotations").chunks]
    result = diff(store, old, new, tables=["annotations"])
    assert result.chunks_read == len(entry.delta) + len(entry.displaced)
    expected = expected_diff(old_rows, new_rows)
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
    assert pairs(result, "class_name", "n") == expected


def test_delta_chunks_are_referenced_by_the_version() -> None:
    store = MemoryStore()
    _, manifest = list(_versions(store, _ROOMY))[-1]
    entry = manifest.table("annotations")
    assert {c.key for c in (*entry.delta, *entry.displaced)} <= manifest.referenced_keys()


def test_a_read_takes_the_displaced_keys_only_when_rows_were_removed() -> None:
    store = MemoryStore()
    rows = initial_rows(40)
    policy = DeltaPolicy(max_share=0.125, prefer_smaller=False)  # a delta whatever its bytes
    base = write_annotations(store, annotations_table(rows), None, policy)
    first, *_, last = sorted(rows)
    edited = {**rows, first: ("renamed", 1)}

    def read_back(manifest: Manifest, chunks: int) -> None:
        reader = SnapshotReader(store, manifest)
        assert reader.read_table("annotations").equals(annotations_table(edited))
        assert reader.chunks_read == chunks

    replaced = write_annotations(store, annotations_table(edited), base, policy)
    entry = replaced.table("annotations")
    assert (entry.removed, len(entry.delta), len(entry.displaced)) == (0, 1, 1)
    read_back(replaced, len(entry.chunks) + 1)

    # Written before format 4, the same delta does not say; its reads take the displaced keys.
    tables = {name: t.model_copy(update={"removed": None}) for name, t in replaced.tables.items()}
    as_format_3 = replaced.model_copy(update={"format_version": 3, "tables": tables})
    old = load_manifest(store, write_manifest(store, PREFIX, as_format_3))
    assert old.table("annotations").removed is None
    read_back(old, len(entry.chunks) + 2)
    # A capture on it takes a delta on the same base: the chunks' layout has not changed.
    again = write_annotations(store, annotations_table(edited), old, policy)
    assert again.format_version == FORMAT_VERSION
    assert (again.table("annotations").chunks, again.table("annotations").removed) == (
        entry.chunks,
        0,
    )

    del edited[last]
    removed = write_annotations(store, annotations_table(edited), base, policy)
    entry = removed.table("annotations")
    assert (entry.removed, len(entry.delta), len(entry.displaced)) == (1, 1, 1)
    read_back(removed, len(entry.chunks) + 2)


def test_a_manifest_without_deltas_keeps_its_format_1_form() -> None:
    store = MemoryStore()
    manifest = write_annotations(store, annotations_table(initial_rows(10)), None)
    stored: dict[str, Any] = json.loads(manifest.to_json())
    assert set(stored["tables"]["annotations"]) == {"rows", "bytes", "content_sum", "chunks"}


@pytest.mark.parametrize(
    ("field", "value"), [("max_share", -0.5), ("max_chain", -1)], ids=["share", "chain"]
)
def test_a_bad_policy_is_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{field} must not be negative"):
        DeltaPolicy(**{field: value})


@pytest.mark.parametrize(
    ("changed", "policy"),
    [
        (range(1000), DeltaPolicy()),  # every row: past the share while streaming
        (range(0, 1000, 10), DeltaPolicy()),  # 10 %: past the share at the end
        (range(500, 540), DeltaPolicy(max_share=1.0)),  # a run: larger than a rewrite
    ],
    ids=["streaming", "at the end", "larger than a rewrite"],
)
def test_a_delta_written_whole_instead_stores_none_of_its_chunks(
    changed: range, policy: DeltaPolicy
) -> None:
    store = MemoryStore()
    rows = initial_rows(1000)
    base = write_annotations(store, annotations_table(rows), None)
    edited = changed_at(rows, changed)
    new = write_annotations(store, annotations_table(edited), base, policy)

    assert not new.table("annotations").has_delta
    chunks = {info.key for info in store.list(f"{PREFIX}/chunks/")}
    assert chunks == base.chunk_keys() | new.chunk_keys()
    fresh = new.chunk_keys() - base.chunk_keys()
    entry = new.table("annotations")
    assert new.bytes_written == sum(chunk.bytes for chunk in entry.chunks if chunk.key in fresh)
    assert SnapshotReader(store, new).read_table("annotations").equals(annotations_table(edited))
