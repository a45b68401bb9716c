"""Reading a version back, chunk by chunk, verifying every chunk before it is used."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from labelvault.errors import IntegrityError, ObjectNotFound
from labelvault.snapshot.compat import check_readable
from labelvault.snapshot.delta import DISPLACED_SCHEMA, key_range_slice, merge_streams
from labelvault.snapshot.layout import decode, layout_of, stored_columns
from labelvault.snapshot.manifest import ChunkRef, Manifest, TableManifest, overlapping_chunks
from labelvault.snapshot.memory import use_few_arenas, use_lean_pool
from labelvault.snapshot.schema import schema_for
from labelvault.storage.base import ObjectStore

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "RANGE_BATCH_ROWS",
    "SnapshotReader",
    "fetch_chunk",
    "verify_chunk_bytes",
]

#: Rows per batch yielded by :meth:`SnapshotReader.iter_batches`.
DEFAULT_BATCH_ROWS: Final = 16 * 1024
#: Rows per batch yielded by :meth:`SnapshotReader.iter_key_range`: a restore reads every
#: table of each of its partitions side by side, so each stream holds little.
RANGE_BATCH_ROWS: Final = 1024
_HASH_BLOCK: Final = 1024 * 1024
_DISPLACED_KEYS: Final = pa.schema([DISPLACED_SCHEMA.field("key")])

use_lean_pool()  # chunk after chunk of buffers: see .memory
use_few_arenas()  # partitions side by side, each in threads of its own: see .memory


def verify_chunk_bytes(chunk: ChunkRef, data: bytes) -> None:
    """Raise :class:`IntegrityError` naming the chunk unless ``data`` has its size and sha256."""
    if len(data) != chunk.bytes:
        raise IntegrityError(
            f"chunk {chunk.key} is corrupt: {len(data)} bytes, the manifest says {chunk.bytes}",
            key=chunk.key,
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != chunk.sha256:
        raise IntegrityError(
            f"chunk {chunk.key} is corrupt: sha256 {actual}, the manifest says {chunk.sha256}",
            key=chunk.key,
        )


def fetch_chunk(store: ObjectStore, chunk: ChunkRef) -> bytes:
    """A chunk's bytes, verified against the manifest; a missing chunk is an integrity error."""
    try:
        data = store.get(chunk.key).data
    except ObjectNotFound:
        raise IntegrityError(f"chunk {chunk.key} is missing", key=chunk.key) from None
    verify_chunk_bytes(chunk, data)
    return data


