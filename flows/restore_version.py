"""Flow: restore a version as a new project (a retried run resumes instead of duplicating)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from labelvault.models import RestoreOptions
from tasks.blocks import PlatformConnectionBlock, StoreBlock
from tasks.common import platform_tag
from tasks.concurrency import project_slot
from tasks.versions import restore


@flow(name="restore_version")
def restore_version(
    project_id: str,
    version: int | None = None,
    connection: str = "supervisely",
    storage: str = "default",
    target_connection: str | None = None,
    options: RestoreOptions | None = None,
    restore_id: str | None = None,
) -> dict[str, Any]:
    """Restore ``version`` (default: the latest) of ``project_id`` as a new project.

    The target is ``target_connection`` (default: the source's server); ``options`` say where
    and how (workspace, name, a partial restore by datasets or classes), as the CLI's flags do.
    ``restore_id`` names the restore's journal; it defaults to this flow run's id, so a
    retried run resumes. Pass an earlier run's id to resume that one.
    """
    logger = get_run_logger()
    source = PlatformConnectionBlock.load(connection).connection()
    target = PlatformConnectionBlock.load(target_connection or connection).connection()
    store = StoreBlock.load(storage).settings()
    with project_slot(target.platform, f"restore-{project_id}"):
        report = restore.with_options(tags={platform_tag(target.platform)})(
            source,
            target,
            store,
            project_id,
            version,
            restore_id=restore_id or str(flow_run.get_id()),
            options=options or RestoreOptions(),
        )
    logger.info(
        "restored version %s of %s as project %s (%s)",
        report["version"],
        project_id,
        report["project_id"],
        report["project_name"],
    )
    create_markdown_artifact(
        markdown=_report_markdown(report),
        description=f"Restore of {source.platform} project {project_id}",
    )
    return report


def _report_markdown(report: dict[str, Any]) -> str:
    rows = "\n".join(f"| {table} | {count} |" for table, count in report["created"].items())
    return (
        f"# Restored version {report['version']} as project {report['project_id']}\n\n"
        f"**{report['project_name']}** in workspace {report['workspace_id']}"
        f"{' (resumed)' if report['resumed'] else ''}\n\n"
        f"| table | created |\n|---|---|\n{rows}\n\n"
        f"Skipped: {report['skipped']} · failed: {report['failures']} · "
        f"left out by the filters: {report.get('filtered_out') or {}}\n"
    )
