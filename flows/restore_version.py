"""Flow: restore a version as a new project (a retried run resumes instead of duplicating)."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from pydantic import Field

from labelvault.models import RestoreOptions
from tasks.artifacts import markdown_table
from tasks.blocks import (
    ConnectionChoice,
    load_connection,
    load_store,
    project_label,
)
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
from tasks.forms import Connection, ProjectId, ProjectWaitSeconds, Store, VersionNumber, titled
from tasks.restore import restore_in_partitions
from tasks.versions import restore


def _run_name() -> str:
    parameters = flow_run.parameters
    version = parameters.get("version")
    return f"restore {project_label(parameters)} {'latest' if version is None else f'v{version}'}"


@flow(
    name="restore_version",
    flow_run_name=_run_name,
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=True,
)
def restore_version(
    project_id: ProjectId,
    version: VersionNumber = None,
    connection: Connection = "supervisely",
    storage: Store = "default",
    target_connection: Annotated[ConnectionChoice | None, titled("Restore to connection")] = None,
    options: Annotated[RestoreOptions | None, titled("Restore options")] = None,
    restore_id: Annotated[str | None, titled("Resume restore id")] = None,
    project_wait_seconds: ProjectWaitSeconds = DEFAULT_WAIT_SECONDS,
    partitions: Annotated[int, titled("Partitions restored at once"), Field(ge=1, le=64)] = 1,
    dask_cluster: Annotated[str, titled("Dask cluster for partitions")] = "",
) -> dict[str, Any]:
    """Restore a version of a project as a new project; a retried run resumes.

    Args:
        project_id: The source project's id on the platform, e.g. 5007.
        version: The version number to restore. Empty (None): the latest version.
        connection: The saved *Labelvault Platform Connection* block (pick one, or type
            its name) the project was
            captured from (Blocks page), e.g. `supervisely`.
        storage: A saved *Labelvault Store* block (pick one, or type its
            name): where versions are kept.
        target_connection: The *Labelvault Platform Connection* block to restore
            into. Empty (None): the same server as `connection`.
        options: Where and how: workspace, the new project's name, a partial restore by
            datasets or classes, how strict. Empty (None): every default (see each field).
        restore_id: Names the restore's journal, so a restore can be resumed. Empty (None):
            this run's id, so a retried run resumes; give an earlier run's id to resume it.
        project_wait_seconds: How long to wait while another restore of the same project
            runs before failing.
        partitions: Above 1 (Supervisely), the project and its datasets are created first,
            then the items are restored in partitions (ranges of items with what hangs off
            them), that many tasks at once, each retried on its own; a retried run restores
            only the partitions it lacks. 1 restores in one task.
        dask_cluster: With partitions, run the partition tasks on Dask: a scheduler's address
            (tcp://host:8786), or "local" for a cluster of that many worker processes started
            for this run. Empty: in this run's own threads.
    """
    with library_logs_in_run():
        project = project_key(project_id)
        logger = get_run_logger()
        source = load_connection(connection)
        target = load_connection(target_connection or connection)
        store = load_store(storage)
        tag_this_run(*run_tags(source.platform, project))
        progress = ProgressArtifact.create(f"Restoring {source.platform} project {project}")
        with project_slot(
            target.platform, f"restore-{project}", timeout_seconds=project_wait_seconds
        ):
            if partitions > 1:
                report = restore_in_partitions(
                    source,
                    target,
                    store,
                    project,
                    version,
                    restore_id=restore_id or str(flow_run.get_id()),
                    options=options or RestoreOptions(),
                    partitions=partitions,
                    dask=dask_cluster.strip(),
                    progress_id=progress,
                )
                ProgressArtifact(progress).done()
            else:
                report = restore.with_options(tags={platform_tag(target.platform)})(
                    source,
                    target,
                    store,
                    project,
                    version,
                    restore_id=restore_id or str(flow_run.get_id()),
                    options=options or RestoreOptions(),
                    progress_id=progress,
                )
        logger.info(
            "restored version %s of %s as project %s (%s)",
            report["version"],
            project,
            report["project_id"],
            report["project_name"],
        )
        create_markdown_artifact(
            markdown=report_markdown(report),
            description=f"Restore of {source.platform} project {project} "
            f"version {report['version']}",
        )
        return report


def report_markdown(report: dict[str, Any]) -> str:
    """The restore report for people: what was created, skipped, failed and left out."""
    filtered = report.get("filtered_out") or {}
    problems = [("skipped", report["skipped"]), ("failed", report["failures"])]
    warnings = "".join(f"- {warning}\n" for warning in report.get("warnings") or [])
    return (
        f"# Restored version {report['version']} as project {report['project_id']}\n\n"
        f"**{report['project_name']}** in workspace {report['workspace_id'] or '–'}"
        f"{' (resumed)' if report['resumed'] else ''}\n\n"
        f"## Created\n\n"
        f"{markdown_table(['table', 'created'], sorted(report['created'].items()))}\n\n"
        f"## Left out by the filters\n\n"
        f"{markdown_table(['table', 'left out'], sorted(filtered.items()))}\n\n"
        f"## Problems\n\n"
        f"{markdown_table(['kind', 'count'], problems)}\n"
        + (f"\n## Warnings\n\n{warnings}" if warnings else "")
    )
