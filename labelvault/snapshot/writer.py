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
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
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
from labelvault.snapshot.delta import (
    DEFAULT_DELTA_POLICY,
    DISPLACED_SCHEMA,
    DeltaPolicy,
    KeyWindow,
    key_range_slice,
    same_rows,
)
from labelvault.snapshot.layout import encode, layout_of
from labelvault.snapshot.manifest import (
    ChunkRef,
    Manifest,
    SnapshotSource,
    TableManifest,
    content_hash,
    empty_table_manifest,
    overlapping_chunks,
)
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import FORMAT_VERSION, OPTIONAL_TABLES, TABLES, schema_for
from labelvault.storage.base import ObjectStore

__all__ = ["SnapshotWriter", "chunk_key"]

_MODULUS: Final = 2**256


def chunk_key(prefix: str, sha256: str) -> str:
    """Where the chunk with this sha256 is stored under a project's prefix."""
    return f"{prefix.rstrip('/')}/chunks/{sha256}.parquet"


@dataclass
class _Sink:
    """One stream of rows being cut into chunks: a table's base, its delta or displaced keys."""

    name: str
    schema: pa.Schema
    displaced: bool = False
    #: Chunks are kept in memory until the writer stores or drops them (a delta).
    deferred: bool = False
    pending: list[pa.RecordBatch] = field(default_factory=list)
    pending_weight: int = 0
    pending_size: int = 0
    rows: int = 0
    chunks: list[ChunkRef] = field(default_factory=list)


@dataclass
class _TableState:
    name: str
    schema: pa.Schema
    base: _Sink
    last_key: str | None = None
    rows: int = 0
    content_sum: int = 0
    delta: _DeltaState | None = None


@dataclass
class _DeltaState:
    """A table written as a delta against ``previous``'s base, and the base rows still ahead.

    ``base`` is the part of the base the delta is taken against (all of it, or the chunks that
    meet the writer's key range) and ``limit`` the most delta rows it may carry while the
    rows stream (the rows of those chunks allow); ``seen`` counts the base rows in the range
    read so far, by which the delta is judged at the end.
    """

    previous: TableManifest
    base: tuple[ChunkRef, ...]
    limit: int
    seen: list[int]
    window: KeyWindow
    upserts: _Sink
    displaced: _Sink
    min_keys: list[str]
    touched: set[int] = field(default_factory=set)
    delta_rows: int = 0
    #: Base rows displaced without a delta row replacing them.
    removed: int = 0

    @property
    def chunks(self) -> tuple[ChunkRef, ...]:
        """The delta's chunks so far: changed rows, then displaced keys."""
        return (*self.upserts.chunks, *self.displaced.chunks)


