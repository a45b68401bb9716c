"""SQL over a version: each table registered in DuckDB under its name, and nothing else.

DuckDB streams each table chunk by chunk; a 10^6-row version is never loaded whole.

The surface is read-only and closed (see :mod:`labelvault.query.guard` and
:mod:`labelvault.query.sandbox`): a query is exactly one SELECT over the version's tables and
CTEs; DuckDB may not open files, folders or URLs, load extensions, change settings or spill to
disk; memory and threads are bounded; and a query that runs past its time limit is interrupted.
Anything else is refused with a :class:`~labelvault.errors.QueryRefused` before it runs. Writing
a result to a file is the caller's business (the command line's output options), never SQL's.

Errors are labelvault errors with one-line messages: :class:`~labelvault.errors.QueryRefused`,
:class:`~labelvault.errors.QueryTimedOut`, :class:`~labelvault.errors.QueryFailed` (DuckDB's own
first line: a syntax error, an unknown column, the memory limit), and the store's errors (an
:class:`~labelvault.errors.IntegrityError` naming a corrupt chunk).

Verification is a trade-off, chosen per call with ``verify``:

- ``verify=True`` (the default, as everywhere in labelvault): chunks are read through the
  store, each one fetched whole and its size and sha256 checked before DuckDB sees it. This
  works on every backend, including :class:`~labelvault.storage.memory.MemoryStore`; it reads
  every byte of each chunk a query touches, even for a query on one column
  (:mod:`labelvault.snapshot.storefs`).
- ``verify=False``: when the store exposes a pyarrow filesystem (local folder, S3), a
  ``pyarrow.dataset`` reads the chunk files in place: only the columns and row groups it
  needs, but a corrupt chunk gives wrong answers or a decoding error instead of an
  :class:`IntegrityError`. Stores without one fall back to reading through the store, without
  the checksum.

```python
manifest = load_manifest(store, key)
per_class = query(store, manifest,
                  "SELECT class_name, count(*) AS n FROM annotations GROUP BY 1 ORDER BY 2 DESC")
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from labelvault.query.limits import DEFAULT_BATCH_ROWS, DEFAULT_TIMEOUT, QueryLimits

if TYPE_CHECKING:
    from labelvault.query.engine import Session, connect, query, query_reader, table_dataset

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_TIMEOUT",
    "QueryLimits",
    "Session",
    "connect",
    "query",
    "query_reader",
    "table_dataset",
]

#: Names that live in :mod:`labelvault.query.engine`, imported on first use: DuckDB is a
#: large library, and a process that captures or restores never queries.
_ENGINE: Final = frozenset(("Session", "connect", "query", "query_reader", "table_dataset"))


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from labelvault.query import engine  # noqa: PLC0415 - DuckDB is heavy; load on use

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
