"""Verify a project's versions: records, manifests and (deep) every chunk's bytes.

:func:`verify_project` reads everything a version needs and reports each damaged object with
what is wrong with it, instead of stopping at the first problem:

- the version record parses, sits under its own number, and agrees with its manifest (see
  :mod:`labelvault.catalog.integrity`), and its editable metadata parses;
- the manifest exists, matches the sha256 in its key (and the record's), and verifies;
- with ``deep``, every chunk exists and has the size and sha256 the manifest gives (a chunk
  shared by several versions is read once, and its damage names all of them);
- the project's lease, if any, parses and is not absurd.

Nothing is written or repaired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, Final

from pydantic import Field

from labelvault.catalog import Catalog, version_key
from labelvault.catalog.integrity import check_version
from labelvault.catalog.lease import HolderState, describe_holder, holder_state, lease_problem
from labelvault.catalog.reading import DAMAGE
from labelvault.catalog.records import (
    VersionMeta,
    VersionRecord,
    lease_key,
    meta_key,
    parse_record,
)
from labelvault.errors import ObjectNotFound, UnsupportedRecordVersion, VersionNotFound
from labelvault.models import FrozenModel, ProjectRef
from labelvault.snapshot.manifest import ChunkRef, Manifest
from labelvault.storage.base import ObjectStore

__all__ = ["Damage", "VerifyReport", "verify_project"]

_HASH_BLOCK: Final = 1024 * 1024


class Damage(FrozenModel):
    """One damaged object: which, what kind, what is wrong, and the versions it breaks."""

    key: str
    kind: str = Field(description="record, metadata, manifest, chunk or lease")
    problem: str
    versions: tuple[int, ...] = ()


class VerifyReport(FrozenModel):
    """What :func:`verify_project` checked and every damaged object it found."""

    project: ProjectRef
    deep: bool
    versions_checked: tuple[int, ...]
    damage: tuple[Damage, ...]
    chunks_checked: int = 0
    bytes_checked: int = 0
    lease: str | None = Field(default=None, description="who holds the project's lease, if any")

    @property
    def ok(self) -> bool:
        """True when nothing is damaged."""
        return not self.damage

    @property
    def damaged_versions(self) -> tuple[int, ...]:
        """The versions that cannot be read back whole, ascending."""
        return tuple(sorted({number for item in self.damage for number in item.versions}))

    def summary(self) -> dict[str, Any]:
        """Plain, JSON-able values for logs, artifacts and the command line."""
        return {
            "project": str(self.project),
            "deep": self.deep,
            "ok": self.ok,
            "versions_checked": list(self.versions_checked),
            "damaged_versions": list(self.damaged_versions),
            "chunks_checked": self.chunks_checked,
            "bytes_checked": self.bytes_checked,
            "lease": self.lease,
            "damage": [item.model_dump(mode="json") for item in self.damage],
        }


def verify_project(
    source: Catalog | ObjectStore,
    project: ProjectRef,
    version: int | str | None = None,
    *,
    deep: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check ``project``'s versions (or only ``version``, a number or id) on a store.

    ``source`` is the catalog, or the store (then a catalog is made on it). ``progress`` is
    called with (versions done, versions to check) after each version.

    Raises:
        VersionNotFound: ``version`` names no stored version record.
    """
    catalog = source if isinstance(source, Catalog) else Catalog(source)
    store = catalog.store
    numbers = _selected(catalog, project, version)
    damage: list[Damage] = []
    chunks: dict[str, tuple[ChunkRef, list[int]]] = {}
    for done, number in enumerate(numbers, start=1):
        manifest = _check_version(catalog, project, number, damage)
        if manifest is not None and deep:
            for table in manifest.tables.values():
                for chunk in table.all_chunks:
                    chunks.setdefault(chunk.key, (chunk, []))[1].append(number)
        if progress is not None:
            progress(done, len(numbers))
    checked = 0
    for chunk, versions in chunks.values():
        problem = _chunk_problem(store, chunk)
        if problem is None:
            checked += chunk.bytes
        else:
            damage.append(Damage(key=chunk.key, kind="chunk", problem=problem, versions=versions))
    return VerifyReport(
        project=project,
        deep=deep,
        versions_checked=tuple(numbers),
        damage=(*damage, *_lease_damage(catalog, project)),
        chunks_checked=len(chunks),
        bytes_checked=checked,
        lease=_lease_line(catalog, project),
    )


