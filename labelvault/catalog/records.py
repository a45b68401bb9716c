"""The catalog's stored records, their keys, and how they are read back.

Every record is JSON with a ``schema_version``. A record written by a newer labelvault (a higher
``schema_version``) is refused with :class:`~labelvault.errors.UnsupportedRecordVersion` rather
than misread; one that does not parse is :class:`~labelvault.errors.CorruptRecord`, naming its
key. Unknown fields are refused too: a newer writer must bump ``schema_version`` to add any.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator

from labelvault.errors import CorruptRecord, UnsupportedRecordVersion
from labelvault.models import FrozenModel, ProjectRef, VersionInfo, as_utc
from labelvault.storage.keys import join_key

__all__ = [
    "PREVIEW_SCHEMA_VERSION",
    "RECORD_SCHEMA_VERSION",
    "LeaseRecord",
    "PreviewLink",
    "VersionMeta",
    "VersionRecord",
    "dump_record",
    "lease_key",
    "meta_key",
    "meta_prefix",
    "number_from_key",
    "parse_record",
    "version_key",
    "versions_prefix",
]

#: The newest schema version this build reads. Version records and leases are written as
#: version 2 (version records name their manifest's sha256, leases their holder's process);
#: version metadata as version 2, or 3 when it links a preview (so a labelvault that does not
#: know previews refuses it as newer instead of calling it corrupt). Older records stay readable.
RECORD_SCHEMA_VERSION = 3
#: The schema version of metadata that links a preview.
PREVIEW_SCHEMA_VERSION = 3

_NUMBERED = re.compile(r"/(\d{8,})\.json$")
_Record = TypeVar("_Record", bound="_StoredRecord")


def versions_prefix(project: ProjectRef) -> str:
    """The listing prefix of a project's version records."""
    return f"{project.prefix}/versions/"


def meta_prefix(project: ProjectRef) -> str:
    """The listing prefix of a project's mutable version metadata."""
    return f"{project.prefix}/meta/"


def version_key(project: ProjectRef, number: int) -> str:
    """``<prefix>/versions/<number:08d>.json``: the write-once record of version ``number``."""
    return join_key(project.prefix, "versions", f"{number:08d}.json")


def meta_key(project: ProjectRef, number: int) -> str:
    """``<prefix>/meta/<number:08d>.json``: the editable title, description and tags."""
    return join_key(project.prefix, "meta", f"{number:08d}.json")


def lease_key(project: ProjectRef) -> str:
    """``<prefix>/lease.json``: the project's reservation lease."""
    return join_key(project.prefix, "lease.json")


def number_from_key(key: str) -> int | None:
    """The version number in a ``versions/`` or ``meta/`` key; ``None`` for other names."""
    found = _NUMBERED.search(key)
    return int(found.group(1)) if found else None


class _StoredRecord(FrozenModel):
    schema_version: int = Field(default=RECORD_SCHEMA_VERSION, ge=1)

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        return as_utc(value) if isinstance(value, datetime) else value


class VersionRecord(_StoredRecord):
    """``versions/<n>.json``: written once, with ``put_if_absent``, at commit; never changed.

    ``manifest_sha256`` is the sha256 of the manifest's stored bytes (absent in records written
    before it existed); reads check the manifest against it and against ``content_hash``.
    """

    schema_version: int = Field(default=2, ge=1)
    project: ProjectRef
    number: int = Field(ge=1)
    id: str = Field(min_length=1)
    created_at: datetime
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    manifest_key: str = Field(min_length=1)
    content_hash: str = Field(min_length=1)
    source_updated_at: datetime | None = None
    stats: dict[str, int] = Field(default_factory=dict)
    commit_token: str = Field(min_length=1)
    manifest_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    def info(self, meta: VersionMeta | None = None) -> VersionInfo:
        """The public view, with ``meta`` (when it belongs to this version) merged in."""
        fields = self.model_dump(exclude={"schema_version", "manifest_sha256"})
        if meta is not None and meta.version_id == self.id:
            fields.update(
                title=meta.title,
                description=meta.description,
                tags=meta.tags,
                metadata_updated_at=meta.updated_at,
                preview_project_id=meta.preview.project_id if meta.preview else None,
            )
        return VersionInfo.model_validate(fields)


