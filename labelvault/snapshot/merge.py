"""One version from the snapshots of its partitions.

A partitioned capture writes each partition of a project with its own
:class:`~labelvault.snapshot.writer.SnapshotWriter`. The parts
come in key order: a table's rows in one part all sort after its rows in the parts before.
:func:`merge_parts` then makes the version's manifest without rewriting them: a table's chunks
are the parts' chunks one after the other, its rows and content sum their sums, so its content
hash is the one a serial capture of the same rows gives.

A table of *ranged* partitions (each holds the rows whose key is in its range; the ranges
follow one another and cover every key) may be a delta in each part, against the latest
version's base (see :class:`~labelvault.snapshot.writer.SnapshotWriter`'s ``key_range``).
When every part is a delta, the version's table is that base with the parts' deltas one
after the other: what a serial capture of the same rows stores, and nothing is rewritten.
A part that wrote its range whole instead puts its chunks in place of the base's rows in its
range; a base chunk that straddles the edge of such a range is cut there (read, and its
rows on the kept side stored anew).

*Shared* tables are the exception: several partitions may hold the same row (Supervisely's
``users``, one row per login that labelled anything, in every partition that login labelled).
Their rows are merged by key, streaming, a duplicate kept once (it must be the same row), and
written anew.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterator, Sequence

import pyarrow as pa

from labelvault.errors import SnapshotError
from labelvault.snapshot.delta import key_range_slice
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
from labelvault.snapshot.schema import OPTIONAL_TABLES, TABLES, schema_for
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.base import ObjectStore

__all__ = ["merge_parts"]

_MODULUS = 2**256
_MERGE_BATCH_ROWS = 1024


def merge_parts(
    store: ObjectStore,
    prefix: str,
    parts: Sequence[Manifest],
    *,
    source: SnapshotSource,
    shared: Collection[str] = (),
    ranges: Sequence[tuple[str, str | None] | None] = (),
    ranged_tables: Collection[str] = (),
    previous: Manifest | None = None,
) -> Manifest:
    """The manifest of the version made of ``parts`` (in key order), not yet stored.

    ``ranges`` gives each part's key range (``None``: the part has none); ``ranged_tables``
    are the tables the ranged parts hold; ``previous`` is the version their deltas are
    against.

    Raises :class:`SnapshotError` when a table is a delta in one part and has rows in another,
    when two parts' rows of a table are out of key order, when two parts hold different
    rows under one key of a shared table, or when a part's delta is against another base.
    """
    tables: dict[str, TableManifest] = {}
    writer = SnapshotWriter(store, prefix, source=source)
    windows = list(ranges) or [None] * len(parts)
    if len(windows) != len(parts):
        raise ValueError(f"{len(parts)} parts but {len(windows)} key ranges")
    with writer:
        for name in TABLES:
            if name in shared:
                _merge_shared(store, name, parts, writer)
                continue
            if name in ranged_tables and any(window is not None for window in windows):
                entry = _merge_ranged(name, parts, windows, previous, writer)
            else:
                entry = _concatenate(name, [part.table(name) for part in parts])
            if entry.rows or name not in OPTIONAL_TABLES:
                tables[name] = entry
        written = writer.finish()
    for name in shared:
        if name in written.tables and (written.tables[name].rows or name not in OPTIONAL_TABLES):
            tables[name] = written.tables[name]
    ordered = {name: tables[name] for name in TABLES if name in tables}
    return Manifest(
        prefix=prefix,
        source=source.project,
        captured_at=source.captured_at,
        source_updated_at=source.source_updated_at,
        tables=ordered,
        content_hash=content_hash(ordered),
        bytes_written=written.bytes_written + sum(part.bytes_written for part in parts),
        bytes_reused=written.bytes_reused + sum(part.bytes_reused for part in parts),
        chunks_written=written.chunks_written + sum(part.chunks_written for part in parts),
        chunks_reused=written.chunks_reused + sum(part.chunks_reused for part in parts),
    )


def _concatenate(name: str, entries: Sequence[TableManifest]) -> TableManifest:
    """The parts' chunks of one table, one part after the other, checked to be in key order.

    A table only one part holds is taken as that part wrote it, delta and all.
    """
    holding = [entry for entry in entries if entry.rows or entry.has_delta]
    if len(holding) == 1:
        return holding[0]
    if any(entry.has_delta for entry in holding):
        raise SnapshotError(
            f"table {name!r} is a delta in one partition and has rows in another; "
            "a delta must be its table's only part"
        )
    chunks = [chunk for entry in entries for chunk in entry.chunks]
    _check_key_order(name, chunks)
    return TableManifest(
        rows=sum(entry.rows for entry in entries),
        bytes=sum(entry.bytes for entry in entries),
        content_sum=_content_sum(entries),
        chunks=tuple(chunks),
    )


def _merge_ranged(
    name: str,
    parts: Sequence[Manifest],
    windows: Sequence[tuple[str, str | None] | None],
    previous: Manifest | None,
    writer: SnapshotWriter,
) -> TableManifest:
    """One ranged table from the parts' deltas and bases (see the module's docs)."""
    base = previous.table(name) if previous is not None else empty_table_manifest()
    entries: list[TableManifest] = []
    pieces: list[ChunkRef] = []
    delta: list[ChunkRef] = []
    displaced: list[ChunkRef] = []
    chain = 0
    removed: int | None = 0
    run: list[str | None] = []  # the start and stop of the parts in a row that are deltas

    def close_run() -> None:
        if run:
            assert previous is not None
            pieces.extend(_base_in_range(writer, previous, name, run[0], run[-1]))
            run.clear()

    for part, window in zip(parts, windows, strict=True):
        entry = part.table(name)
        if window is None:
            if entry.rows or entry.chunks or entry.has_delta:
                raise SnapshotError(
                    f"table {name!r} is held by a partition without a key range besides the "
                    "ranged ones"
                )
            continue
        entries.append(entry)
        start, stop = window[0] or None, window[1]
        if not entry.chain:  # the range written whole
            if entry.has_delta:
                raise SnapshotError(f"table {name!r}: a partition's delta has no chain")
            close_run()
            pieces.extend(entry.chunks)
            continue
        if previous is None or entry.chunks != overlapping_chunks(base.chunks, start, stop):
            raise SnapshotError(
                f"table {name!r}: the partition from key {start!r} is a delta against another "
                "version than the latest; capture the project again"
            )
        run[1:] = [stop] if run else [start, stop]
        delta.extend(entry.delta)
        displaced.extend(entry.displaced)
        chain = max(chain, entry.chain)
        removed = None if removed is None or entry.removed is None else removed + entry.removed
    close_run()
    for chunks in (pieces, delta, displaced):
        _check_key_order(name, chunks)
    rows = sum(entry.rows for entry in entries)
    if not rows:
        return empty_table_manifest()
    if not delta and not displaced:
        chain, removed = 0, None
    return TableManifest(
        rows=rows,
        bytes=sum(chunk.bytes for chunk in (*pieces, *delta, *displaced)),
        content_sum=_content_sum(entries),
        chunks=tuple(pieces),
        delta=tuple(delta),
        displaced=tuple(displaced),
        chain=chain,
        removed=removed,
    )


def _base_in_range(
    writer: SnapshotWriter, previous: Manifest, name: str, start: str | None, stop: str | None
) -> Iterator[ChunkRef]:
    """The chunks of ``previous``'s base of ``name`` holding its rows in ``[start, stop)``:
    the base's own chunks, but those that straddle an edge, whose rows inside are stored anew."""
    reader = SnapshotReader(writer.store, previous)
    for chunk in overlapping_chunks(previous.table(name).chunks, start, stop):
        if (start is None or chunk.min_key >= start) and (stop is None or chunk.max_key < stop):
            yield chunk
            continue
        rows = (key_range_slice(batch, start, stop) for batch in reader.iter_chunks(name, [chunk]))
        yield from writer.store_rows(name, rows)


