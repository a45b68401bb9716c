"""SQL over a version: each table registered in DuckDB under its name.

Tables are ``pyarrow.dataset`` objects over the version's chunk files, so DuckDB streams them
chunk by chunk with projection and filter pushdown; a 10^6-row version is never loaded whole.

Verification is a trade-off, chosen per call with ``verify``:

- ``verify=True`` (the default, as everywhere in labelvault): chunks are read through the
  store, each one fetched whole and its size and sha256 checked before DuckDB sees it. This
  works on every backend, including :class:`~labelvault.storage.memory.MemoryStore`; it reads
  every byte of each chunk a query touches, even for a query on one column.
- ``verify=False``: when the store exposes a pyarrow filesystem (local folder, S3), DuckDB
  reads the chunk files in place: only the columns and row groups it needs, but a corrupt chunk
  gives wrong answers or a decoding error instead of an :class:`IntegrityError`. Stores without
  one fall back to reading through the store, without the checksum.

```python
manifest = load_manifest(store, key)
per_class = query(store, manifest,
                  "SELECT class_name, count(*) AS n FROM annotations GROUP BY 1 ORDER BY 2 DESC")
```
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from labelvault.errors import LabelvaultError
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.schema import TABLES, schema_for
from labelvault.snapshot.storefs import StoreFileSystemHandler, store_filesystem
from labelvault.storage.base import ObjectStore

__all__ = ["DEFAULT_BATCH_ROWS", "Session", "connect", "query", "query_reader", "table_dataset"]

#: Rows per batch of :func:`query_reader`.
DEFAULT_BATCH_ROWS: Final = 64 * 1024


def table_dataset(
    store: ObjectStore, manifest: Manifest, table: str, *, verify: bool = True
) -> ds.Dataset:
    """A ``pyarrow.dataset`` over one table's chunks (see the module docs for ``verify``)."""
    return _Datasets(store, manifest, verify=verify).dataset(table)


class Session:
    """A DuckDB connection with a version's tables registered; close it when done.

    Use as a context manager. :meth:`execute` returns a materialized table, :meth:`stream` a
    ``pyarrow.RecordBatchReader``. Errors from a chunk that fails verification are re-raised as
    the :class:`IntegrityError` naming it.
    """

    def __init__(self, store: ObjectStore, manifest: Manifest, *, verify: bool = True) -> None:
        self._datasets = _Datasets(store, manifest, verify=verify)
        self.connection = duckdb.connect()
        try:
            for table in TABLES:
                self.connection.register(table, self._datasets.dataset(table))
        except BaseException:
            self.connection.close()
            raise

    def execute(self, sql: str) -> pa.Table:
        """Run ``sql`` and return the whole result."""
        with self._translate():
            relation: duckdb.DuckDBPyRelation | None = self.connection.sql(sql)
            if relation is None:
                return pa.table({})
            return relation.to_arrow_table()

    def stream(self, sql: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> pa.RecordBatchReader:
        """Run ``sql`` and return a reader that yields the result batch by batch."""
        with self._translate():
            relation: duckdb.DuckDBPyRelation | None = self.connection.sql(sql)
            if relation is None:
                return pa.RecordBatchReader.from_batches(pa.schema([]), iter(()))
            reader = relation.to_arrow_reader(batch_rows)
        return pa.RecordBatchReader.from_batches(reader.schema, self._batches(reader))

    def _batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        with self._translate(fresh=False):
            yield from reader

    def _translate(self, *, fresh: bool = True) -> _Translate:
        return _Translate(self._datasets.handlers, fresh=fresh)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.connection.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(store: ObjectStore, manifest: Manifest, *, verify: bool = True) -> Session:
    """A :class:`Session` on ``manifest``'s version, for several queries in a row."""
    return Session(store, manifest, verify=verify)


def query(store: ObjectStore, manifest: Manifest, sql: str, *, verify: bool = True) -> pa.Table:
    """Run ``sql`` over the version and return the whole result as a ``pyarrow.Table``."""
    with Session(store, manifest, verify=verify) as session:
        return session.execute(sql)


def query_reader(
    store: ObjectStore,
    manifest: Manifest,
    sql: str,
    *,
    verify: bool = True,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> pa.RecordBatchReader:
    """Run ``sql`` and stream the result; the connection closes when the reader is exhausted."""
    session = Session(store, manifest, verify=verify)
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


# --- internals ------------------------------------------------------------------------------


class _Datasets:
    """Builds one dataset per table, in place or through the (verifying) store filesystem."""

    def __init__(self, store: ObjectStore, manifest: Manifest, *, verify: bool) -> None:
        self.store = store
        self.manifest = manifest
        self.handlers: list[StoreFileSystemHandler] = []
        native = None if verify else store.arrow_filesystem()
        # Pre-buffering coalesces reads of a file's column chunks: worth it on S3, where each
        # read is a request, but on a local disk or from memory it only holds more buffers.
        pre_buffer = False
        if native is not None:
            self.filesystem, root = native
            self.root = root.rstrip("/")
            pre_buffer = self.filesystem.type_name not in ("local", "mock")
        else:
            chunks = {
                chunk.key: chunk for table in manifest.tables.values() for chunk in table.chunks
            }
            self.filesystem, handler = store_filesystem(store, chunks, verify=verify)
            self.handlers.append(handler)
            self.root = ""
        self.format = ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=pre_buffer)
        )

    def dataset(self, table: str) -> ds.Dataset:
        schema = schema_for(table)
        paths = [self._path(chunk.key) for chunk in self.manifest.table(table).chunks]
        return ds.FileSystemDataset.from_paths(
            paths, schema=schema, format=self.format, filesystem=self.filesystem
        )

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key


class _Translate:
    """Re-raise the store error behind a failed scan (DuckDB and Arrow only pass on its text)."""

    def __init__(self, handlers: list[StoreFileSystemHandler], *, fresh: bool) -> None:
        self.handlers = handlers
        self.fresh = fresh

    def __enter__(self) -> None:
        if self.fresh:  # a new statement: forget what earlier ones ran into
            for handler in self.handlers:
                handler.errors.clear()

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, LabelvaultError):
            return
        for handler in self.handlers:
            if handler.errors:
                error = handler.errors[0]
                handler.errors.clear()  # no reference cycle through the session
                raise error from exc
