"""Helpers shared by the format tests (and by the query and diff tests)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.base import ObjectStore

__all__ = ["PREFIX", "SOURCE", "split", "write_version"]

PREFIX = "supervisely/app.example/42"
SOURCE = {"platform": "supervisely", "instance": "app.example", "project_id": "42"}


def write_version(
    store: ObjectStore,
    pages: Iterable[tuple[str, pa.RecordBatch]],
    *,
    prefix: str = PREFIX,
    **options: Any,
) -> Manifest:
    """Write ``(table, batch)`` pages as one version and return its manifest."""
    writer = SnapshotWriter(store, prefix, source=SOURCE, **options)
    for table, batch in pages:
        writer.write(table, batch)
    return writer.finish()


def split(table: pa.Table, sizes: Iterable[int]) -> Iterator[pa.RecordBatch]:
    """``table`` cut into batches of the given sizes (cycled), the last one shorter."""
    sizes = list(sizes) or [max(1, table.num_rows)]
    start, index = 0, 0
    combined = table.combine_chunks()
    while start < table.num_rows:
        size = max(1, sizes[index % len(sizes)])
        yield from combined.slice(start, size).to_batches()
        start += size
        index += 1
