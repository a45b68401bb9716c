"""One version from the snapshots of its partitions.

A partitioned capture writes each partition of a project with its own
:class:`~labelvault.snapshot.writer.SnapshotWriter`. The parts
come in key order: a table's rows in one part all sort after its rows in the parts before.
:func:`merge_parts` then makes the version's manifest without rewriting them: a table's chunks
are the parts' chunks one after the other, its rows and content sum their sums, so its content
hash is the one a serial capture of the same rows gives.

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
from labelvault.snapshot.manifest import (
    Manifest,
    SnapshotSource,
    TableManifest,
    content_hash,
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
) -> Manifest:
    """The manifest of the version made of ``parts`` (in key order), not yet stored.

    Raises :class:`SnapshotError` when a table is a delta in one part and has rows in another,
    when two parts' rows of a table are out of key order, or when two parts hold different
    rows under one key of a shared table.
    """
    tables: dict[str, TableManifest] = {}
    writer = SnapshotWriter(store, prefix, source=source)
    with writer:
        for name in TABLES:
            if name in shared:
                _merge_shared(store, name, parts, writer)
                continue
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
    for before, after in itertools.pairwise(chunks):
        if not before.max_key < after.min_key:
            raise SnapshotError(
                f"partitions of table {name!r} overlap or are out of key order: "
                f"{before.max_key!r} comes before {after.min_key!r}"
            )
    total = sum(int(entry.content_sum, 16) for entry in entries) % _MODULUS
    return TableManifest(
        rows=sum(entry.rows for entry in entries),
        bytes=sum(entry.bytes for entry in entries),
        content_sum=format(total, "064x"),
        chunks=tuple(chunks),
    )


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
