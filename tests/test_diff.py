"""Diff between versions: against a brute-force diff, and reading only the chunks that differ."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelvault.diff import diff, iter_changes
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import schema_for
from labelvault.storage.base import StoredObject
from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import split, write_version
from tests.strategies import synthetic_project, table_rows

DIFFED = ("datasets", "items", "annotations", "tags")


class CountingStore(MemoryStore):
    """A memory store that records every object read with ``get``."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key: str) -> StoredObject:
        self.reads.append(key)
        return super().get(key)


def _rows(store: MemoryStore, manifest: Manifest, table: str) -> dict[str, dict[str, Any]]:
    reader = SnapshotReader(store, manifest)
    return {row["key"]: row for row in reader.read_table(table).to_pylist()}


def brute_force(
    store: MemoryStore, old: Manifest, new: Manifest, table: str
) -> tuple[set[str], set[str], set[str]]:
    """Added, removed and changed keys, by reading both versions whole."""
    before, after = _rows(store, old, table), _rows(store, new, table)
    added = after.keys() - before.keys()
    removed = before.keys() - after.keys()
    changed = {
        key
        for key in before.keys() & after.keys()
        if before[key]["fingerprint"] != after[key]["fingerprint"]
    }
    return set(added), set(removed), changed


def _class_counts(
    store: MemoryStore, old: Manifest, new: Manifest
) -> dict[str, tuple[int, int, int]]:
    before, after = _rows(store, old, "annotations"), _rows(store, new, "annotations")
    added, removed, changed = brute_force(store, old, new, "annotations")
    counts: Counter[tuple[str, str]] = Counter()
    counts.update(("added", after[k]["class_name"] or "") for k in added)
    counts.update(("removed", before[k]["class_name"] or "") for k in removed)
    counts.update(("changed", after[k]["class_name"] or "") for k in changed)
    names = {name for _, name in counts}
    return {n: (counts["added", n], counts["removed", n], counts["changed", n]) for n in names}


# --- a synthetic project ----------------------------------------------------------------------

ITEMS = list(range(0, 6000, 10))


def _version(store: MemoryStore, ids: list[int], **options: Any) -> Manifest:
    return write_version(
        store, synthetic_project(ids, batch_rows=128, **options), target_chunk_rows=200
    )


def test_diff_matches_brute_force_on_a_project() -> None:
    store = MemoryStore()
    old = _version(store, ITEMS)
    dropped = set(ITEMS[100:103]) | {ITEMS[-1]}
    inserted = {ITEMS[200] + 5, ITEMS[-1] + 10}
    new_ids = sorted((set(ITEMS) - dropped) | inserted)
    new = _version(store, new_ids, edited=set(ITEMS[400:410]) | {ITEMS[0]})

    result = diff(store, old, new, key_limit=10_000)
    for table in DIFFED:
        added, removed, changed = brute_force(store, old, new, table)
        got = result.tables[table]
        assert set(got.added_keys) == added, table
        assert set(got.removed_keys) == removed, table
        assert set(got.changed_keys) == changed, table
        assert (got.added, got.removed, got.changed) == (len(added), len(removed), len(changed))
        assert got.unchanged == new.table(table).rows - len(added) - len(changed)
    annotations = result.tables["annotations"]
    assert (annotations.added, annotations.removed, annotations.changed) == (20, 40, 110)
    expected_classes = _class_counts(store, old, new)
    assert {
        name: (c.added, c.removed, c.changed) for name, c in result.classes.items()
    } == expected_classes
    assert not result.is_empty
    assert result.summary()["items"] == {
        "added": 2,
        "removed": 4,
        "changed": 0,
        "unchanged": len(ITEMS) - 4,
    }


def test_diff_reads_only_chunks_that_differ() -> None:
    store = CountingStore()
    old = _version(store, ITEMS)
    new = _version(store, ITEMS, edited={ITEMS[300]})
    store.reads.clear()

    result = diff(store, old, new)

    shared = {c.key for c in old.table("annotations").chunks} & {
        c.key for c in new.table("annotations").chunks
    }
    assert shared
    assert not shared & set(store.reads)  # no chunk present in both versions was read
    assert len(store.reads) == result.chunks_read == 2  # the edited chunk, old and new
    assert result.tables["annotations"].changed == 10
    assert result.tables["annotations"].chunks_skipped == 2 * len(shared)
    assert result.tables["items"].chunks_read == 0


