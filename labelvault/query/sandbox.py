"""Lock a DuckDB connection down to the tables already registered on it, and bound its time.

:func:`lock_down` runs after the version's tables are registered (they are Arrow datasets read
by pyarrow, not by DuckDB, so they keep working): DuckDB then opens no file, folder or URL, loads
no extension, spills nothing to disk, uses bounded memory and threads, and finally refuses any
further change to these settings.

:class:`Watchdog` interrupts the connection once the time DuckDB has spent on one query passes
the limit. Only time inside DuckDB counts: a reader of a streamed result who pauses between
batches (a pager, a slow pipe) does not use up the query's time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import duckdb

from labelvault.errors import QueryTimedOut
from labelvault.query.limits import QueryLimits

__all__ = ["Watchdog", "lock_down"]

#: Settings only some DuckDB versions know; set when the installed one has them.
_OPTIONAL_SETTINGS: Final = {
    "allow_community_extensions": "false",
    "python_enable_replacements": "false",
    "enable_progress_bar": "false",
}


def lock_down(connection: duckdb.DuckDBPyConnection, limits: QueryLimits) -> None:
    """Close every way out of ``connection``; call it after registering the tables."""
    known = {row[0] for row in connection.execute("SELECT name FROM duckdb_settings()").fetchall()}
    settings: list[tuple[str, str]] = [
        # The temporary folder can only change while external access is on; '' means none.
        ("temp_directory", ""),
        ("max_temp_directory_size", "0KB"),
        ("memory_limit", f"{limits.memory_bytes}B"),
        ("threads", str(limits.threads)),
        ("autoinstall_known_extensions", "false"),
        ("autoload_known_extensions", "false"),
        *((name, value) for name, value in _OPTIONAL_SETTINGS.items() if name in known),
        ("enable_external_access", "false"),
        ("lock_configuration", "true"),  # last: nothing above can be undone
    ]
    for name, value in settings:
        # Names are ours; values are ours or integers, quoted as DuckDB string literals.
        connection.execute(f"SET {name} = '{value}'")


class Watchdog:
    """Interrupts ``connection`` when the time spent inside :meth:`running` passes ``seconds``.

    ``fired`` tells whether it did; once it has, every later :meth:`running` raises
    :class:`QueryTimedOut` at once, since the interrupted query cannot go on.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._connection = connection
        self._left = seconds
        self._armed = False
        self._lock = threading.Lock()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count the time of the block; interrupt DuckDB when the budget is spent."""
        if self.fired or self._left <= 0:
            raise self.timed_out()
        timer = threading.Timer(self._left, self._fire)
        timer.daemon = True
        started = time.monotonic()
        with self._lock:
            self._armed = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._lock:  # after this, _fire can no longer interrupt
                self._armed = False
            self._left -= time.monotonic() - started

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self.fired = True
                self._connection.interrupt()

    def timed_out(self) -> QueryTimedOut:
        """The error that reports this watchdog's limit."""
        return QueryTimedOut(
            f"query: stopped after {self.seconds:g} s, its time limit; narrow it with WHERE or "
            "LIMIT, and check that any recursive CTE ends",
            seconds=self.seconds,
        )
