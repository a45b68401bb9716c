"""Checking a version record against the manifest it points at.

A record is trusted only as far as its manifest agrees with it. The manifest is
content-addressed (its key is the sha256 of its bytes) and names the version it was written
for, so a record that was edited to point at another version's manifest, or whose content hash
was changed, is caught by reading that manifest:

- the record's ``manifest_sha256`` (when it has one) must equal the sha256 in the manifest's key
  and the sha256 of the bytes stored there;
- the manifest must verify on its own (see :func:`~labelvault.snapshot.manifest.parse_manifest`);
- it must belong to the record's project, and (when it names one) to the record's version;
- its content hash must be the record's.

Records and manifests written before these fields existed are checked for what they carry.
"""

from __future__ import annotations

import hashlib
import re

from labelvault.catalog.records import VersionRecord, version_key
from labelvault.errors import IntegrityError, ObjectNotFound
from labelvault.snapshot.manifest import Manifest, parse_manifest
from labelvault.storage.base import ObjectStore

__all__ = ["check_version", "content_addressed", "record_problem"]

_ADDRESSED = re.compile(r"/manifests/([0-9a-f]{64})\.json$")


def content_addressed(record: VersionRecord) -> bool:
    """True when the record points at a manifest stored under its own sha256 (every manifest
    labelvault writes), or names the manifest's sha256 itself: then it can be checked."""
    return record.manifest_sha256 is not None or _ADDRESSED.search(record.manifest_key) is not None


def _damaged(record: VersionRecord, problem: str, culprit: str | None = None) -> IntegrityError:
    """The error for a damaged version; its ``key`` is the object at fault (the record unless
    ``culprit`` names another)."""
    key = version_key(record.project, record.number)
    return IntegrityError(
        f"version {record.number} of project {record.project} is damaged: {problem} (record {key})",
        key=culprit or key,
    )


def record_problem(record: VersionRecord) -> str | None:
    """What is wrong with a record that shows without reading its manifest, or ``None``."""
    folder = f"{record.project.prefix}/manifests/"
    if not record.manifest_key.startswith(folder):
        return f"it points at manifest {record.manifest_key}, outside {folder}"
    named = _ADDRESSED.search(record.manifest_key)
    digest = record.manifest_sha256
    if digest is not None and named is not None and named.group(1) != digest:
        return (
            f"it points at manifest {record.manifest_key}, but names a manifest with sha256 "
            f"{digest}"
        )
    return None


def check_version(store: ObjectStore, record: VersionRecord) -> Manifest:
    """The record's manifest, verified against the record.

    Raises:
        IntegrityError: naming the record and the manifest, when they disagree, or the
            manifest is missing or corrupt.
    """
    problem = record_problem(record)
    if problem is not None:
        raise _damaged(record, problem)
    key = record.manifest_key
    try:
        data = store.get(key).data
    except ObjectNotFound:
        raise _damaged(record, f"its manifest {key} is missing", key) from None
    actual = hashlib.sha256(data).hexdigest()
    named = _ADDRESSED.search(key)
    if named is not None and named.group(1) != actual:
        problem = f"manifest {key} is corrupt: its sha256 is {actual}, not the one in its name"
        raise _damaged(record, problem, key)
    if record.manifest_sha256 is not None and actual != record.manifest_sha256:
        raise _damaged(
            record, f"manifest {key} has sha256 {actual}, the record says {record.manifest_sha256}"
        )
    try:
        manifest = parse_manifest(data, key=key)
    except IntegrityError as exc:  # a newer format (UnsupportedFormat) is not damage: it passes
        raise _damaged(record, exc.message, key) from None
    if manifest.source != record.project:
        raise _damaged(record, f"manifest {key} belongs to project {manifest.source}")
    if manifest.version_number is not None and manifest.version_number != record.number:
        raise _damaged(
            record,
            f"it points at manifest {key}, which was written for version {manifest.version_number}",
        )
    if manifest.content_hash != record.content_hash:
        raise _damaged(
            record,
            f"the record says content hash {record.content_hash}, its manifest {key} has "
            f"{manifest.content_hash}",
        )
    return manifest
