"""DuckDB over a version's tables: the engine behind :mod:`labelvault.query`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from labelvault.errors import LabelvaultError, QueryFailed
from labelvault.query.guard import check_query
from labelvault.query.limits import DEFAULT_BATCH_ROWS, QueryLimits
from labelvault.query.sandbox import Watchdog, lock_down
from labelvault.snapshot.delta import DISPLACED_SCHEMA
from labelvault.snapshot.layout import (
    LAYOUT_FORMAT,
    decoded_sql,
    displaced_stored_schema,
    layout_of,
    stored_schema,
)
from labelvault.snapshot.manifest import ChunkRef, Manifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import TABLES, schema_for
from labelvault.snapshot.storefs import StoreChunks, StoreChunkSource
from labelvault.storage.base import ObjectStore

__all__ = ["Session", "connect", "query", "query_reader", "table_dataset"]

#: Longest DuckDB message kept in a :class:`QueryFailed`.
_LONGEST_MESSAGE: Final = 400


def table_dataset(
    store: ObjectStore, manifest: Manifest, table: str, *, verify: bool = True
) -> ds.Dataset:
    """A ``pyarrow.dataset`` of one table as readers see it, scannable once.

    The rows are the version's rows, merged with the table's delta if it has one, in the
    logical layout whatever the format that stored them; they stream from
    :class:`~labelvault.snapshot.reader.SnapshotReader`, which verifies every chunk whatever
    ``verify`` says (kept for callers that pass it).
    """
    del verify
    reader = SnapshotReader(store, manifest)
    schema = schema_for(table)
    batches = pa.RecordBatchReader.from_batches(schema, reader.iter_batches(table))
    return ds.dataset(batches)


class Session:
    """A locked-down DuckDB connection with a version's tables registered; close it when done.

    Use as a context manager. :meth:`execute` returns a materialized table, :meth:`stream` a
    ``pyarrow.RecordBatchReader``; each runs one SELECT under ``limits`` (see the module docs).
    Errors from a chunk that fails verification are re-raised as the :class:`IntegrityError`
    naming it.
    """

    def __init__(
        self,
        store: ObjectStore,
        manifest: Manifest,
        *,
        verify: bool = True,
        limits: QueryLimits | None = None,
    ) -> None:
        self.limits = limits or QueryLimits()
        self._datasets = _Datasets(store, manifest, verify=verify)
        self._connection = duckdb.connect()
        try:
            for table in TABLES:
                self._register(table)
            lock_down(self._connection, self.limits)  # after registering, before any user SQL
        except BaseException:
            self._connection.close()
            raise

    def _register(self, table: str) -> None:
        """Register ``table``: its chunks, or a view that decodes them and merges a delta."""
        entry = self._datasets.manifest.table(table)
        layout = layout_of(self._datasets.manifest.format_version)
        if not entry.has_delta and layout < LAYOUT_FORMAT:
            self._connection.register(table, self._datasets.dataset(table))
            return
        schema = stored_schema(table, layout)
        self._connection.register(
            f"_lv_base_{table}", self._datasets.chunks_dataset(entry.chunks, schema)
        )
        source = f"_lv_base_{table}"
        if entry.has_delta:
            gone = displaced_stored_schema(DISPLACED_SCHEMA, layout)
            self._connection.register(
                f"_lv_delta_{table}", self._datasets.chunks_dataset(entry.delta, schema)
            )
            self._connection.register(
                f"_lv_gone_{table}", self._datasets.chunks_dataset(entry.displaced, gone)
            )
            source = (
                f"(SELECT base.* FROM _lv_base_{table} AS base "
                f"ANTI JOIN _lv_gone_{table} AS gone ON base.key = gone.key "
                f"UNION ALL SELECT * FROM _lv_delta_{table})"
            )
        # Names are ours (the fixed table names), never user input.
        self._connection.execute(
            f"CREATE TEMP VIEW {table} AS {decoded_sql(table, layout, source)}"
        )

    def execute(self, sql: str) -> pa.Table:
        """Run the SELECT ``sql`` and return the whole result."""
        watchdog = self._start(sql)
        with self._running(watchdog):
            return self._connection.sql(sql).to_arrow_table()

    def stream(self, sql: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> pa.RecordBatchReader:
        """Run the SELECT ``sql`` and return a reader that yields the result batch by batch."""
        watchdog = self._start(sql)
        with self._running(watchdog):
            reader = self._connection.sql(sql).to_arrow_reader(batch_rows)
        return pa.RecordBatchReader.from_batches(reader.schema, self._batches(reader, watchdog))

    def _start(self, sql: str) -> Watchdog:
        """Refuse anything but one SELECT over the tables; a fresh time budget for it."""
        with self._running(None):
            check_query(self._connection, sql, TABLES)
        return Watchdog(self._connection, self.limits.timeout)

    def _batches(
        self, reader: pa.RecordBatchReader, watchdog: Watchdog
    ) -> Iterator[pa.RecordBatch]:
        batches = iter(reader)
        while True:
            with self._running(watchdog, fresh=False):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch

    @contextmanager
    def _running(self, watchdog: Watchdog | None, *, fresh: bool = True) -> Iterator[None]:
        """Time the block and turn what it raises into one labelvault error."""
        try:
            with _Translate(self._datasets.source, fresh=fresh):
                if watchdog is None:
                    yield
                else:
                    with watchdog.running():
                        yield
        except LabelvaultError:
            raise
        except Exception as exc:
            if watchdog is not None and watchdog.fired:  # whatever the interrupt surfaced as
                raise watchdog.timed_out() from None
            # DuckDB's errors, and Arrow's (a stream's errors come out as OSError)
            if isinstance(exc, duckdb.Error | pa.ArrowException | OSError):
                raise _failed(exc) from None
            raise
        if watchdog is not None and watchdog.fired:
            raise watchdog.timed_out()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._connection.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    store: ObjectStore,
    manifest: Manifest,
    *,
    verify: bool = True,
    limits: QueryLimits | None = None,
) -> Session:
    """A :class:`Session` on ``manifest``'s version, for several queries in a row."""
    return Session(store, manifest, verify=verify, limits=limits)


