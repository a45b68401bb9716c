"""Flow: what changed between two versions of a project."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from tasks.blocks import PlatformConnectionBlock, StoreBlock
from tasks.versions import diff


@flow(name="diff_versions")
def diff_versions(
    project_id: str,
    old: int,
    new: int | None = None,
    connection: str = "supervisely",
    storage: str = "default",
) -> dict[str, Any]:
    """Diff version ``old`` against ``new`` (default: the latest); publishes a markdown
    artifact with added / removed / changed rows and a per-class summary."""
    source = PlatformConnectionBlock.load(connection).connection()
    store = StoreBlock.load(storage).settings()
    result = diff(source, store, project_id, old, new)
    create_markdown_artifact(
        markdown=result["markdown"],
        description=f"Diff of {source.platform} project {project_id}",
    )
    return result
