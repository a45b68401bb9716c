"""Reading ahead: a producer thread runs an iterator while its consumer works on what came.

A capture fetches pages from a platform and encodes them into chunks; with
:func:`read_ahead` the next pages are fetched while the writer encodes the last one. At most
``depth`` items wait in between, so memory stays bounded by a few pages.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Final, TypeVar, cast

__all__ = ["read_ahead"]

_T = TypeVar("_T")
_DONE: Final = object()
_POLL_SECONDS: Final = 0.1


def read_ahead(items: Iterable[_T], depth: int = 2) -> Iterator[_T]:
    """``items`` in order, produced by a thread of their own up to ``depth`` ahead.

    An error of the producer is raised to the consumer where the item would have come. When
    the consumer stops early (an error, a ``break``, ``close()``), the producer stops at its
    next item and ``items`` is closed in the thread that ran it.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not offer(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            failure.append(error)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            offer(_DONE)

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                break
            yield cast(_T, item)
        if failure:
            raise failure[0]
    finally:
        stop.set()
        producer.join()
