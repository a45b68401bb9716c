"""The streaming snapshot writer.

:class:`SnapshotWriter` consumes record batches as pages arrive, keeps one open chunk per table
(tables may interleave), cuts chunks at content-defined boundaries (see
:mod:`labelvault.snapshot.chunking`) and stores each chunk once, under the sha256 of its bytes,
with a create-only write. Memory is bounded by the open chunks, never by the project's size.

Nothing a writer stores is visible until a manifest naming its chunks is written and
committed; chunks of an aborted or crashed capture are unreferenced and retention collects them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from labelvault.errors import (
    AlreadyExists,
    IntegrityError,
    ObjectNotFound,
    SchemaMismatch,
    SnapshotError,
)
from labelvault.keys import validate_key
from labelvault.snapshot.chunking import (
    DEFAULT_ROW_GROUP_ROWS,
    ChunkPolicy,
    conform_batch,
    encode_chunk,
    row_sizes,
)
from labelvault.snapshot.manifest import (
    ChunkRef,
    Manifest,
    SnapshotSource,
    TableManifest,
    content_hash,
    empty_table_manifest,
)
from labelvault.snapshot.schema import FORMAT_VERSION, TABLES, schema_for
from labelvault.storage.base import ObjectStore

__all__ = ["SnapshotWriter", "chunk_key"]

_MODULUS: Final = 2**256


def chunk_key(prefix: str, sha256: str) -> str:
    """Where the chunk with this sha256 is stored under a project's prefix."""
    return f"{prefix.rstrip('/')}/chunks/{sha256}.parquet"


@dataclass
class _TableState:
    name: str
    schema: pa.Schema
    pending: list[pa.RecordBatch] = field(default_factory=list)
    pending_weight: int = 0
    pending_size: int = 0
    last_key: str | None = None
    rows: int = 0
    content_sum: int = 0
    chunks: list[ChunkRef] = field(default_factory=list)


