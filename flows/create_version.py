"""Flow: capture a project into a new version (or return the latest when nothing changed)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.artifacts import publish_version_summary
from tasks.blocks import PlatformConnectionBlock, StoreBlock
from tasks.capture import capture
from tasks.common import platform_tag
from tasks.concurrency import project_slot


@flow(name="create_version")
def create_version(
    project_id: str,
    connection: str = "supervisely",
    storage: str = "default",
    title: str = "",
    description: str = "",
    tags: list[str] | None = None,
    quiet_seconds: float = 0.0,
    max_wait_seconds: float = 600.0,
) -> dict[str, Any]:
    """Capture ``project_id`` from the platform connection block ``connection`` into the store
    block ``storage``. With ``quiet_seconds``, first wait until the project stopped changing."""
    if not project_id.strip():
        raise ValueError("project_id is empty: name the project to capture")
    logger = get_run_logger()
    platform = PlatformConnectionBlock.load(connection).connection()
    store = StoreBlock.load(storage).settings()
    with project_slot(platform.platform, project_id):
        summary = capture.with_options(tags={platform_tag(platform.platform)})(
            platform,
            store,
            project_id,
            title=title,
            description=description,
            tags=tags or [],
            quiet_seconds=quiet_seconds,
            max_wait_seconds=max_wait_seconds,
        )
    logger.info("%s: %s", summary["project"], summary["reason"])
    publish_version_summary(summary, store)
    return summary
