"""Flow: capture a project into a new version (or return the latest when nothing changed)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.artifacts import publish_version_summary
from tasks.blocks import PlatformConnectionBlock, StoreBlock
from tasks.capture import capture, wait_quiet
from tasks.common import (
    FLOW_TIMEOUT_SECONDS,
    ProgressArtifact,
    library_logs_in_run,
    platform_tag,
    project_key,
    run_tags,
    tag_this_run,
)
from tasks.concurrency import DEFAULT_WAIT_SECONDS, project_slot


@flow(
    name="create_version",
    flow_run_name="create {connection}/{project_id}",
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=True,
)
def create_version(
    project_id: int | str,
    connection: str = "supervisely",
    storage: str = "default",
    title: str = "",
    description: str = "",
    tags: list[str] | None = None,
    quiet_seconds: float = 0.0,
    max_wait_seconds: float = 600.0,
    project_wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> dict[str, Any]:
    """Capture a project into a new version; nothing new when it did not change.

    Args:
        project_id: The project's id on the platform, e.g. 5007 (a number or a string).
        connection: Name of a saved *Labelvault Platform Connection* block (Blocks page):
            which server and token to read the project with. `make deploy` saves one per
            platform, named `supervisely` and `labelstudio`.
        storage: Name of a saved *Labelvault Store* block: where versions are kept.
            `make deploy` saves `default` from LABELVAULT_STORE_URL.
        title: A short title for the new version (shown by `labelvault versions`).
        description: A longer note for the new version.
        tags: Tags for the new version, e.g. ["reviewed"]; tagged versions survive
            retention. Empty (None): no tags.
        quiet_seconds: Wait until the project has not changed for this many seconds before
            capturing (0: capture at once). The wait holds no concurrency slot.
        max_wait_seconds: Stop waiting for a quiet project after this many seconds and
            capture anyway.
        project_wait_seconds: How long to wait while another run works on the same project
            before failing (the run says in its log and state that it waits).
    """
    with library_logs_in_run():
        project = project_key(project_id)
        logger = get_run_logger()
        platform = PlatformConnectionBlock.load(connection).connection()
        store = StoreBlock.load(storage).settings()
        tag_this_run(*run_tags(platform.platform, project))
        if quiet_seconds > 0:
            wait_quiet.with_options(timeout_seconds=max_wait_seconds + 300)(
                platform, project, quiet_seconds=quiet_seconds, max_wait_seconds=max_wait_seconds
            )
        progress = ProgressArtifact.create(f"Capturing {platform.platform} project {project}")
        with project_slot(platform.platform, project, timeout_seconds=project_wait_seconds):
            summary = capture.with_options(tags={platform_tag(platform.platform)})(
                platform,
                store,
                project,
                title=title,
                description=description,
                tags=tags or [],
                progress_id=progress,
            )
        logger.info("%s: %s", summary["project"], summary["reason"])
        publish_version_summary(summary, store)
        return summary
