"""How many calls of a function run at once, for tests of concurrency limits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


class AtOnce:
    """Wraps functions to count their calls running at once; :attr:`most` is the peak.

    Each call waits up to ``grace`` seconds for a call beyond ``limit`` to start, so a limit
    that is not kept shows as a peak above it rather than depending on luck.
    """

    def __init__(self, limit: int, grace: float = 0.2) -> None:
        self.limit = limit
        self.grace = grace
        self.most = 0
        self._running = 0
        self._changed = threading.Condition()

    def wrap(self, function: Callable[_P, _R]) -> Callable[_P, _R]:
        def counted(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with self._changed:
                self._running += 1
                self.most = max(self.most, self._running)
                self._changed.notify_all()
                self._changed.wait_for(lambda: self._running > self.limit, timeout=self.grace)
            try:
                return function(*args, **kwargs)
            finally:
                with self._changed:
                    self._running -= 1

        return counted