_CHUNK_COLUMN: Final = "__chunk"


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

    With ``previous`` (the manifest of the version before), a table may be written as a delta
    against the previous version's base: the writer streams the base in key order alongside
    the new rows (a merge join, one batch at a time) and stores only the rows that differ.
    ``delta_policy`` says when to write the base whole instead (see
    :class:`~labelvault.snapshot.delta.DeltaPolicy`).

    With ``key_range`` ``(start, stop)`` the writer writes one partition of a capture: each
    table of ``ranged_tables`` gets exactly the rows whose key is in ``[start, stop)`` (a key
    outside is refused), and its delta is taken against the base rows in that range only; a
    ranged table given no rows displaces the base rows in the range. Such a table's entry
    names the base chunks that meet the range and, when it is a delta, has a ``chain`` of at
    least 1, also when nothing changed; a ``chain`` of 0 means the range was written whole
    (see :func:`~labelvault.snapshot.merge.merge_parts`). Other tables are written whole.
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
        previous: Manifest | None = None,
        delta_policy: DeltaPolicy = DEFAULT_DELTA_POLICY,
        key_range: tuple[str, str | None] | None = None,
        ranged_tables: Collection[str] = (),
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
        self.previous = previous
        self.delta_policy = delta_policy
        self.key_range = key_range
        self.ranged_tables = frozenset(ranged_tables) if key_range is not None else frozenset()
        #: Delta chunks encoded but not stored yet: stored if the delta is kept, else dropped.
        self._unstored: dict[str, bytes] = {}
        self._reader = (
            SnapshotReader(store, previous, unstored=self._unstored)
            if previous is not None
            else None
        )
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
        return sum(
            batch.num_rows for state in self._tables.values() for batch in state.base.pending
        )

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
        tables: dict[str, TableManifest] = {}
        for name in TABLES:
            state = self._tables.get(name)
            if state is None and name in self.ranged_tables:
                state = self._state(name)  # its base rows in the range are displaced
                if state.delta is None:
                    state = None
            if state is None and name in OPTIONAL_TABLES:
                continue
            if state is None:
                tables[name] = empty_table_manifest()
            else:
                tables[name] = self._finish_table(state)
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

    def store_rows(self, table: str, batches: Iterable[pa.RecordBatch]) -> tuple[ChunkRef, ...]:
        """Store key-sorted rows of ``table`` in chunks of their own, apart from the rows
        :meth:`write` takes; the chunks, in key order."""
        self._check_open()
        sink = _Sink(table, schema_for(table))
        for batch in batches:
            self._append(sink, batch)
        if sink.pending:
            self._flush(sink)
        return tuple(sink.chunks)

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
            state = _TableState(name=table, schema=schema, base=_Sink(table, schema))
            state.delta = self._start_delta(table, schema)
            self._tables[table] = state
        return state

    def _range(self, table: str) -> tuple[str | None, str | None]:
        """The keys ``table`` holds in this writer: ``[start, stop)``, ``None`` unbounded."""
        if self.key_range is None or table not in self.ranged_tables:
            return None, None
        start, stop = self.key_range
        return start or None, stop

    def _row_limit(self, table: str, base_rows: int) -> int:
        """Most delta rows against ``base_rows`` base rows. A range may always carry one:
        writing a small range whole would cost more, as the base chunks at its edges are
        cut."""
        limit = self.delta_policy.row_limit(base_rows)
        if table in self.ranged_tables and self.delta_policy.max_share > 0:
            return max(1, limit)
        return limit

    def _start_delta(self, table: str, schema: pa.Schema) -> _DeltaState | None:
        """A delta against the previous version's base, unless the policy says compact."""
        if self._reader is None or self.previous is None:
            return None
        if self.key_range is not None and table not in self.ranged_tables:
            return None
        previous = self.previous.table(table)
        if not previous.chunks or previous.chain >= self.delta_policy.max_chain:
            return None
        if layout_of(self.previous.format_version) != layout_of(FORMAT_VERSION):
            return None  # a manifest's chunks share one layout: rewrite older ones once
        start, stop = self._range(table)
        base = overlapping_chunks(previous.chunks, start, stop)
        limit = self._row_limit(table, sum(chunk.rows for chunk in base))
        if not base or limit < 1:
            return None
        reader = self._reader
        with_chunk = schema.append(pa.field(_CHUNK_COLUMN, pa.int32()))
        first = previous.chunks.index(base[0])
        seen = [0]

        def base_rows() -> Iterator[pa.RecordBatch]:
            for index, chunk in enumerate(base, start=first):
                for batch in reader.iter_chunks(table, [chunk]):
                    inside = key_range_slice(batch, start, stop)
                    seen[0] += inside.num_rows
                    marks = pa.array([index] * inside.num_rows, pa.int32())
                    yield pa.RecordBatch.from_arrays([*inside.columns, marks], schema=with_chunk)

        return _DeltaState(
            previous=previous,
            base=base,
            limit=limit,
            seen=seen,
            window=KeyWindow(base_rows(), with_chunk),
            upserts=_Sink(table, schema, deferred=True),
            displaced=_Sink(table, DISPLACED_SCHEMA, displaced=True, deferred=True),
            min_keys=[chunk.min_key for chunk in previous.chunks],
        )

    def _write_batch(self, state: _TableState, batch: pa.RecordBatch) -> None:
        batch = conform_batch(state.name, batch)
        count = batch.num_rows
        if count == 0:
            return
        key_column = batch.column(0)
        _check_order(state, key_column)
        self._check_range(state.name, key_column)
        state.content_sum += sum(int(f, 16) for f in batch.column(1).to_pylist())
        state.last_key = key_column[-1].as_py()
        state.rows += count
        if state.delta is None:
            self._append(state.base, batch)
            return
        self._join(state, state.delta, batch)
        if state.delta.delta_rows > state.delta.limit:
            assert state.last_key is not None
            self._compact(state, until=state.last_key)

    def _join(self, state: _TableState, delta: _DeltaState, batch: pa.RecordBatch) -> None:
        """Merge-join ``batch`` with the base rows in its key range; keep what differs."""
        high: str = batch.column(0)[-1].as_py()
        base = delta.window.take_until(high)
        new = pa.Table.from_batches([batch])
        names = state.schema.names
        if base.num_rows:
            base_rows = base.select(names)
            at = pc.index_in(new.column(0), value_set=base.column(0))
            found = pc.is_valid(at)
            same_new = pc.and_(found, same_rows(new, base_rows.take(pc.fill_null(at, 0))))
            back = pc.index_in(base.column(0), value_set=new.column(0))
            same_base = pc.and_(
                pc.is_valid(back), same_rows(base_rows, new.take(pc.fill_null(back, 0)))
            )
            upserts = new.filter(pc.invert(same_new))
            gone = base.filter(pc.invert(same_base))
            replaced = pc.sum(pc.is_valid(back).filter(pc.invert(same_base))).as_py() or 0
            removed = gone.num_rows - replaced
        else:
            upserts, gone, removed = new, base, 0
        if upserts.num_rows:
            self._append_table(delta.upserts, upserts)
            added = upserts.filter(pc.invert(pc.is_in(upserts.column(0), value_set=base.column(0))))
            for key in added.column(0).to_pylist():
                delta.touched.add(max(0, bisect_right(delta.min_keys, key) - 1))
        if gone.num_rows:
            self._append_table(delta.displaced, _displaced(state.name, gone))
            delta.touched.update(gone.column(_CHUNK_COLUMN).to_pylist())
        delta.delta_rows += upserts.num_rows + removed
        delta.removed += removed

    def _compact(self, state: _TableState, *, until: str | None) -> None:
        """Write the table whole from here on: replay base and delta up to ``until`` first."""
        delta = state.delta
        assert delta is not None
        assert self._reader is not None
        for sink in (delta.upserts, delta.displaced):
            if sink.pending:
                self._flush(sink)
        replay = delta.previous.model_copy(
            update={
                "delta": tuple(delta.upserts.chunks),
                "displaced": tuple(delta.displaced.chunks),
                "removed": delta.removed,
            }
        )
        reader = self._reader
        state.delta = None
        start, stop = self._range(state.name)
        for batch in reader.iter_entry_range(state.name, replay, start, stop):
            if until is not None:
                keep = pc.sum(pc.less_equal(batch.column(0), pa.scalar(until))).as_py() or 0
                if keep < batch.num_rows:
                    if keep:
                        self._append(state.base, batch.slice(0, keep))
                    break
            self._append(state.base, batch)
        for chunk in delta.chunks:
            self._unstored.pop(chunk.key, None)  # the delta is replayed: never stored

    def _finish_table(self, state: _TableState) -> TableManifest:
        delta = state.delta
        if delta is not None:
            for rest in delta.window.rest():  # base rows after the last new key: removed
                gone = pa.Table.from_batches([rest])
                self._append_table(delta.displaced, _displaced(state.name, gone))
                delta.touched.update(gone.column(_CHUNK_COLUMN).to_pylist())
                delta.delta_rows += gone.num_rows
                delta.removed += gone.num_rows
            for sink in (delta.upserts, delta.displaced):
                if sink.pending:
                    self._flush(sink)
            delta_bytes = sum(c.bytes for c in delta.chunks)
            touched_bytes = sum(delta.previous.chunks[i].bytes for i in delta.touched)
            limit = self._row_limit(state.name, delta.seen[0])  # the base rows in range
            if delta.delta_rows > limit or (
                self.delta_policy.prefer_smaller and delta_bytes > touched_bytes
            ):
                self._compact(state, until=None)
            elif not delta.delta_rows and state.name not in self.ranged_tables:
                return self._table_manifest(state, delta.base)
            else:  # a range's part of a delta is one even when empty or unchanged
                self._store_delta(delta)
                return self._table_manifest(state, delta.base, delta)
        if state.base.pending:
            self._flush(state.base)
        return self._table_manifest(state, tuple(state.base.chunks))

    def _check_range(self, table: str, keys: pa.Array) -> None:
        """Keys of a ranged table must lie in the writer's key range."""
        start, stop = self._range(table)
        first, last = keys[0].as_py(), keys[-1].as_py()
        if (start is not None and first < start) or (stop is not None and last >= stop):
            raise SnapshotError(
                f"table {table!r}: key {first if start is not None and first < start else last!r}"
                f" lies outside this partition's key range [{start!r}, {stop!r})"
            )

    def _table_manifest(
        self,
        state: _TableState,
        base: Sequence[ChunkRef],
        delta: _DeltaState | None = None,
    ) -> TableManifest:
        """The entry of ``state``'s table: its base and, when given, ``delta`` on it. A table
        without rows is empty, but a range's part of a delta, which the merge needs."""
        if state.rows == 0 and not (delta is not None and state.name in self.ranged_tables):
            return empty_table_manifest()
        upserts = () if delta is None else tuple(delta.upserts.chunks)
        displaced = () if delta is None else tuple(delta.displaced.chunks)
        return TableManifest(
            rows=state.rows,
            bytes=sum(chunk.bytes for chunk in (*base, *upserts, *displaced)),
            content_sum=format(state.content_sum % _MODULUS, "064x"),
            chunks=tuple(base),
            delta=upserts,
            displaced=displaced,
            chain=0 if delta is None else delta.previous.chain + 1,
            removed=None if delta is None else delta.removed,
        )

    def _append_table(self, sink: _Sink, table: pa.Table) -> None:
        for batch in table.combine_chunks().to_batches():
            self._append(sink, batch)

    def _append(self, sink: _Sink, batch: pa.RecordBatch) -> None:
        """Add key-sorted rows to ``sink``, storing every chunk a boundary closes."""
        count = batch.num_rows
        if count == 0:
            return
        batch = batch.select(sink.schema.names)
        keys: list[str] = batch.column(0).to_pylist()
        sink.rows += count
        ends, weight, size = self.policy.cut(
            keys, row_sizes(batch), sink.pending_weight, sink.pending_size
        )
        start = 0
        for end in ends:
            sink.pending.append(batch.slice(start, end - start))
            self._flush(sink)
            start = end
        if start < count:
            sink.pending.append(batch.slice(start))
        sink.pending_weight, sink.pending_size = weight, size

    def _flush(self, sink: _Sink) -> None:
        rows = pa.Table.from_batches(sink.pending, schema=sink.schema)
        sink.pending = []
        sink.pending_weight = sink.pending_size = 0
        stored = encode(sink.name, rows, displaced=sink.displaced)
        data = encode_chunk(stored, row_group_rows=self.row_group_rows)
        sha = hashlib.sha256(data).hexdigest()
        key = chunk_key(self.prefix, sha)
        if sink.deferred:
            self._unstored[key] = data
        else:
            self._store_counted(key, data)
        keys = rows.column(0)
        sink.chunks.append(
            ChunkRef(
                key=key,
                rows=rows.num_rows,
                bytes=len(data),
                sha256=sha,
                min_key=keys[0].as_py(),
                max_key=keys[-1].as_py(),
            )
        )

    def _store_delta(self, delta: _DeltaState) -> None:
        """Store the delta's chunks, held in memory until the delta was judged worth keeping."""
        for chunk in delta.chunks:
            data = self._unstored.pop(chunk.key, None)
            if data is not None:
                self._store_counted(chunk.key, data)

    def _store_counted(self, key: str, data: bytes) -> None:
        """Store a chunk (unless it is there already) and count its bytes."""
        if self._store_chunk(key, data):
            self.bytes_written += len(data)
            self.chunks_written += 1
        else:
            self.bytes_reused += len(data)
            self.chunks_reused += 1

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


def _displaced(table: str, base: pa.Table) -> pa.Table:
    """The displaced-key records of the base rows ``base``."""
    classes = (
        base.column("class_name")
        if "class_name" in base.column_names
        else pa.nulls(base.num_rows, pa.string())
    )
    return pa.Table.from_arrays(
        [base.column("key"), base.column("fingerprint"), classes], schema=DISPLACED_SCHEMA
    )


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
