"""read_ahead: a producer thread a bounded number of items ahead of its consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from labelvault.readahead import read_ahead


def test_items_come_in_order_and_all_of_them() -> None:
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(read_ahead([], depth=1)) == []


def test_a_producer_error_comes_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("page 3 failed")

    reader = read_ahead(failing(), depth=4)
    assert [next(reader), next(reader)] == [1, 2]
    with pytest.raises(RuntimeError, match="page 3 failed"):
        next(reader)


def test_the_producer_stays_within_depth_of_the_consumer() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for item in range(50):
            produced.append(item)
            yield item

    ahead = []
    for item in read_ahead(source(), depth=2):
        # what the producer took beyond this item: at most two waiting, one in its hand
        ahead.append(len(produced) - 1 - item)
    assert max(ahead) <= 3
    assert produced == list(range(50))


def test_a_consumer_that_stops_early_stops_and_closes_the_source() -> None:
    closed_in: list[str] = []
    produced: list[int] = []

    def source() -> Iterator[int]:
        try:
            for item in range(10_000):
                produced.append(item)
                yield item
        finally:
            closed_in.append(threading.current_thread().name)

    reader = read_ahead(source(), depth=2)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    assert closed_in == ["read-ahead"]
    assert len(produced) <= 3 + 3


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1"):
        list(read_ahead([1], depth=0))