def _selected(catalog: Catalog, project: ProjectRef, version: int | str | None) -> list[int]:
    numbers = catalog.numbers(project)
    if version is None:
        return numbers
    if isinstance(version, int) or version.isdigit():
        if int(version) in numbers:
            return [int(version)]
    else:
        for number in numbers:
            try:
                record = catalog.record(project, number)
            except DAMAGE:
                continue
            if record is not None and record.id == version:
                return [number]
    raise VersionNotFound(f"project {project} has no version {version!r}", project=str(project))


def _check_version(
    catalog: Catalog, project: ProjectRef, number: int, damage: list[Damage]
) -> Manifest | None:
    """Check one version's record, metadata and manifest; its manifest when it is readable."""
    key = version_key(project, number)
    try:
        record: VersionRecord | None = catalog.record(project, number)
    except DAMAGE as exc:
        damage.append(Damage(key=key, kind="record", problem=exc.message, versions=(number,)))
        return None
    if record is None:  # deleted while we looked
        return None
    meta = meta_key(project, number)
    try:
        parse_record(
            VersionMeta, catalog.store.get(meta).data, key=meta, project=project, version=number
        )
    except ObjectNotFound:
        pass
    except DAMAGE as exc:
        damage.append(Damage(key=meta, kind="metadata", problem=exc.message, versions=(number,)))
    try:
        return check_version(catalog.store, record)
    except DAMAGE as exc:
        culprit = getattr(exc, "key", None) or key
        kind = "manifest" if culprit == record.manifest_key else "record"
        damage.append(Damage(key=culprit, kind=kind, problem=exc.message, versions=(number,)))
        return None


def _chunk_problem(store: ObjectStore, chunk: ChunkRef) -> str | None:
    """What is wrong with a stored chunk (streamed, never held whole), or ``None``."""
    digest = hashlib.sha256()
    size = 0
    try:
        with store.open_read(chunk.key) as stream:
            for block in _blocks(stream.read):
                digest.update(block)
                size += len(block)
    except ObjectNotFound:
        return "missing"
    if size != chunk.bytes:
        return f"{size} bytes, the manifest says {chunk.bytes}"
    if digest.hexdigest() != chunk.sha256:
        return f"sha256 {digest.hexdigest()}, the manifest says {chunk.sha256}"
    return None


def _blocks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    while block := read(_HASH_BLOCK):
        yield block


def _lease_damage(catalog: Catalog, project: ProjectRef) -> list[Damage]:
    try:
        current = catalog.lease(project)
    except UnsupportedRecordVersion:
        return []  # written by a newer labelvault: not damage
    if current is None:
        return []
    if current.record is None:
        problem = f"unreadable ({current.problem}); the next reservation takes it over"
        return [Damage(key=lease_key(project), kind="lease", problem=problem)]
    absurd = lease_problem(current.record, catalog.now(), catalog.lease_seconds)
    if absurd is not None:
        problem = f"absurd: {absurd}; the next reservation takes it over"
        return [Damage(key=lease_key(project), kind="lease", problem=problem)]
    return []


def _lease_line(catalog: Catalog, project: ProjectRef) -> str | None:
    try:
        current = catalog.lease(project)
    except UnsupportedRecordVersion as exc:
        return exc.message
    if current is None:
        return None
    record = current.record
    if record is None:
        return "an unreadable lease"
    state, _ = holder_state(record)
    line = (
        f"reserved by {describe_holder(record)} for version {record.version_number} until "
        f"{record.expires_at.isoformat()}"
    )
    if state is HolderState.DEAD:
        line += "; the next reservation takes it over"
    return line