def test_identical_versions_read_nothing() -> None:
    store = CountingStore()
    old = _version(store, ITEMS)
    new = _version(store, ITEMS)
    store.reads.clear()
    result = diff(store, old, new)
    assert result.is_empty
    assert store.reads == []
    assert result.chunks_skipped == 2 * len(old.chunk_keys())


def test_full_scan_agrees_with_the_skipping_diff() -> None:
    store = CountingStore()
    old = _version(store, ITEMS)
    new = _version(store, ITEMS[:-50], edited=set(ITEMS[10:20]))
    fast = diff(store, old, new)
    store.reads.clear()
    slow = diff(store, old, new, skip_identical_chunks=False)
    assert slow.summary() == fast.summary()
    assert len(store.reads) == len(old.chunk_keys()) + len(new.chunk_keys())
    assert fast.chunks_read < slow.chunks_read


def test_keys_are_bounded_counts_are_not() -> None:
    store = MemoryStore()
    old = _version(store, ITEMS[:100])
    new = _version(store, ITEMS)
    result = diff(store, old, new, key_limit=7)
    annotations = result.tables["annotations"]
    assert annotations.added == (len(ITEMS) - 100) * 10
    assert len(annotations.added_keys) == 7
    assert annotations.truncated
    changes = list(iter_changes(store, old, new, "annotations"))
    assert len(changes) == annotations.added
    assert [c.key for c in changes] == sorted(c.key for c in changes)
    assert {c.kind for c in changes} == {"added"}


def test_markdown_summary() -> None:
    store = MemoryStore()
    old = _version(store, ITEMS[:50])
    new = _version(store, ITEMS[1:52], edited={ITEMS[5]})
    result = diff(store, old, new)
    text = result.to_markdown(title="v1 → v2")
    assert text.startswith("## v1 → v2\n")
    lines = text.splitlines()
    annotations = result.tables["annotations"]
    row = f"| annotations | {annotations.added} | {annotations.removed} | {annotations.changed} |"
    assert any(line.startswith(row) for line in lines)
    assert "### Annotations by class" in text
    assert f"`{ITEMS[0]:012d}`" in text  # an example key of a removed item
    same = diff(store, old, old).to_markdown()
    assert "Same content" in same


# --- generated tables -------------------------------------------------------------------------


@st.composite
def _versions(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An old table and a new one derived from it by deletes, edits and inserts."""
    old = draw(table_rows("annotations", max_rows=60))
    new: list[dict[str, Any]] = []
    for row in old:
        fate = draw(st.sampled_from(["keep", "keep", "keep", "drop", "edit"]))
        if fate == "keep":
            new.append(row)
        elif fate == "edit":
            new.append({**row, "fingerprint": f"{draw(st.integers(0, 2**256 - 1)):064x}"})
    extra = draw(table_rows("annotations", max_rows=10))
    known = {row["key"] for row in old}
    new = sorted(new + [r for r in extra if r["key"] not in known], key=lambda r: r["key"])
    return old, new


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(versions=_versions(), target=st.sampled_from([1, 3, 8]), batch=st.integers(1, 9))
def test_diff_matches_brute_force_on_generated_tables(
    versions: tuple[list[dict[str, Any]], list[dict[str, Any]]], target: int, batch: int
) -> None:
    store = MemoryStore()
    manifests = []
    for rows in versions:
        table = pa.Table.from_pylist(rows, schema=schema_for("annotations"))
        pages = [("annotations", b) for b in split(table, [batch])]
        manifests.append(write_version(store, pages, target_chunk_rows=target))
    old, new = manifests

    result = diff(store, old, new, key_limit=1000)
    added, removed, changed = brute_force(store, old, new, "annotations")
    got = result.tables["annotations"]
    assert (set(got.added_keys), set(got.removed_keys), set(got.changed_keys)) == (
        added,
        removed,
        changed,
    )
    expected_classes = _class_counts(store, old, new)
    assert {
        name: (c.added, c.removed, c.changed) for name, c in result.classes.items()
    } == expected_classes
