"""A version's chunks read through any :class:`ObjectStore`, as a table DuckDB can scan.

:class:`StoreChunks` is an Arrow stream DuckDB scans, and every scan reads the chunks afresh,
one after another: each is fetched whole on the thread that pulls the stream, its size and
sha256 checked against the manifest when ``verify`` is set, then decoded.

No Arrow thread ever calls into Python here. Under a ``pyarrow.fs.PyFileSystem`` a dataset
scanner's threads do, and DuckDB's scan of such a dataset can deadlock: ``Scanner.to_reader``
keeps the GIL while it waits for a lock that an I/O thread holds while it waits for the GIL to
open a file.

A chunk that is missing or fails verification ends the scan with an error, and the
:class:`~labelvault.errors.IntegrityError` is kept in :attr:`StoreChunkSource.errors`, for the
caller to re-raise whole (DuckDB passes on only its text; :mod:`labelvault.query` does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from labelvault.errors import IntegrityError, ObjectNotFound
from labelvault.snapshot.manifest import ChunkRef
from labelvault.snapshot.reader import fetch_chunk
from labelvault.storage.base import ObjectStore

__all__ = ["StoreChunkSource", "StoreChunks"]


class StoreChunkSource:
    """Fetches chunk files from ``store``, verifying those ``chunks`` names when ``verify``."""

    def __init__(
        self, store: ObjectStore, chunks: Mapping[str, ChunkRef], *, verify: bool = True
    ) -> None:
        self.store = store
        self.chunks = dict(chunks)
        self.verify = verify
        #: What went wrong while reading chunks (verification failures, storage errors).
        self.errors: list[Exception] = []
        self._lock = threading.Lock()

    def read(self, key: str) -> bytes:
        """The bytes of chunk ``key``; a failure is recorded in :attr:`errors` and raised."""
        chunk = self.chunks.get(key)
        try:
            if chunk is not None and self.verify:
                return fetch_chunk(self.store, chunk)
            try:
                return self.store.get(key).data
            except ObjectNotFound:
                raise IntegrityError(f"chunk {key} is missing", key=key) from None
        except Exception as error:
            with self._lock:  # without its traceback, which would hold the source in a cycle
                self.errors.append(error.with_traceback(None))
            raise

    def table(self, keys: Sequence[str], schema: pa.Schema) -> StoreChunks:
        """The chunks ``keys``, in order, as one table of ``schema``."""
        return StoreChunks(self, keys, schema)


class StoreChunks:
    """Chunk files of one table, readable any number of times as an Arrow stream.

    DuckDB scans any object with ``__arrow_c_stream__`` and asks it again for every scan; each
    stream reads the chunks in order, one at a time.
    """

    def __init__(self, source: StoreChunkSource, keys: Sequence[str], schema: pa.Schema) -> None:
        self.source = source
        self.keys = list(keys)
        self.schema = schema

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        reader = pa.RecordBatchReader.from_batches(self.schema, self._batches())
        return reader.__arrow_c_stream__(requested_schema)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for key in self.keys:
            # A chunk is small and already in memory whole: decoding it at once, on Arrow's
            # threads, is faster than row group by row group.
            rows = pq.ParquetFile(pa.BufferReader(self.source.read(key))).read(use_threads=True)
            if rows.schema != self.schema:  # in the table's column order and types
                rows = rows.select(self.schema.names).cast(self.schema)
            yield from rows.to_batches()
