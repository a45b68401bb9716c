"""merge_streams against a plain model: base rows, less the displaced ones, plus the delta rows,
in key order, whatever the batch boundaries of the three streams."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from labelvault.snapshot.delta import KeyWindow, merge_streams

SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.int64())])
KEYS = pa.schema([pa.field("key", pa.string(), nullable=False)])


def _batches(rows: list[tuple[str, int]], sizes: list[int]) -> Iterator[pa.RecordBatch]:
    """``rows`` cut at the given sizes (cycled), with an empty batch now and then."""
    start = 0
    index = 0
    while start < len(rows):
        size = sizes[index % len(sizes)]
        index += 1
        part = rows[start : start + size]
        start += size
        yield pa.RecordBatch.from_pylist(
            [{"key": key, "value": value} for key, value in part], schema=SCHEMA
        )


def _key_batches(keys: list[str], sizes: list[int]) -> Iterator[pa.RecordBatch]:
    for batch in _batches([(key, 0) for key in keys], sizes):
        yield pa.RecordBatch.from_arrays([batch.column(0)], schema=KEYS)


_sizes = st.lists(st.integers(0, 6), min_size=1, max_size=4).filter(any)


@settings(max_examples=300, deadline=None)
@given(
    base_keys=st.sets(st.integers(0, 60), max_size=40),
    edited=st.sets(st.integers(0, 60), max_size=20),
    removed=st.sets(st.integers(0, 60), max_size=20),
    added=st.sets(st.integers(61, 90).map(lambda n: n - 61 + 0.5), max_size=10),
    sizes=st.tuples(_sizes, _sizes, _sizes),
)
def test_merged_rows_are_the_base_less_the_displaced_plus_the_delta(
    base_keys: set[int],
    edited: set[int],
    removed: set[int],
    added: set[float],
    sizes: tuple[list[int], list[int], list[int]],
) -> None:
    def key(number: float) -> str:
        return f"{number:06.1f}"

    base = {key(n): n for n in base_keys}
    gone = {key(n) for n in removed & base_keys}
    changed = {key(n): 1000 + n for n in edited & base_keys if key(n) not in gone}
    new = {key(n): 2000 + int(n) for n in added}
    delta = {**changed, **new}
    displaced = gone | set(changed)
    expected = {k: v for k, v in base.items() if k not in displaced} | delta

    merged = merge_streams(
        _batches(sorted(base.items()), sizes[0]),
        _batches(sorted(delta.items()), sizes[1]),
        _key_batches(sorted(displaced), sizes[2]),
        SCHEMA,
    )
    rows = pa.Table.from_batches(list(merged), schema=SCHEMA).to_pylist()
    assert [(row["key"], row["value"]) for row in rows] == sorted(expected.items())


@given(
    keys=st.lists(st.integers(0, 50), unique=True).map(sorted),
    highs=st.lists(st.integers(-1, 52), max_size=6).map(sorted),
    sizes=_sizes,
)
def test_a_key_window_hands_out_each_row_once_in_order(
    keys: list[int], highs: list[int], sizes: list[int]
) -> None:
    rows = [(f"{n:03d}", n) for n in keys]
    window = KeyWindow(_batches(rows, sizes), SCHEMA)
    seen: list[int] = []
    for high in highs:
        taken = window.take_until(f"{high:03d}").column("value").to_pylist()
        assert all(value <= high for value in taken)
        seen.extend(taken)
    rest = [value for batch in window.rest() for value in batch.column("value").to_pylist()]
    assert all(value > highs[-1] for value in rest) if highs else True
    assert seen + rest == keys
