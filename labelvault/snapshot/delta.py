"""Merge-on-read deltas (format 2): a table as a base plus the rows that changed since.

A table of a version is its *base* chunks, usually shared with earlier versions, plus a delta:

- ``delta`` chunks: the rows added or changed since the base, in the table's own schema;
- ``displaced`` chunks: ``(key, fingerprint, class_name)`` of every base row removed or
  replaced (:data:`DISPLACED_SCHEMA`; ``class_name`` is set for annotations only).

Every delta key that is also a base key is displaced, so the version's rows are the base rows
whose keys are not displaced, plus the delta rows: two disjoint key-sorted streams, merged by
:func:`merge_streams` batch by batch (memory: one base batch and the delta rows in its key
range). The displaced records carry the base row's fingerprint and class, so two versions on
the same base are diffed from their deltas alone (see :mod:`labelvault.diff`).

Deltas are cumulative: each version's delta is taken against the base, not against the
previous version, so a read merges exactly two streams whatever the number of versions since
the base was written. :class:`DeltaPolicy` says when a capture writes the base whole again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DEFAULT_DELTA_POLICY",
    "DISPLACED_SCHEMA",
    "NO_DELTAS",
    "DeltaPolicy",
    "KeyWindow",
    "merge_streams",
    "same_rows",
]

#: Schema of the displaced-key chunks of every table.
DISPLACED_SCHEMA: Final = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("class_name", pa.string()),
    ]
)

_KEYS: Final = pa.schema([DISPLACED_SCHEMA.field("key")])


@dataclass(frozen=True)
class DeltaPolicy:
    """When a capture writes a delta and when it writes the base whole (compacts).

    A table is compacted when its delta (rows added or changed plus rows removed, against the
    base) would exceed ``max_share`` of the base's rows, when the delta has been carried over
    ``max_chain`` versions, or (with ``prefer_smaller``) when the delta's bytes exceed those of
    the base chunks it touches, which a rewrite would replace. Every rule depends on the rows
    and the base only, so the same inputs give the same choice.
    """

    max_share: float = 0.125
    max_chain: int = 16
    prefer_smaller: bool = True

    def __post_init__(self) -> None:
        if self.max_share < 0:
            raise ValueError(f"max_share must not be negative, got {self.max_share}")
        if self.max_chain < 0:
            raise ValueError(f"max_chain must not be negative, got {self.max_chain}")

    def row_limit(self, base_rows: int) -> int:
        """Most delta rows a table of ``base_rows`` base rows may carry."""
        return int(base_rows * self.max_share)


#: The policy captures use unless told otherwise.
DEFAULT_DELTA_POLICY: Final = DeltaPolicy()
#: A policy that never writes deltas (every version written whole, as in format 1).
NO_DELTAS: Final = DeltaPolicy(max_share=0.0, max_chain=0)


class KeyWindow:
    """A key-sorted stream of batches, taken in runs of rows up to a key."""

    def __init__(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        self._batches = batches
        self._schema = schema
        self._held: list[pa.RecordBatch] = []
        self._done = False

    @property
    def schema(self) -> pa.Schema:
        """The schema of the rows."""
        return self._schema

    def _last_key(self) -> str | None:
        for batch in reversed(self._held):
            if batch.num_rows:
                last: str = batch.column(0)[-1].as_py()
                return last
        return None

    def take_until(self, high: str) -> pa.Table:
        """Every row left with a key ``<= high``, in key order."""
        while not self._done:
            last = self._last_key()
            if last is not None and last > high:
                break
            batch = next(self._batches, None)
            if batch is None:
                self._done = True
            else:
                self._held.append(batch)
        held = pa.Table.from_batches(self._held, schema=self._schema)
        if held.num_rows == 0:
            self._held = []
            return held
        count = pc.sum(pc.less_equal(held.column(0), pa.scalar(high, pa.string()))).as_py() or 0
        rest = held.slice(count)
        self._held = rest.to_batches() if rest.num_rows else []
        return held.slice(0, count)

    def rest(self) -> Iterator[pa.RecordBatch]:
        """The rows not taken yet."""
        yield from self._held
        self._held = []
        if not self._done:
            yield from self._batches
            self._done = True


def merge_streams(
    base: Iterator[pa.RecordBatch],
    delta: Iterator[pa.RecordBatch],
    displaced: Iterator[pa.RecordBatch],
    schema: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """``base - displaced + delta`` in key order; every stream is key-sorted, key first.

    ``base`` and ``delta`` have ``schema`` (which starts with ``key``); ``displaced`` batches
    start with the key. A base batch that the delta does not touch is passed on as it is;
    one that it touches is spliced with Arrow: it is passed on as zero-copy slices, the kept
    runs of the base batch and the runs of delta rows that fall between them, in key order
    (so batches after a change may be smaller than ``batch_rows``).
    """
    ahead = KeyWindow(delta, schema)
    gone_window = KeyWindow(_keys_only(displaced), _KEYS)
    for stored in base:
        if stored.num_rows == 0:
            continue
        high: str = stored.column(0)[-1].as_py()
        removed = gone_window.take_until(high)
        added = ahead.take_until(high)
        if removed.num_rows == 0 and added.num_rows == 0:
            yield stored
            continue
        yield from _splice(stored, added, removed.column(0))
    for batch in ahead.rest():
        if batch.num_rows:
            yield batch


def _splice(
    stored: pa.RecordBatch, added: pa.Table, removed: pa.ChunkedArray
) -> list[pa.RecordBatch]:
    """``stored`` without the keys ``removed``, with the rows ``added``, in key order.

    A delta row takes the place of the base row it replaces (a hash lookup of the base keys in
    the few delta keys) or goes before the first base row with a greater key (a binary search
    on the key array). The result is zero-copy slices: the base runs between those places and
    the runs of delta rows.
    """
    keys = stored.column(0)
    fresh = pa.RecordBatch.from_arrays(
        [column.combine_chunks() for column in added.columns], schema=stored.schema
    )
    new_keys = fresh.column(0)
    replacing = pc.index_in(keys, value_set=new_keys)
    replaced_at = pc.indices_nonzero(pc.is_valid(replacing))
    places: list[int | None] = [None] * len(new_keys)
    replaced_by: list[int] = pc.take(replacing, replaced_at).to_pylist()
    for place, index in zip(replaced_at.to_pylist(), replaced_by, strict=True):
        places[index] = place
    for index, place in enumerate(places):
        if place is None:
            places[index] = _first_above(keys, new_keys[index].as_py())
    dropped: list[int] = pc.indices_nonzero(pc.is_in(keys, value_set=removed)).to_pylist()
    events = sorted(
        [(place, 0, index) for index, place in enumerate(places) if place is not None]
        + [(place, 1, 0) for place in dropped]
    )
    pieces: list[pa.RecordBatch] = []
    cursor = 0
    run: list[int] = []  # a run of consecutive delta rows [first, end)

    def close_run() -> None:
        if run:
            pieces.append(fresh.slice(run[0], run[1] - run[0]))
            run.clear()

    for place, kind, index in events:
        if place > cursor:
            close_run()
            pieces.append(stored.slice(cursor, place - cursor))
            cursor = place
        if kind == 0:
            if run and run[1] == index:
                run[1] = index + 1
            else:
                close_run()
                run.extend((index, index + 1))
        else:
            cursor = max(cursor, place + 1)
    close_run()
    if cursor < stored.num_rows:
        pieces.append(stored.slice(cursor))
    return pieces


def _first_above(keys: pa.Array, key: str) -> int:
    """The index of the first of the sorted ``keys`` greater than ``key``."""
    low, high = 0, len(keys)
    while low < high:
        middle = (low + high) // 2
        if keys[middle].as_py() <= key:
            low = middle + 1
        else:
            high = middle
    return low


def _keys_only(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield pa.RecordBatch.from_arrays([batch.column(0)], schema=_KEYS)


def same_rows(left: pa.Table, right: pa.Table) -> pa.Array:
    """Row by row (same length, same schema): True where every column is equal, nulls included."""
    same = pa.array([True] * left.num_rows, pa.bool_())
    for index in range(left.num_columns):
        a, b = left.column(index), right.column(index)
        equal = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        same = pc.and_(same, pc.or_(equal, both_null))
    return same
