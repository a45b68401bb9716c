"""The manifest of a version: which chunks hold each table, and a content hash of the project.

A manifest names the version it was written for (``source``, the project, and
``version_number``), so a catalog record pointing at another version's manifest is caught.

A manifest is stored as canonical JSON under ``<prefix>/manifests/<sha256>.json``, where the
hash is taken over the stored bytes, so the key itself verifies the manifest and writing the
same manifest twice is a no-op. It lists, per table, the ordered chunks (key, rows, bytes,
sha256, first and last row key) and the table's *content sum*: the count of its rows and the
sum of their fingerprints modulo ``2**256``, an order-independent multiset hash that ignores
the ids a platform assigns. :attr:`Manifest.content_hash` is the sha256 over those per-table
values, so two captures of the same content, on any project, have the same content hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from pydantic import Field, ValidationError

from labelvault.errors import (
    AlreadyExists,
    IntegrityError,
    ObjectNotFound,
    SnapshotError,
)
from labelvault.keys import validate_key
from labelvault.models import FrozenModel, ProjectRef, UtcDatetime
from labelvault.snapshot.compat import check_readable
from labelvault.snapshot.schema import FORMAT_VERSION, OPTIONAL_TABLES, TABLES, canonical_json
from labelvault.storage.base import ObjectStore

__all__ = [
    "ChunkRef",
    "Manifest",
    "SnapshotSource",
    "TableManifest",
    "content_hash",
    "load_manifest",
    "manifest_key",
    "overlapping_chunks",
    "write_manifest",
]

_MODULUS: Final = 2**256
_DELTA_DEFAULTS: Final[dict[str, object]] = {
    "delta": [],
    "displaced": [],
    "chain": 0,
    "removed": None,
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MANIFEST_NAME = re.compile(r"(?:^|/)manifests/([0-9a-f]{64})\.json$")


class SnapshotSource(FrozenModel):
    """Where a snapshot comes from and when; what :class:`SnapshotWriter` is given."""

    platform: str = Field(min_length=1)
    instance: str = Field(min_length=1)
    project_id: str = Field(min_length=1)
    captured_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    source_updated_at: UtcDatetime | None = None

    @property
    def project(self) -> ProjectRef:
        """The project identity, without the timestamps."""
        return ProjectRef(
            platform=self.platform, instance=self.instance, project_id=self.project_id
        )


class ChunkRef(FrozenModel):
    """One Parquet chunk of a table: where it is and what it must look like."""

    key: str = Field(min_length=1)
    rows: int = Field(ge=1)
    bytes: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    min_key: str
    max_key: str


class TableManifest(FrozenModel):
    """A table's chunks in key order, with its row count and content sum.

    From format 2 a table may be a *base* (``chunks``, usually shared with earlier versions)
    plus a *delta*: ``delta`` holds the rows added or changed since the base, ``displaced``
    the keys (with fingerprint and class) of the base rows removed or replaced. Readers see
    ``base - displaced + delta``, merged in key order. ``chain`` counts the versions the delta
    has been carried over since the base was last written whole. ``removed`` counts the
    displaced rows that no delta row replaces (rows deleted since the base): when it is 0, a
    read needs only the delta, whose rows replace the base rows with their keys. Manifests
    before format 4 do not record it (``None``), and their reads take the displaced keys.
    """

    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    content_sum: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sum of the rows' fingerprints modulo 2**256, 64 hex digits",
    )
    chunks: tuple[ChunkRef, ...] = ()
    delta: tuple[ChunkRef, ...] = ()
    displaced: tuple[ChunkRef, ...] = ()
    chain: int = Field(default=0, ge=0)
    removed: int | None = Field(default=None, ge=0)

    @property
    def has_delta(self) -> bool:
        """True when the table is a base plus a delta (reads merge them)."""
        return bool(self.delta or self.displaced)

    @property
    def all_chunks(self) -> tuple[ChunkRef, ...]:
        """Every chunk the table needs: base, delta and displaced keys."""
        return (*self.chunks, *self.delta, *self.displaced)


def overlapping_chunks(
    chunks: Sequence[ChunkRef], start: str | None, stop: str | None
) -> tuple[ChunkRef, ...]:
    """The chunks whose key span meets ``[start, stop)`` (``None``: unbounded)."""
    return tuple(
        chunk
        for chunk in chunks
        if (start is None or chunk.max_key >= start) and (stop is None or chunk.min_key < stop)
    )


def content_hash(tables: Mapping[str, TableManifest]) -> str:
    """The project's content hash: sha256 over the per-table row counts and content sums."""
    values = {
        name: {"rows": t.rows, "sum": t.content_sum}
        for name, t in sorted(tables.items())
        if t.rows or name not in OPTIONAL_TABLES
    }
    return hashlib.sha256(canonical_json(values).encode("utf-8")).hexdigest()


def empty_table_manifest() -> TableManifest:
    """The manifest entry of a table with no rows."""
    return TableManifest(rows=0, bytes=0, content_sum="0" * 64)


