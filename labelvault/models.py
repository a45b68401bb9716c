"""Frozen records shared across the library."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from labelvault.errors import ConfigurationError
from labelvault.keys import join_key, safe_segment

__all__ = [
    "RESTORE_COUNTS",
    "CommitResult",
    "FrozenModel",
    "ProjectInfo",
    "ProjectRef",
    "Reservation",
    "RestoreIssue",
    "RestoreOptions",
    "RestoreReport",
    "UtcDatetime",
    "VersionInfo",
    "VersionOrigin",
    "as_utc",
    "instance_from_url",
]


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


#: A datetime stored in UTC (a naive one is taken to be UTC already).
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class FrozenModel(BaseModel):
    """Base of labelvault's immutable records: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ProjectRef(FrozenModel):
    """Which project on which server: the identity a version history belongs to."""

    platform: str = Field(min_length=1)
    instance: str = Field(min_length=1, description="safe encoding of the platform's host")
    project_id: str = Field(min_length=1)

    @property
    def prefix(self) -> str:
        """The project's folder on the object store: ``<platform>/<instance>/<project_id>``."""
        return join_key(
            safe_segment(self.platform), safe_segment(self.instance), safe_segment(self.project_id)
        )

    def __str__(self) -> str:
        return f"{self.platform}:{self.instance}:{self.project_id}"


class VersionInfo(FrozenModel):
    """A committed version of a project, as the catalog reports it.

    Everything but ``title``, ``description`` and ``tags`` is fixed when the version is
    committed; those three may be changed later with ``Catalog.update``, which stamps
    ``metadata_updated_at``.
    """

    project: ProjectRef
    number: int = Field(ge=1, description="1, 2, 3 … per project, never reused")
    id: str = Field(min_length=1, description="a uuid4, unique across projects")
    created_at: UtcDatetime
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    manifest_key: str = Field(min_length=1)
    content_hash: str = Field(min_length=1)
    source_updated_at: UtcDatetime | None = Field(
        default=None, description="the platform's updated_at when the capture started"
    )
    stats: dict[str, int] = Field(default_factory=dict)
    commit_token: str = Field(min_length=1, description="the reservation that committed it")
    metadata_updated_at: UtcDatetime | None = None
    preview_project_id: str | None = Field(
        default=None, description="the project on the platform that previews this version"
    )


class Reservation(FrozenModel):
    """The right to commit the next version of a project, held as a lease until it expires.

    ``version_number`` is the number the version gets when committed (unless the lease was
    overrun and another holder committed first). ``lease_etag`` is the lease object's etag as
    of the reservation's last write (reserve or renew).
    """

    project: ProjectRef
    version_number: int = Field(ge=1)
    commit_token: str = Field(min_length=1)
    holder: str
    acquired_at: UtcDatetime
    expires_at: UtcDatetime
    lease_etag: str
    source_updated_at: UtcDatetime | None = None


class CommitResult(FrozenModel):
    """What a commit did: the version, and whether this commit created it (``False``: the
    content was unchanged and ``version`` is the existing latest version)."""

    version: VersionInfo
    created: bool


