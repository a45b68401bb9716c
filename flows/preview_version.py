"""Flow: preview a version as a marked, linked project on its platform, and publish its
summary (rows, datasets, classes, largest items, changes) as a markdown artifact."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.artifacts import artifact_key
from tasks.blocks import PlatformConnectionBlock, StoreBlock
from tasks.common import platform_tag
from tasks.concurrency import project_slot
from tasks.preview import preview, summarize


@flow(name="preview_version")
def preview_version(
    project_id: str,
    version: int | None = None,
    connection: str = "supervisely",
    storage: str = "default",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Preview ``version`` (default: the latest) of ``project_id``: the linked preview is
    returned unless ``overwrite`` makes a new one (and deletes the old one)."""
    logger = get_run_logger()
    source = PlatformConnectionBlock.load(connection).connection()
    store = StoreBlock.load(storage).settings()
    with project_slot(source.platform, f"preview-{project_id}"):
        result = preview.with_options(tags={platform_tag(source.platform)})(
            source, store, project_id, version, overwrite=overwrite
        )
    summary = summarize(source, store, project_id, result["version"])
    logger.info(
        "version %s of %s: %s preview project %s",
        result["version"],
        project_id,
        "new" if result["created"] else "existing",
        result["preview_project_id"],
    )
    create_markdown_artifact(
        key=artifact_key("labelvault", source.platform, project_id, "preview"),
        markdown=summary["markdown"],
        description=f"Version {result['version']} of {source.platform} project {project_id}, "
        f"previewed as project {result['preview_project_id']}",
    )
    return result