class PreviewLink(FrozenModel):
    """The project on the platform that previews a version (see :mod:`labelvault.preview`).

    ``generation`` counts the previews made of the version (1, 2 …): each one is restored
    under its own journal, so a replaced preview is never confused with its successor.
    """

    platform: str = Field(min_length=1)
    instance: str = Field(min_length=1, description="the server the preview project lives on")
    project_id: str = Field(min_length=1)
    created_at: datetime
    generation: int = Field(default=1, ge=1)
    workspace_id: str | None = None

    @field_validator("created_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return as_utc(value)


class VersionMeta(_StoredRecord):
    """``meta/<n>.json``: a version's current title, description and tags, and its preview.

    Replaced with compare-and-swap by ``Catalog.update`` and ``Catalog.link_preview``; it
    applies only to the record whose id it names, so a leftover from a deleted version can
    never leak into another one.
    """

    schema_version: int = Field(default=2, ge=1)
    version_id: str = Field(min_length=1)
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    updated_at: datetime
    preview: PreviewLink | None = None


class LeaseRecord(_StoredRecord):
    """``lease.json``: who holds the project's reservation, and until when.

    ``holder`` is free text for humans. ``host``, ``host_id``, ``pid`` and ``pid_started``
    identify the process that wrote the lease (absent in leases written before they existed),
    so a lease whose process is gone from this host can be taken over at once.
    """

    schema_version: int = Field(default=2, ge=1)
    holder: str
    token: str = Field(min_length=1)
    version_number: int = Field(ge=1)
    acquired_at: datetime
    expires_at: datetime
    host: str | None = None
    host_id: str | None = Field(
        default=None, description="boot id and pid namespace: tells apart hosts of one name"
    )
    pid: int | None = Field(default=None, ge=1)
    pid_started: int | None = Field(
        default=None, description="the process's start time in clock ticks since boot (Linux)"
    )
    lease_seconds: float | None = Field(
        default=None, gt=0, description="how long the writer's leases last from each renewal"
    )


def dump_record(record: _StoredRecord) -> bytes:
    """The stored form of a record: compact JSON, keys in a stable order.

    Metadata without a preview leaves the field out, so older readers still read it.
    """
    if isinstance(record, VersionMeta) and record.preview is None:
        return record.model_dump_json(exclude={"preview"}).encode("utf-8")
    return record.model_dump_json().encode("utf-8")


def parse_record(
    model: type[_Record],
    data: bytes,
    *,
    key: str,
    project: ProjectRef,
    version: int | None = None,
) -> _Record:
    """Parse stored bytes into ``model``; refuse newer schemas and anything malformed."""
    where = f"catalog record {key}"
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRecord(
            f"{where} is corrupt: not valid JSON ({exc})", project=str(project), version=version
        ) from None
    if not isinstance(raw, dict):
        raise CorruptRecord(
            f"{where} is corrupt: expected a JSON object, found {type(raw).__name__}",
            project=str(project),
            version=version,
        )
    schema_version = raw.get("schema_version")
    newer = (
        isinstance(schema_version, int)
        and not isinstance(schema_version, bool)
        and schema_version > RECORD_SCHEMA_VERSION
    )
    if newer:
        raise UnsupportedRecordVersion(
            f"{where} has record schema version {schema_version}, but this labelvault "
            f"reads only up to version {RECORD_SCHEMA_VERSION}; upgrade labelvault to read it",
            project=str(project),
            version=version,
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(record)'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise CorruptRecord(
            f"{where} is corrupt: not a valid {model.__name__} ({problems})",
            project=str(project),
            version=version,
        ) from None
