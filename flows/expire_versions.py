"""Flow: apply the retention policy (a dry run unless ``dry_run`` is false)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from labelvault.retention import RetentionPolicy
from tasks.artifacts import human_bytes, markdown_table
from tasks.blocks import choice_name, load_connection, load_store
from tasks.common import FLOW_TIMEOUT_SECONDS, library_logs_in_run, project_key
from tasks.forms import Connection, Store, titled
from tasks.versions import expire, list_projects


def _run_name() -> str:
    parameters = flow_run.parameters
    connection = choice_name(parameters.get("connection", "supervisely"))
    return f"expire {connection} (dry run: {parameters.get('dry_run', True)})"


@flow(
    name="expire_versions",
    flow_run_name=_run_name,
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=True,
)
def expire_versions(
    project_ids: Annotated[list[int | str] | None, titled("Project ids")] = None,
    connection: Connection = "supervisely",
    storage: Store = "default",
    keep_last: Annotated[int | None, titled("Keep the newest")] = 10,
    keep_tagged: Annotated[bool, titled("Keep tagged versions")] = True,
    keep_younger_than_days: Annotated[
        float | None, titled("Keep versions younger than (days)")
    ] = 30.0,
    dry_run: Annotated[bool, titled("Dry run")] = True,
) -> list[dict[str, Any]]:
    """Expire old versions; data a kept version still uses is never deleted.

    Args:
        project_ids: The projects to apply retention to, e.g. [5007]. Empty (None): every
            project of the connection's server that has versions in the store.
        connection: A saved *Labelvault Platform Connection* block (pick one, or
            type its name):
            whose projects, e.g. `supervisely`.
        storage: A saved *Labelvault Store* block (pick one, or type its
            name): where versions are kept.
        keep_last: Always keep this many newest versions. Empty (None): no such rule.
        keep_tagged: Keep every version that has a tag.
        keep_younger_than_days: Keep versions younger than this many days. Empty (None): no
            such rule.
        dry_run: Only report what would be deleted. Turn off to delete.
    """
    with library_logs_in_run():
        logger = get_run_logger()
        source = load_connection(connection)
        store = load_store(storage)
        policy = RetentionPolicy(
            keep_last=keep_last,
            keep_tagged=keep_tagged,
            keep_younger_than=(
                timedelta(days=keep_younger_than_days) if keep_younger_than_days else None
            ),
        )
        projects = [project_key(p) for p in project_ids] if project_ids else None
        projects = projects or list_projects(source, store)
        reports = [
            expire(source, store, project_id, policy, dry_run=dry_run) for project_id in projects
        ]
        for report in reports:
            logger.info(
                "%s: %s versions %s, kept %s",
                report["project"],
                "would delete" if dry_run else "deleted",
                report["versions_deleted"] or "none",
                report["versions_kept"],
            )
        create_markdown_artifact(
            markdown=retention_markdown(reports, dry_run=dry_run),
            description=f"Retention {'(dry run) ' if dry_run else ''}for {source.platform}",
        )
        return reports


def retention_markdown(reports: list[dict[str, Any]], *, dry_run: bool) -> str:
    """One row per project: versions deleted and kept, objects and bytes freed."""
    rows = [
        (
            report["project"],
            ", ".join(map(str, report["versions_deleted"])) or "–",
            ", ".join(map(str, report["versions_kept"])) or "–",
            report["objects_deleted"],
            human_bytes(report["bytes_deleted"]),
        )
        for report in reports
    ]
    verb = "would delete" if dry_run else "deleted"
    return (
        f"# Retention{' (dry run: nothing was deleted)' if dry_run else ''}\n\n"
        + markdown_table(
            ["project", f"versions {verb}", "versions kept", f"objects {verb}", f"bytes {verb}"],
            rows,
        )
        + "\n"
    )
