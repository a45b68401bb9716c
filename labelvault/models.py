"""Frozen records shared across the library."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from labelvault.storage.keys import join_key, safe_segment

__all__ = [
    "CommitResult",
    "FrozenModel",
    "ProjectRef",
    "Reservation",
    "UtcDatetime",
    "VersionInfo",
    "as_utc",
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
