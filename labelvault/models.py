"""Frozen records shared across the library."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from labelvault.storage.keys import join_key, safe_segment

__all__ = ["FrozenModel", "ProjectRef"]


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
