"""Partitions that hold key ranges store deltas: whatever the ranges, the edits and the policy,
the version merged from them reads back as the rows captured, and when every range is a delta
the version is the previous base plus the deltas, with nothing rewritten."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelvault.errors import SnapshotError
from labelvault.snapshot.delta import DEFAULT_DELTA_POLICY, DeltaPolicy
from labelvault.snapshot.manifest import (
    Manifest,
    SnapshotSource,
    load_manifest,
    write_manifest,
)
from labelvault.snapshot.merge import merge_parts
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.base import ObjectStore
from labelvault.storage.memory import MemoryStore
from tests.snapshot.edits import (
    PROPERTY_SETTINGS,
    Rows,
    annotations_table,
    assert_version_holds,
    edits,
    initial_rows,
    policies,
    write_annotations,
)
from tests.snapshot.helpers import PREFIX, SOURCE

Range = tuple[str, str | None]
RANGED = frozenset({"annotations"})


def _ranges(starts: Sequence[str]) -> list[Range]:
    """Ranges that follow one another from the lowest key, cut at ``starts``."""
    cuts = sorted(set(starts) - {""})
    return list(zip(["", *cuts], [*cuts, None], strict=True))


def _part(
    store: ObjectStore,
    rows: Rows,
    key_range: Range,
    previous: Manifest | None,
    policy: DeltaPolicy,
) -> Manifest:
    start, stop = key_range
    inside = {k: v for k, v in rows.items() if k >= start and (stop is None or k < stop)}
    table = annotations_table(inside)
    return write_annotations(
        store, table, previous, policy, 5, key_range=key_range, ranged_tables=RANGED
    )


def _partitioned(
    store: ObjectStore,
    rows: Rows,
    ranges: list[Range],
    previous: Manifest | None,
    policy: DeltaPolicy = DEFAULT_DELTA_POLICY,
) -> Manifest:
    parts = [_part(store, rows, key_range, previous, policy) for key_range in ranges]
    merged = _merge(store, parts, ranges, previous)
    return load_manifest(store, write_manifest(store, PREFIX, merged))


def _merge(
    store: ObjectStore, parts: list[Manifest], ranges: list[Range], previous: Manifest | None
) -> Manifest:
    return merge_parts(
        store,
        PREFIX,
        parts,
        source=SnapshotSource.model_validate(SOURCE),
        ranges=ranges,
        ranged_tables=RANGED,
        previous=previous,
    )


_starts = st.lists(
    st.integers(0, 130).map(lambda n: f"{n:04d}" + ("" if n % 3 else "x")), max_size=6
)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_versions_merged_from_ranged_deltas_read_back_as_captured(data: st.DataObject) -> None:
    store = MemoryStore()
    rows = initial_rows(data.draw(st.integers(0, 40), label="rows"))
    policy = data.draw(policies, label="policy")
    manifest = _partitioned(store, rows, _ranges(data.draw(_starts, label="cuts")), None, policy)
    assert SnapshotReader(store, manifest).read_table("annotations").equals(annotations_table(rows))
    for _ in range(data.draw(st.integers(1, 4), label="versions")):
        edited = data.draw(edits(rows), label="edits")
        ranges = _ranges(data.draw(_starts, label="cuts"))
        new = _partitioned(store, edited, ranges, manifest, policy)

        assert_version_holds(store, manifest, new, rows, edited)
        rows, manifest = edited, new


def _scattered(rows: Rows, step: int, value: int) -> Rows:
    return {
        key: (name, value if index % step == 0 else number)
        for index, (key, (name, number)) in enumerate(sorted(rows.items()))
    }


def _delta_keys(store: ObjectStore, manifest: Manifest) -> list[str]:
    table = manifest.table("annotations")
    reader = SnapshotReader(store, manifest)
    return [
        key
        for batch in reader.iter_chunks("annotations", table.delta)
        for key in batch.column("key").to_pylist()
    ]


def test_a_scattered_change_in_every_range_is_the_base_plus_the_deltas() -> None:
    store = MemoryStore()
    rows = initial_rows(1000)
    ranges = _ranges(["0500", "1000", "1501x"])
    first = _partitioned(store, rows, ranges, None)
    edited = _scattered(rows, 100, 5000)  # 1% of the rows
    second = _partitioned(store, edited, ranges, first)

    table = second.table("annotations")
    assert table.chunks == first.table("annotations").chunks
    assert table.chain == 1
    assert table.rows == len(edited)
    serial = write_annotations(store, annotations_table(edited), first)
    assert serial.table("annotations").has_delta
    assert _delta_keys(store, second) == _delta_keys(store, serial)
    assert len(_delta_keys(store, second)) == 10
    assert second.content_hash == serial.content_hash


def test_unchanged_ranges_give_the_previous_table_itself() -> None:
    store = MemoryStore()
    rows = initial_rows(300)
    first = _partitioned(store, rows, _ranges(["0200", "0400"]), None)
    second = _partitioned(store, rows, _ranges(["0150", "0333x"]), first)
    assert second.table("annotations") == first.table("annotations")
    assert second.bytes_written == 0


def test_a_range_written_whole_takes_the_place_of_the_base_rows_in_it() -> None:
    store = MemoryStore()
    rows = initial_rows(1000)
    ranges = _ranges(["0500", "1000x", "1500"])
    first = _partitioned(store, rows, ranges, None)
    edited = dict(rows)
    for index, key in enumerate(sorted(rows)):
        if "1000x" <= key < "1500":  # this range is rewritten: past the policy's share
            edited[key] = ("class5", 7)
        elif index % 100 == 1:  # and a few rows elsewhere: deltas
            edited[key] = ("class6", 1)
    by_share = DeltaPolicy(prefer_smaller=False)  # tiny test chunks: compare shares only
    second = _partitioned(store, edited, ranges, first, by_share)

    table = second.table("annotations")
    assert table.has_delta
    assert sum(chunk.rows for chunk in table.delta) == 7
    kept = set(first.table("annotations").chunks) & set(table.chunks)
    assert kept, "base chunks outside the rewritten range are kept"
    assert SnapshotReader(store, second).read_table("annotations").equals(annotations_table(edited))


def test_a_key_outside_the_partitions_range_is_refused() -> None:
    writer = SnapshotWriter(
        MemoryStore(), PREFIX, source=SOURCE, key_range=("0004", "0010"), ranged_tables=RANGED
    )
    writer.write("annotations", annotations_table({"0004": ("a", 1), "0008": ("a", 2)}))
    for outside in ("0010", "0012"):
        with pytest.raises(SnapshotError, match=f"key '{outside}' lies outside this partition"):
            writer.write("annotations", annotations_table({outside: ("a", 3)}))
    early = SnapshotWriter(
        MemoryStore(), PREFIX, source=SOURCE, key_range=("0004", None), ranged_tables=RANGED
    )
    with pytest.raises(SnapshotError, match="key '0002' lies outside"):
        early.write("annotations", annotations_table({"0002": ("a", 1)}))


def test_a_delta_against_another_base_is_refused_at_the_merge() -> None:
    store = MemoryStore()
    rows = initial_rows(100)
    ranges = _ranges(["0100"])
    first = _partitioned(store, rows, ranges, None)
    renamed = {key: ("renamed", value) for key, (_, value) in rows.items()}
    second = _partitioned(store, renamed, ranges, first)  # written whole: a new base
    assert second.table("annotations").chunks != first.table("annotations").chunks
    stale = [_part(store, rows, key_range, first, DEFAULT_DELTA_POLICY) for key_range in ranges]
    with pytest.raises(SnapshotError, match="another version than the latest"):
        _merge(store, stale, ranges, second)