class Manifest(FrozenModel):
    """Everything needed to read, verify, query and diff one version of a project."""

    format_version: int = FORMAT_VERSION
    prefix: str = Field(min_length=1, description="the project's folder on the object store")
    source: ProjectRef
    captured_at: UtcDatetime
    source_updated_at: UtcDatetime | None = None
    tables: dict[str, TableManifest]
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes_written: int = Field(default=0, ge=0, description="chunk bytes this capture stored")
    bytes_reused: int = Field(default=0, ge=0, description="chunk bytes already in the store")
    chunks_written: int = Field(default=0, ge=0)
    chunks_reused: int = Field(default=0, ge=0)
    version_number: int | None = Field(
        default=None,
        ge=1,
        description="the version this manifest was written for (absent in older manifests)",
    )

    def table(self, name: str) -> TableManifest:
        """The entry of table ``name`` (an empty one for a table this version lacks)."""
        found = self.tables.get(name)
        if found is not None:
            return found
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; tables are {', '.join(TABLES)}")
        return empty_table_manifest()

    @property
    def row_counts(self) -> dict[str, int]:
        """Rows per table."""
        return {name: table.rows for name, table in self.tables.items()}

    @property
    def data_bytes(self) -> int:
        """Total size of the chunk files this version references."""
        return sum(table.bytes for table in self.tables.values())

    def to_json(self) -> bytes:
        """Canonical JSON bytes: the form that is stored and hashed.

        A manifest without ``version_number`` leaves the field out, so manifests written before
        it existed keep their bytes (and their key).
        """
        exclude = {"version_number"} if self.version_number is None else set()
        fields = self.model_dump(mode="json", exclude=exclude)
        for table in fields["tables"].values():  # tables without a delta keep their format-1 form
            for name, empty in _DELTA_DEFAULTS.items():
                if name in table and table[name] == empty:
                    del table[name]
        return canonical_json(fields).encode("utf-8")

    @property
    def key(self) -> str:
        """Where this manifest is stored: ``<prefix>/manifests/<sha256 of to_json()>.json``."""
        return manifest_key(self.prefix, self.to_json())

    def chunk_keys(self) -> set[str]:
        """Keys of every chunk of every table."""
        return {chunk.key for table in self.tables.values() for chunk in table.all_chunks}

    def referenced_keys(self) -> set[str]:
        """Every object this version needs: its chunks and the manifest itself."""
        return {*self.chunk_keys(), self.key}


def manifest_key(prefix: str, data: bytes) -> str:
    """The content-addressed key of manifest bytes ``data`` under ``prefix``."""
    return validate_key(f"{prefix.rstrip('/')}/manifests/{hashlib.sha256(data).hexdigest()}.json")


def write_manifest(store: ObjectStore, prefix: str, manifest: Manifest) -> str:
    """Store ``manifest`` write-once under ``<prefix>/manifests/`` and return its key.

    Writing the same manifest again returns the same key. Raises :class:`SnapshotError` when
    ``prefix`` is not the manifest's prefix, and :class:`IntegrityError` when different bytes
    already sit under the key (a corrupt stored copy).
    """
    if prefix.rstrip("/") != manifest.prefix.rstrip("/"):
        raise SnapshotError(
            f"manifest belongs under {manifest.prefix!r}, not {prefix!r}", key=manifest.key
        )
    data = manifest.to_json()
    key = manifest_key(manifest.prefix, data)
    try:
        store.put_if_absent(key, data)
    except AlreadyExists:
        if store.get(key).data != data:
            raise IntegrityError(
                f"manifest {key} is already stored with different bytes; the stored copy is "
                "corrupt",
                key=key,
            ) from None
    return key


def load_manifest(store: ObjectStore, key: str) -> Manifest:
    """Read and verify the manifest stored under ``key``.

    Raises :class:`IntegrityError` when it is missing, does not match the hash in its key, is
    not valid JSON or not a manifest, and :class:`UnsupportedFormat` when it was written by a
    newer labelvault (:class:`UnsupportedFormat`).
    """
    try:
        data = store.get(key).data
    except ObjectNotFound:
        raise IntegrityError(f"manifest {key} is missing", key=key) from None
    return parse_manifest(data, key=key)


def parse_manifest(data: bytes, *, key: str) -> Manifest:
    """Parse and verify manifest bytes read from ``key`` (see :func:`load_manifest`)."""
    named = _MANIFEST_NAME.search(key)
    if named is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != named.group(1):
            raise IntegrityError(
                f"manifest {key} is corrupt: its sha256 is {actual}, its name says "
                f"{named.group(1)}",
                key=key,
            )
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(
            f"manifest {key} is corrupt: not valid JSON ({exc})", key=key
        ) from None
    if not isinstance(raw, dict):
        raise IntegrityError(f"manifest {key} is corrupt: not a JSON object", key=key)
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IntegrityError(
            f"manifest {key} is corrupt: format_version is {version!r}, not an integer", key=key
        )
    check_readable(version, key=key)
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise IntegrityError(
            f"manifest {key} is not a valid manifest: {problems}", key=key
        ) from None
    expected = content_hash(manifest.tables)
    if manifest.content_hash != expected:
        raise IntegrityError(
            f"manifest {key} is corrupt: content_hash {manifest.content_hash} does not match "
            f"its tables ({expected})",
            key=key,
        )
    return manifest
