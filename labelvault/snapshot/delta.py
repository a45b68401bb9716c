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
    start with the key.
    """
    ahead = KeyWindow(delta, schema)
    gone_window = KeyWindow(_keys_only(displaced), _KEYS)
    for stored in base:
        if stored.num_rows == 0:
            continue
        high: str = stored.column(0)[-1].as_py()
        removed = gone_window.take_until(high)
        kept = stored
        if removed.num_rows:
            kept = stored.filter(pc.invert(pc.is_in(stored.column(0), value_set=removed.column(0))))
        added = ahead.take_until(high)
        if added.num_rows == 0:
            if kept.num_rows:
                yield kept
            continue
        merged = pa.concat_tables([pa.Table.from_batches([kept], schema=schema), added])
        yield from merged.sort_by([("key", "ascending")]).combine_chunks().to_batches()
    for batch in ahead.rest():
        if batch.num_rows:
            yield batch


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