class SnapshotWriter:
    """Write one version's tables as content-defined, content-addressed Parquet chunks.

    ```python
    writer = SnapshotWriter(store, ref.prefix, source={"platform": ..., "instance": ...,
                                                       "project_id": ...})
    for page in platform.iter_pages(project_id):
        writer.write(page.table, page.batch)
    manifest = writer.finish()
    key = write_manifest(store, ref.prefix, manifest)
    ```

    ``source`` is a :class:`SnapshotSource` or a mapping with its fields (``captured_at``
    defaults to now). Chunk size is ``target_chunk_rows`` rows or ``target_chunk_bytes`` bytes
    of uncompressed row data on average (2 MiB when neither is given); ``row_group_rows`` caps
    the Parquet row groups inside a chunk. Use as a context manager to abort on errors.
    """

    def __init__(
        self,
        store: ObjectStore,
        prefix: str,
        *,
        source: SnapshotSource | Mapping[str, object],
        target_chunk_rows: int | None = None,
        target_chunk_bytes: int | None = None,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    ) -> None:
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
        self.store = store
        self.prefix = validate_key(prefix.rstrip("/"), store=store.name)
        self.source = (
            source if isinstance(source, SnapshotSource) else SnapshotSource.model_validate(source)
        )
        self.policy = ChunkPolicy.of(rows=target_chunk_rows, bytes=target_chunk_bytes)
        self.row_group_rows = row_group_rows
        self._tables: dict[str, _TableState] = {}
        self._closed = False
        self.bytes_written = 0
        self.bytes_reused = 0
        self.chunks_written = 0
        self.chunks_reused = 0

    # --- public ------------------------------------------------------------------------

    @property
    def rows(self) -> dict[str, int]:
        """Rows accepted so far, per table."""
        return {name: state.rows for name, state in self._tables.items()}

    @property
    def buffered_rows(self) -> int:
        """Rows held in open chunks until a boundary falls (bounded by the chunk policy)."""
        return sum(batch.num_rows for state in self._tables.values() for batch in state.pending)

    def write(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows to ``table``; keys must keep increasing strictly within the table.

        Raises :class:`SchemaMismatch` naming the table and column or the offending keys.
        """
        self._check_open()
        state = self._state(table)
        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        for part in batches:
            self._write_batch(state, part)

    def finish(self) -> Manifest:
        """Flush the open chunks and return the manifest (not yet stored: see
        :func:`~labelvault.snapshot.manifest.write_manifest`)."""
        self._check_open()
        for open_table in self._tables.values():
            if open_table.pending:
                self._flush(open_table)
        tables: dict[str, TableManifest] = {}
        for name in TABLES:
            state = self._tables.get(name)
            if state is None or state.rows == 0:
                tables[name] = empty_table_manifest()
            else:
                tables[name] = TableManifest(
                    rows=state.rows,
                    bytes=sum(chunk.bytes for chunk in state.chunks),
                    content_sum=format(state.content_sum % _MODULUS, "064x"),
                    chunks=tuple(state.chunks),
                )
        self._closed = True
        self._tables.clear()
        return Manifest(
            format_version=FORMAT_VERSION,
            prefix=self.prefix,
            source=self.source.project,
            captured_at=self.source.captured_at,
            source_updated_at=self.source.source_updated_at,
            tables=tables,
            content_hash=content_hash(tables),
            bytes_written=self.bytes_written,
            bytes_reused=self.bytes_reused,
            chunks_written=self.chunks_written,
            chunks_reused=self.chunks_reused,
        )

    def abort(self) -> None:
        """Drop the open chunks. Chunks already stored stay, unreferenced, for retention."""
        self._closed = True
        self._tables.clear()

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None and not self._closed:
            self.abort()

    # --- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SnapshotError("the snapshot writer is finished or aborted")

    def _state(self, table: str) -> _TableState:
        state = self._tables.get(table)
        if state is None:
            try:
                schema = schema_for(table)
            except KeyError as exc:
                raise SchemaMismatch(str(exc.args[0])) from None
            state = _TableState(name=table, schema=schema)
            self._tables[table] = state
        return state

    def _write_batch(self, state: _TableState, batch: pa.RecordBatch) -> None:
        batch = conform_batch(state.name, batch)
        count = batch.num_rows
        if count == 0:
            return
        key_column = batch.column(0)
        _check_order(state, key_column)
        keys: list[str] = key_column.to_pylist()
        state.content_sum += sum(int(f, 16) for f in batch.column(1).to_pylist())
        state.last_key = keys[-1]
        state.rows += count
        ends, weight, size = self.policy.cut(
            keys, row_sizes(batch), state.pending_weight, state.pending_size
        )
        start = 0
        for end in ends:
            state.pending.append(batch.slice(start, end - start))
            self._flush(state)
            start = end
        if start < count:
            state.pending.append(batch.slice(start))
        state.pending_weight, state.pending_size = weight, size

    def _flush(self, state: _TableState) -> None:
        rows = pa.Table.from_batches(state.pending, schema=state.schema)
        state.pending = []
        data = encode_chunk(rows, row_group_rows=self.row_group_rows)
        sha = hashlib.sha256(data).hexdigest()
        key = chunk_key(self.prefix, sha)
        if self._store_chunk(key, data):
            self.bytes_written += len(data)
            self.chunks_written += 1
        else:
            self.bytes_reused += len(data)
            self.chunks_reused += 1
        keys = rows.column(0)
        state.chunks.append(
            ChunkRef(
                key=key,
                rows=rows.num_rows,
                bytes=len(data),
                sha256=sha,
                min_key=keys[0].as_py(),
                max_key=keys[-1].as_py(),
            )
        )

    def _store_chunk(self, key: str, data: bytes) -> bool:
        """Store a chunk unless it is there already; True when this call stored it."""
        try:
            info = self.store.head(key)
        except ObjectNotFound:
            try:
                self.store.put_if_absent(key, data)
            except AlreadyExists:
                return False
            return True
        if info.size != len(data):
            raise IntegrityError(
                f"chunk {key} is already stored with {info.size} bytes instead of {len(data)}: "
                "the stored copy is corrupt; delete it and capture again",
                key=key,
            )
        return False


def _check_order(state: _TableState, keys: pa.Array) -> None:
    """Keys must increase strictly within the batch and after the table's last key."""
    first = keys[0].as_py()
    if state.last_key is not None and not state.last_key < first:
        _out_of_order(state.name, state.last_key, first)
    if len(keys) > 1:
        increasing = pc.less(keys.slice(0, len(keys) - 1), keys.slice(1))
        if not pc.all(increasing).as_py():
            index = pc.index(increasing, False).as_py()
            _out_of_order(state.name, keys[index].as_py(), keys[index + 1].as_py())


def _out_of_order(table: str, before: str, after: str) -> None:
    what = "duplicate key" if before == after else "keys out of order"
    raise SchemaMismatch(
        f"table {table!r}: {what}: {before!r} is followed by {after!r}; rows must arrive in "
        "strictly increasing key order"
    )