class SnapshotReader:
    """Stream a version's tables from its manifest.

    Every chunk is fetched whole (chunks are bounded in size), its size and sha256 checked
    against the manifest, and only then decoded; memory holds one chunk at a time.
    """

    def __init__(
        self,
        store: ObjectStore,
        manifest: Manifest,
        *,
        unstored: Mapping[str, bytes] | None = None,
    ) -> None:
        check_readable(manifest.format_version)
        self.store = store
        self.manifest = manifest
        #: Chunks read from memory, not from the store, by key (a writer's delta that it has
        #: not decided to store yet).
        self.unstored: Mapping[str, bytes] = {} if unstored is None else unstored
        #: How this version's chunks store their rows (see :mod:`.layout`).
        self.layout = layout_of(manifest.format_version)
        #: Chunks fetched so far (diff uses it to show what it skipped).
        self.chunks_read = 0

    def chunks(self, table: str) -> tuple[ChunkRef, ...]:
        """The base chunks of ``table`` in key order (without its delta, if it has one)."""
        return self.manifest.table(table).chunks

    def iter_batches(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """Yield ``table``'s rows in key order as batches in the current schema.

        ``columns`` selects and orders columns. A table with a delta is merged with its base
        while streaming. Raises :class:`IntegrityError` naming the chunk when one is missing or
        does not match the manifest.
        """
        return self.iter_entry(table, self.manifest.table(table), columns, batch_rows=batch_rows)

    def iter_entry(
        self,
        table: str,
        entry: TableManifest,
        columns: Sequence[str] | None = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`iter_batches`, for the table entry ``entry`` (its base and delta)."""
        if not entry.has_delta:
            return self.iter_chunks(table, entry.chunks, columns, batch_rows=batch_rows)
        return self._merged(table, entry, columns, batch_rows)

    def iter_key_range(
        self,
        table: str,
        start: str | None,
        stop: str | None,
        *,
        batch_rows: int = RANGE_BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`iter_batches`, for the rows whose key is in ``[start, stop)`` (``None``:
        unbounded); only the chunks whose key span meets the range are fetched."""
        entry = self.manifest.table(table)
        return self.iter_entry_range(table, entry, start, stop, batch_rows=batch_rows)

    def iter_entry_range(
        self,
        table: str,
        entry: TableManifest,
        start: str | None,
        stop: str | None,
        *,
        batch_rows: int = RANGE_BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`iter_key_range`, for the table entry ``entry``."""
        pruned = entry.model_copy(
            update={
                name: overlapping_chunks(getattr(entry, name), start, stop)
                for name in ("chunks", "delta", "displaced")
            }
        )
        for batch in self.iter_entry(table, pruned, batch_rows=batch_rows):
            inside = key_range_slice(batch, start, stop)
            if inside.num_rows:
                yield inside

    def iter_displaced(
        self,
        table: str,
        chunks: Iterable[ChunkRef] | None = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """``(key, fingerprint, class_name)`` of the base rows a delta removes or replaces.

        ``chunks`` defaults to the displaced-key chunks of ``table`` in this version.
        """
        chosen = self.manifest.table(table).displaced if chunks is None else chunks
        for chunk in chosen:
            yield from self._chunk_batches(table, chunk, DISPLACED_SCHEMA, batch_rows)

    def iter_chunks(
        self,
        table: str,
        chunks: Iterable[ChunkRef],
        columns: Sequence[str] | None = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`iter_batches`, over the given chunks of ``table`` only."""
        schema = _select(schema_for(table), columns)
        for chunk in chunks:
            yield from self._chunk_batches(table, chunk, schema, batch_rows)

    def read_table(self, table: str, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole table in memory: for small tables (project, datasets, users) only."""
        schema = _select(schema_for(table), columns)
        return pa.Table.from_batches(list(self.iter_batches(table, columns)), schema=schema)

    def verify(self, tables: Iterable[str] | None = None) -> int:
        """Check every chunk's size and sha256 without decoding it; return the bytes checked."""
        checked = 0
        names = self.manifest.tables if tables is None else tables
        for name in names:
            for chunk in self.manifest.table(name).all_chunks:
                checked += self._verify_streaming(chunk)
        return checked

    # --- internals ---------------------------------------------------------------------

    def _merged(
        self,
        table: str,
        entry: TableManifest,
        columns: Sequence[str] | None,
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        wanted = _select(schema_for(table), columns)
        names = wanted.names if "key" in wanted.names else ["key", *wanted.names]
        schema = _select(schema_for(table), names)
        # Without removals, the delta rows alone say which base rows they replace.
        displaced = entry.displaced if entry.removed != 0 else ()
        merged = merge_streams(
            self.iter_chunks(table, entry.chunks, names, batch_rows=batch_rows),
            self.iter_chunks(table, entry.delta, names, batch_rows=batch_rows),
            self._displaced_keys(table, displaced, batch_rows),
            schema,
        )
        for batch in merged:
            yield batch if names == wanted.names else batch.select(wanted.names)

    def _displaced_keys(
        self, table: str, chunks: Iterable[ChunkRef], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """The keys of the displaced-key chunks alone: all a merge needs of them."""
        for chunk in chunks:
            yield from self._chunk_batches(table, chunk, _DISPLACED_KEYS, batch_rows)

    def _chunk_batches(
        self, table: str, chunk: ChunkRef, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        data = self.unstored.get(chunk.key)
        if data is None:
            data = fetch_chunk(self.store, chunk)
        self.chunks_read += 1
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            if parquet.metadata.num_rows != chunk.rows:
                raise IntegrityError(
                    f"chunk {chunk.key} holds {parquet.metadata.num_rows} rows, the manifest "
                    f"says {chunk.rows}",
                    key=chunk.key,
                )
            columns = stored_columns(table, schema.names, self.layout)
            # One thread: decoding threads each keep an allocator arena, which shows as RSS.
            stored_batches = parquet.iter_batches(
                batch_size=batch_rows, columns=columns, use_threads=False
            )
            for stored in stored_batches:
                yield _decoded(table, stored, self.layout, schema, chunk)
        except (pa.ArrowException, OSError) as exc:
            raise IntegrityError(
                f"chunk {chunk.key} of table {table!r} cannot be decoded: {exc}", key=chunk.key
            ) from exc

    def _verify_streaming(self, chunk: ChunkRef) -> int:
        digest = hashlib.sha256()
        size = 0
        try:
            with self.store.open_read(chunk.key) as stream:
                while block := stream.read(_HASH_BLOCK):
                    digest.update(block)
                    size += len(block)
        except ObjectNotFound:
            raise IntegrityError(f"chunk {chunk.key} is missing", key=chunk.key) from None
        if size != chunk.bytes:
            raise IntegrityError(
                f"chunk {chunk.key} is corrupt: {size} bytes, the manifest says {chunk.bytes}",
                key=chunk.key,
            )
        if digest.hexdigest() != chunk.sha256:
            raise IntegrityError(
                f"chunk {chunk.key} is corrupt: sha256 {digest.hexdigest()}, the manifest says "
                f"{chunk.sha256}",
                key=chunk.key,
            )
        return size


def _select(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Schema:
    if columns is None:
        return schema
    unknown = [name for name in columns if name not in schema.names]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; the table's columns are {schema.names}")
    return pa.schema([schema.field(name) for name in columns])


def _decoded(
    table: str, stored: pa.RecordBatch, layout: int, schema: pa.Schema, chunk: ChunkRef
) -> pa.RecordBatch:
    try:
        return decode(table, stored, layout, schema)
    except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        raise IntegrityError(
            f"chunk {chunk.key} does not have the table's columns: {exc}", key=chunk.key
        ) from exc