def instance_from_url(server_url: str) -> str:
    """The ``instance`` of a server: its host and port, lowercased (``app.example.com:443``).

    Scheme and path are left out, so ``https://h/`` and ``https://h/api`` share a history.
    """
    parts = urlsplit(server_url if "://" in server_url else f"https://{server_url}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigurationError(
            f"server URL {server_url!r} has an invalid port; use a number from 1 to 65535"
        ) from None
    if not host:
        raise ConfigurationError(f"server URL {server_url!r} has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{host.lower()}:{port}"


@dataclass(frozen=True)
class ProjectInfo:
    """A project as the platform describes it."""

    platform: str
    instance: str  # safe encoding of the server's host, see ``instance_from_url``
    project_id: str
    name: str
    kind: str
    updated_at: datetime | None = None
    workspace_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


#: The count keys of every restore report, on every platform: one per table restored.
RESTORE_COUNTS: tuple[str, ...] = ("users", "datasets", "items", "annotations", "tags")


class RestoreOptions(FrozenModel):
    """Where a version is restored and how strictly: what the CLI's flags and the flow's
    parameters say, handed unchanged to the restore engine."""

    workspace_id: str | None = Field(
        default=None,
        description="The workspace of the new project (Supervisely); the source's by default.",
    )
    project_name: str | None = Field(
        default=None,
        description='The new project\'s name; "<name>, from ver. <N>" (made unique) by default.',
    )
    project_description: str | None = Field(
        default=None,
        description="The new project's description; one that names the source by default.",
    )
    skip_missed_entities: bool = Field(
        default=False,
        description="Skip items whose media is gone (hash deleted, link dead) and list them.",
    )
    allow_failures: bool = Field(
        default=False,
        description="Retry a failed batch row by row and list the rows that still fail.",
    )
    batch_size: int = Field(default=200, ge=1, description="Items created per request.")
    datasets: tuple[str, ...] | None = Field(
        default=None,
        description="Restore only these datasets (names or paths), each with its subtree.",
    )
    classes: tuple[str, ...] | None = Field(
        default=None, description="Restore only annotations of these classes, with their tags."
    )
    allow_duplicate_name: bool = Field(
        default=False,
        description=(
            "Restore even when the target already has a project of that name (Supervisely "
            "then adds a _001 suffix; Label Studio makes a second project of the same title)."
        ),
    )

    def identity(self) -> dict[str, Any]:
        """What makes two restores the same restore (for resuming a journal)."""
        return {
            "workspace_id": self.workspace_id,
            "project_name": self.project_name,
            "datasets": sorted(self.datasets) if self.datasets is not None else None,
            "classes": sorted(self.classes) if self.classes is not None else None,
        }


@dataclass(frozen=True)
class VersionOrigin:
    """Which version of which project is being restored (for names and descriptions)."""

    source_project_id: str
    version_number: int
    version_id: str | None = None


@dataclass(frozen=True)
class RestoreIssue:
    """One row that was not restored, and why."""

    table: str
    key: str
    reason: str


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(RESTORE_COUNTS, 0)


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did: the new project, rows created per table (:data:`RESTORE_COUNTS`),
    and every row it skipped or failed, on every platform alike."""

    project: ProjectInfo
    journal: str
    created: dict[str, int] = field(default_factory=_zero_counts)
    skipped: tuple[RestoreIssue, ...] = ()
    failures: tuple[RestoreIssue, ...] = ()
    resumed: bool = False
    #: Rows left out by ``RestoreOptions.datasets`` / ``classes``, per table.
    filtered_out: dict[str, int] = field(default_factory=_zero_counts)
    #: What the platform could not bring back as it was (e.g. a draft's author).
    warnings: tuple[str, ...] = ()

    def joined(self, *parts: RestoreReport) -> RestoreReport:
        """This report followed by the reports of ``parts`` of the same restore (its
        partitions): counts added up, issues and warnings in order."""
        created, filtered_out = dict(self.created), dict(self.filtered_out)
        for part in parts:
            for table, count in part.created.items():
                created[table] = created.get(table, 0) + count
            for table, count in part.filtered_out.items():
                filtered_out[table] = filtered_out.get(table, 0) + count
        return RestoreReport(
            project=self.project,
            journal=self.journal,
            created=created,
            skipped=self.skipped + tuple(issue for part in parts for issue in part.skipped),
            failures=self.failures + tuple(issue for part in parts for issue in part.failures),
            resumed=self.resumed,
            filtered_out=filtered_out,
            warnings=tuple(
                dict.fromkeys([*self.warnings, *(w for part in parts for w in part.warnings)])
            ),
        )

    def summary(self) -> dict[str, Any]:
        """Plain values for logs, artifacts, flow results and ``--json``."""
        return {
            "project_id": self.project.project_id,
            "project_name": self.project.name,
            "workspace_id": self.project.workspace_id,
            "created": dict(self.created),
            "skipped": len(self.skipped),
            "failures": len(self.failures),
            "filtered_out": dict(self.filtered_out),
            "resumed": self.resumed,
            "journal": self.journal,
            "warnings": list(self.warnings),
        }
