"""Flow: apply the retention policy (a dry run unless ``dry_run`` is false)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from labelvault.retention import RetentionPolicy
from tasks.blocks import PlatformConnectionBlock, StoreBlock
from tasks.versions import expire, list_projects


@flow(name="expire_versions")
def expire_versions(
    project_ids: list[str] | None = None,
    connection: str = "supervisely",
    storage: str = "default",
    keep_last: int | None = 10,
    keep_tagged: bool = True,
    keep_younger_than_days: float | None = 30.0,
    dry_run: bool = True,
) -> list[dict[str, Any]]:
    """Expire old versions of ``project_ids`` (default: every project of the connection's
    server in the store). Tagged versions, the newest ``keep_last`` and those younger than
    ``keep_younger_than_days`` stay; data still referenced by a kept version is never
    deleted."""
    logger = get_run_logger()
    source = PlatformConnectionBlock.load(connection).connection()
    store = StoreBlock.load(storage).settings()
    policy = RetentionPolicy(
        keep_last=keep_last,
        keep_tagged=keep_tagged,
        keep_younger_than=(
            timedelta(days=keep_younger_than_days) if keep_younger_than_days else None
        ),
    )
    project_ids = project_ids or list_projects(source, store)
    reports = [
        expire(source, store, project_id, policy, dry_run=dry_run) for project_id in project_ids
    ]
    for report in reports:
        logger.info("%s", report)
    create_table_artifact(
        table=reports or [{"projects": 0}],
        description=f"Retention {'(dry run) ' if dry_run else ''}for {source.platform}",
    )
    return reports
