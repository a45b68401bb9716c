"""Fewer cyclic garbage collections while a capture or restore streams rows.

A capture or restore makes millions of short-lived dicts and lists (decoded answers, rows),
next to none of them in a reference cycle. CPython's collector counts the containers made and,
every 700 of them by default, walks the youngest generation, and every tenth of those walks
also the older ones: work for the objects alive, that finds no garbage here. A capture of
20,000 figures spent about a quarter of its CPU time there. While any capture or restore runs
in the process, the youngest generation's threshold is at least :data:`YOUNG_THRESHOLD`; the
threshold the process had comes back when the last one ends. The collector still runs, so
cyclic garbage is still freed, a few thousand allocations later.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["YOUNG_THRESHOLD", "fewer_collections"]

#: Containers made between two collections of the youngest generation while rows stream.
YOUNG_THRESHOLD: Final = 20_000


class _Raised:
    """How many blocks hold the threshold raised, and the threshold to put back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.saved: tuple[int, int, int] | None = None

    def enter(self) -> None:
        with self.lock:
            if self.running == 0:
                self.saved = gc.get_threshold()
                young, middle, old = self.saved
                if young:
                    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
            self.running += 1

    def leave(self) -> None:
        with self.lock:
            self.running -= 1
            if self.running == 0 and self.saved is not None:
                gc.set_threshold(*self.saved)
                self.saved = None


_RAISED: Final = _Raised()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the youngest generation's threshold for the ``with`` block; the first block to
    enter raises it, the last to leave puts back what the process had. A threshold of 0 (the
    collector turned off that way) stays 0."""
    _RAISED.enter()
    try:
        yield
    finally:
        _RAISED.leave()