def _check_key_order(name: str, chunks: Sequence[ChunkRef]) -> None:
    for before, after in itertools.pairwise(chunks):
        if not before.max_key < after.min_key:
            raise SnapshotError(
                f"partitions of table {name!r} overlap or are out of key order: "
                f"{before.max_key!r} comes before {after.min_key!r}"
            )


def _content_sum(entries: Sequence[TableManifest]) -> str:
    total = sum(int(entry.content_sum, 16) for entry in entries) % _MODULUS
    return format(total, "064x")


def _merge_shared(
    store: ObjectStore, name: str, parts: Sequence[Manifest], writer: SnapshotWriter
) -> None:
    """Write ``name``'s rows of every part to ``writer``, merged by key, duplicates once."""
    streams = [_keyed_rows(SnapshotReader(store, part), name) for part in parts]
    pending: list[dict[str, object]] = []
    last: tuple[str, bytes] | None = None
    for key, fingerprint, row in heapq.merge(*streams, key=lambda entry: entry[0]):
        if last is not None and last[0] == key:
            if last[1] != fingerprint:
                raise SnapshotError(
                    f"partitions hold different rows of table {name!r} under key {key!r}"
                )
            continue
        last = (key, fingerprint)
        pending.append(row)
        if len(pending) >= _MERGE_BATCH_ROWS:
            writer.write(name, pa.RecordBatch.from_pylist(pending, schema=schema_for(name)))
            pending.clear()
    if pending:
        writer.write(name, pa.RecordBatch.from_pylist(pending, schema=schema_for(name)))


def _keyed_rows(
    reader: SnapshotReader, name: str
) -> Iterator[tuple[str, bytes, dict[str, object]]]:
    for batch in reader.iter_batches(name):
        for row in batch.to_pylist():
            yield str(row["key"]), _fingerprint_bytes(row["fingerprint"]), row


def _fingerprint_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