def query(
    store: ObjectStore,
    manifest: Manifest,
    sql: str,
    *,
    verify: bool = True,
    limits: QueryLimits | None = None,
) -> pa.Table:
    """Run the SELECT ``sql`` over the version and return the whole result as a table."""
    with Session(store, manifest, verify=verify, limits=limits) as session:
        return session.execute(sql)


def query_reader(
    store: ObjectStore,
    manifest: Manifest,
    sql: str,
    *,
    verify: bool = True,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    limits: QueryLimits | None = None,
) -> pa.RecordBatchReader:
    """Run the SELECT ``sql`` and stream the result; the connection closes when it is exhausted."""
    session = Session(store, manifest, verify=verify, limits=limits)
    try:
        reader = session.stream(sql, batch_rows=batch_rows)
    except BaseException:
        session.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            session.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _failed(exc: BaseException) -> QueryFailed:
    """DuckDB's (or Arrow's) first line, as one :class:`QueryFailed` line."""
    lines = str(exc).strip().splitlines()
    first = " ".join(lines[0].split()) if lines else type(exc).__name__
    if len(first) > _LONGEST_MESSAGE:
        first = first[: _LONGEST_MESSAGE - 1] + "…"
    return QueryFailed(
        f"the query failed: {first}; the tables are {', '.join(TABLES[:-1])} and {TABLES[-1]}"
    )


# --- internals ------------------------------------------------------------------------------


class _Datasets:
    """Builds one scannable table per table: files in place, or chunks read through the store."""

    def __init__(self, store: ObjectStore, manifest: Manifest, *, verify: bool) -> None:
        self.manifest = manifest
        #: Where chunks come from when they are read through the store (None: files in place).
        self.source: StoreChunkSource | None = None
        native = None if verify else store.arrow_filesystem()
        if native is None:
            chunks = {
                chunk.key: chunk for table in manifest.tables.values() for chunk in table.all_chunks
            }
            self.source = StoreChunkSource(store, chunks, verify=verify)
            return
        self.filesystem, root = native
        self.root = root.rstrip("/")
        # Pre-buffering coalesces reads of a file's column chunks: worth it on S3, where each
        # read is a request, but on a local disk or from memory it only holds more buffers.
        pre_buffer = self.filesystem.type_name not in ("local", "mock")
        self.format = ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=pre_buffer)
        )

    def dataset(self, table: str) -> ds.Dataset | StoreChunks:
        return self.chunks_dataset(self.manifest.table(table).chunks, schema_for(table))

    def chunks_dataset(
        self, chunks: Iterable[ChunkRef], schema: pa.Schema
    ) -> ds.Dataset | StoreChunks:
        keys = [chunk.key for chunk in chunks]
        if self.source is not None:
            return self.source.table(keys, schema)
        return ds.FileSystemDataset.from_paths(
            [f"{self.root}/{key}" if self.root else key for key in keys],
            schema=schema,
            format=self.format,
            filesystem=self.filesystem,
        )


class _Translate:
    """Re-raise the store error behind a failed scan (DuckDB and Arrow only pass on its text)."""

    def __init__(self, source: StoreChunkSource | None, *, fresh: bool) -> None:
        self.source = source
        self.fresh = fresh

    def __enter__(self) -> None:
        if self.fresh and self.source is not None:  # a new statement: forget earlier errors
            self.source.errors.clear()

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, LabelvaultError):
            return
        if self.source is not None and self.source.errors:
            error = self.source.errors[0]
            self.source.errors.clear()  # no reference cycle through the session
            raise error from exc
