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

from bisect import bisect_right
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
    "key_range_slice",
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
    and the base only, so the same inputs give the same choice. A partition of a capture that
    holds a key range applies the rules to its range (its delta against the base rows in the
    range, which may always carry one row), and the version's delta is the sum of them.

    The default share keeps a merged read within 1.2 times the read of the same rows
    compacted: a merged read decodes the delta rows on top of all the base rows (the displaced
    ones too), so a delta of a share ``s`` costs at least ``1 + s`` reads, plus the splicing and
    the delta's own chunk files. A change of 1% of the rows stays a delta; one of 10% (or a
    class renamed in most rows) is compacted.
    """

    max_share: float = 0.05
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
    """A key-sorted stream of batches, taken in runs of rows up to a key.

    The window holds at most one batch (the rest of the last one it read). The first key it
    holds is kept as a Python string, so a take that ends before it (the common case for a
    delta, which touches few base batches) costs one comparison; where a take ends inside a
    batch is a binary search on its sorted key array.
    """

    def __init__(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        self._batches = batches
        self._schema = schema
        self._held: pa.RecordBatch | None = None
        self._first = ""
        self._last = ""
        self._done = False

    @property
    def schema(self) -> pa.Schema:
        """The schema of the rows."""
        return self._schema

    def _hold(self) -> pa.RecordBatch | None:
        """The batch held, reading the next non-empty one when none is."""
        while self._held is None and not self._done:
            batch = next(self._batches, None)
            if batch is None:
                self._done = True
            elif batch.num_rows:
                self._keep(batch)
        return self._held

    def _keep(self, batch: pa.RecordBatch) -> None:
        keys = batch.column(0)
        self._held = batch
        self._first = keys[0].as_py()
        self._last = keys[-1].as_py()

    def take_batches(self, high: str) -> list[pa.RecordBatch]:
        """Every row left with a key ``<= high``, in key order, as slices of the stream."""
        taken: list[pa.RecordBatch] = []
        while (held := self._hold()) is not None and self._first <= high:
            if self._last <= high:
                taken.append(held)
                self._held = None
                continue
            count = bisect_right(held.column(0), high, key=_as_str)
            taken.append(held.slice(0, count))
            self._keep(held.slice(count))
            break
        return taken

    def take_until(self, high: str) -> pa.Table:
        """Every row left with a key ``<= high``, in key order."""
        return pa.Table.from_batches(self.take_batches(high), schema=self._schema)

    def rest(self) -> Iterator[pa.RecordBatch]:
        """The rows not taken yet."""
        if self._held is not None:
            yield self._held
            self._held = None
        if not self._done:
            yield from self._batches
            self._done = True


def _as_str(scalar: pa.Scalar) -> str:
    value: str = scalar.as_py()
    return value


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
    gone_window = KeyWindow(displaced, _KEYS)
    for stored in base:
        if stored.num_rows == 0:
            continue
        high: str = stored.column(0)[-1].as_py()
        removed = gone_window.take_batches(high)
        added = ahead.take_batches(high)
        if not removed and not added:
            yield stored
            continue
        yield from _splice(stored, added, removed)
    for batch in ahead.rest():
        if batch.num_rows:
            yield batch


def _splice(
    stored: pa.RecordBatch, added: list[pa.RecordBatch], removed: list[pa.RecordBatch]
) -> list[pa.RecordBatch]:
    """``stored`` without the keys ``removed``, with the rows ``added``, in key order.

    A delta row replaces the base row with its key, if there is one; a displaced base row is
    dropped. The positions come from Arrow kernels on the key arrays, not from a loop over
    rows, and the result is zero-copy slices of ``stored`` and of the delta rows, one per run of
    consecutive rows from either. When every delta row replaces a base row and the displaced
    keys are those rows' keys (rows edited in place, the usual change), the runs follow from
    where the replaced rows are; otherwise (rows added or removed) from a stable sort of the
    base keys followed by the delta keys.
    """
    keys = stored.column(0)
    fresh = _one_batch(added) if added else None
    gone = pa.concat_arrays([batch.column(0) for batch in removed]) if removed else None
    if fresh is None:
        assert gone is not None
        dropped = pc.indices_nonzero(pc.is_in(keys, value_set=gone)).to_pylist()
        return _runs_in_place(stored, None, dropped)
    new_keys = fresh.column(0)
    replacing = pc.index_in(keys, value_set=new_keys)
    replaced = len(keys) - replacing.null_count
    if replaced == len(new_keys) and (gone is None or gone.equals(new_keys)):
        # The k-th replaced base row (in key order) is replaced by the k-th delta row.
        places = pc.indices_nonzero(pc.is_valid(replacing)).to_pylist()
        return _runs_in_place(stored, fresh, places)
    drop = pc.is_valid(replacing)
    if gone is not None:
        drop = pc.or_(drop, pc.is_in(keys, value_set=gone))
    order = pc.sort_indices(pa.concat_arrays([keys, new_keys]))
    dropped_rows = pa.concat_arrays([drop, _falses(len(new_keys))])
    order = order.filter(pc.invert(pc.take(dropped_rows, order)))
    return _runs(order.cast(pa.int64()), stored, fresh)


def _runs_in_place(
    stored: pa.RecordBatch, fresh: pa.RecordBatch | None, places: list[int]
) -> list[pa.RecordBatch]:
    """``stored`` with the rows at ``places`` (increasing) dropped or, with ``fresh``, each
    replaced by the row of ``fresh`` at the same index."""
    pieces: list[pa.RecordBatch] = []
    cursor = 0
    index = 0
    while index < len(places):
        first = places[index]
        end = index + 1
        while end < len(places) and places[end] == places[end - 1] + 1:
            end += 1
        if first > cursor:
            pieces.append(stored.slice(cursor, first - cursor))
        if fresh is not None:
            pieces.append(fresh.slice(index, end - index))
        cursor = first + end - index
        index = end
    if cursor < stored.num_rows:
        pieces.append(stored.slice(cursor))
    return pieces


def _runs(order: pa.Array, stored: pa.RecordBatch, fresh: pa.RecordBatch) -> list[pa.RecordBatch]:
    """Slices of ``stored`` and ``fresh`` giving the rows ``order`` (indices into both)."""
    total = len(order)
    if total == 0:
        return []
    count = stored.num_rows
    step = pc.pairwise_diff(order)
    # A run ends where the next index is not the one after, or where ``fresh`` begins.
    breaks = pc.or_(pc.not_equal(step, 1), pc.equal(order, count)).slice(1)
    starts: list[int] = [0, *(at + 1 for at in pc.indices_nonzero(breaks).to_pylist())]
    firsts: list[int] = pc.take(order, pa.array(starts, pa.int64())).to_pylist()
    pieces: list[pa.RecordBatch] = []
    for start, end, first in zip(starts, [*starts[1:], total], firsts, strict=True):
        if first < count:
            pieces.append(stored.slice(first, end - start))
        else:
            pieces.append(fresh.slice(first - count, end - start))
    return pieces


def _one_batch(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.concat_batches(batches)


def _falses(count: int) -> pa.Array:
    falses: pa.Array = pa.nulls(count, pa.bool_()).fill_null(False)
    return falses


def same_rows(left: pa.Table, right: pa.Table) -> pa.Array:
    """Row by row (same length, same schema): True where every column is equal, nulls included."""
    same = pa.array([True] * left.num_rows, pa.bool_())
    for index in range(left.num_columns):
        a, b = left.column(index), right.column(index)
        equal = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        same = pc.and_(same, pc.or_(equal, both_null))
    return same


def key_range_slice(batch: pa.RecordBatch, start: str | None, stop: str | None) -> pa.RecordBatch:
    """The rows of a key-sorted batch whose ``key`` is in ``[start, stop)``: one slice."""
    keys = batch.column("key")
    first = 0 if start is None else pc.sum(pc.less(keys, start)).as_py() or 0
    end = batch.num_rows if stop is None else pc.sum(pc.less(keys, stop)).as_py() or 0
    return batch.slice(first, max(0, end - first))
