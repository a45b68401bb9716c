"""Flow: capture a project into a new version (or return the latest when nothing changed)."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import Field

from tasks.artifacts import publish_version_summary
from tasks.blocks import load_connection, load_store, project_label
from tasks.capture import capture, capture_in_partitions, wait_quiet
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
from tasks.forms import Connection, ProjectId, ProjectWaitSeconds, Store, titled


def _run_name() -> str:
    return f"create {project_label(flow_run.parameters)}"


@flow(
    name="create_version",
    flow_run_name=_run_name,
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=True,
)
def create_version(
    project_id: ProjectId,
    connection: Connection = "supervisely",
    storage: Store = "default",
    title: Annotated[str, titled("Version title")] = "",
    description: Annotated[str, titled("Version description")] = "",
    tags: Annotated[list[str] | None, titled("Version tags")] = None,
    quiet_seconds: Annotated[float, titled("Quiet period (seconds)")] = 0.0,
    max_wait_seconds: Annotated[float, titled("Longest quiet wait (seconds)")] = 600.0,
    project_wait_seconds: ProjectWaitSeconds = DEFAULT_WAIT_SECONDS,
    partitions: Annotated[int, titled("Partitions read at once"), Field(ge=1, le=64)] = 1,
    dask_cluster: Annotated[str, titled("Dask cluster for partitions")] = "",
) -> dict[str, Any]:
    """Capture a project into a new version; nothing new when it did not change.

    Args:
        project_id: The project's id on the platform, e.g. 5007 (a number or a string).
        connection: A saved *Labelvault Platform Connection* block (pick one, or type its
            name): which server and token to read the project with. `make deploy` saves one
            per platform, named `supervisely` and `labelstudio`.
        storage: A saved *Labelvault Store* block (pick one, or type its name): where
            versions are kept. `make deploy` saves `default` from LABELVAULT_STORE_URL.
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
        partitions: Above 1, the project is planned in partitions (Supervisely: datasets;
            Label Studio: task id ranges), captured by that many tasks at once, each retried
            on its own, then merged and committed. 1 reads it in one task, stored as a
            delta against the last version.
        dask_cluster: With partitions, run the partition tasks on Dask: a scheduler's
            address (tcp://host:8786; its workers need labelvault installed and reach the
            platform and the store themselves), or "local" for a cluster of that many worker
            processes started for this run. Empty: in this run's own threads.
    """
    with library_logs_in_run():
        project = project_key(project_id)
        logger = get_run_logger()
        platform = load_connection(connection)
        store = load_store(storage)
        tag_this_run(*run_tags(platform.platform, project))
        if quiet_seconds > 0:
            wait_quiet.with_options(timeout_seconds=max_wait_seconds + 300)(
                platform, project, quiet_seconds=quiet_seconds, max_wait_seconds=max_wait_seconds
            )
        progress = ProgressArtifact.create(f"Capturing {platform.platform} project {project}")
        with project_slot(platform.platform, project, timeout_seconds=project_wait_seconds):
            if partitions > 1:
                summary = capture_in_partitions(
                    platform,
                    store,
                    project,
                    partitions=partitions,
                    dask=dask_cluster.strip(),
                    title=title,
                    description=description,
                    tags=tags or [],
                    progress_id=progress,
                )
                ProgressArtifact(progress).done()
            else:
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
