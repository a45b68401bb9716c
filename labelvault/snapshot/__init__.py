"""The version format: Arrow schemas, streaming writer, verified reader, manifests.

A version is a manifest plus content-addressed, content-defined Parquet chunks:

- :class:`SnapshotWriter` streams record batches into chunks under ``<prefix>/chunks/`` and
  returns a :class:`Manifest`;
- :func:`write_manifest` stores it write-once under ``<prefix>/manifests/``,
  :func:`load_manifest` reads and verifies it;
- :class:`SnapshotReader` streams a table back, verifying each chunk's size and sha256.
"""

from __future__ import annotations

from labelvault.snapshot.chunking import ChunkPolicy
from labelvault.snapshot.manifest import (
    ChunkRef,
    Manifest,
    SnapshotSource,
    TableManifest,
    load_manifest,
    write_manifest,
)
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import FORMAT_VERSION, TABLES, schema_for
from labelvault.snapshot.writer import SnapshotWriter

__all__ = [
    "FORMAT_VERSION",
    "TABLES",
    "ChunkPolicy",
    "ChunkRef",
    "Manifest",
    "SnapshotReader",
    "SnapshotSource",
    "SnapshotWriter",
    "TableManifest",
    "load_manifest",
    "schema_for",
    "write_manifest",
]
