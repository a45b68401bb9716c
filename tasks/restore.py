"""A restore in partitions: plan (and create the project and datasets), restore the
partitions side by side, finish."""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.runtime import flow_run

from labelvault.connect import open_platform, open_store_from
from labelvault.models import RestoreOptions, RestoreReport
from labelvault.platforms.base import Partition
from labelvault.restore.engine import RestoreStart
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.vault import Vault, VersionRef
from tasks.capture import PARTITION_RESULT_LIFETIME
from tasks.common import RESTORE_TIMEOUT_SECONDS, RETRY_TRANSIENT, platform_tag, retry_transient
from tasks.partitions import partition_progress, partition_runner, run_partitions

__all__ = ["restore_in_partitions"]


@task(
    name="plan-restore",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_transient,
    **RETRY_TRANSIENT,
)
def plan_restore(
    source: PlatformConnection,
    target: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    version: VersionRef,
    *,
    restore_id: str,
    options: RestoreOptions,
    partitions: int,
) -> tuple[int, RestoreStart | dict[str, Any]]:
    """Check the version, plan its partitions, create the project and its datasets; the
    version number and the plan (the report's summary when the restore already finished)."""
    platform = open_platform(target)
    try:
        with Vault(open_store_from(store)) as vault:
            info, begun = vault.start_restore(
                platform,
                source.project_ref(project_id),
                version,
                restore_id=restore_id,
                options=options,
                parallel=partitions,
            )
    finally:
        platform.close()
    if isinstance(begun, RestoreReport):
        return info.number, begun.summary()
    get_run_logger().info(
        "%d partitions: %s",
        len(begun.partitions),
        ", ".join(f"{part.label} ({part.weight} items)" for part in begun.partitions),
    )
    return info.number, begun


def partition_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """A restored partition is reused by a retry of the same flow run: retrying a failed run
    restores only the partitions it lacks (its journal would skip the others anyway)."""
    start, partition = parameters["start"], parameters["partition"]
    run = parameters.get("run_id") or context.task_run.flow_run_id
    if not run:
        return None
    return ":".join(["restore-partition", str(run), start.journal, partition.key])


@task(
    name="restore-partition",
    task_run_name="restore {partition.label}",
    cache_key_fn=partition_cache_key,
    cache_expiration=PARTITION_RESULT_LIFETIME,
    persist_result=True,
    retry_condition_fn=retry_transient,
    timeout_seconds=RESTORE_TIMEOUT_SECONDS,
    **RETRY_TRANSIENT,
)
def restore_one_partition(
    *,
    source: PlatformConnection,
    target: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    number: int,
    start: RestoreStart,
    partition: Partition,
    run_id: str = "",
) -> RestoreReport:
    """Restore one partition of the plan; its report. ``run_id``: the flow run it belongs
    to, whose retries reuse it."""
    platform = open_platform(target)
    try:
        with Vault(open_store_from(store)) as vault:
            return vault.restore_partition(
                platform,
                source.project_ref(project_id),
                number,
                start=start,
                partition=partition,
            )
    finally:
        platform.close()


@task(name="finish-restore", cache_policy=NO_CACHE)
def finish(
    store: StoreSettings, start: RestoreStart, reports: list[RestoreReport]
) -> dict[str, Any]:
    """Join the partitions' reports and close the journal; the restore's summary."""
    with Vault(open_store_from(store)) as vault:
        return vault.finish_restore(start, reports).summary()


def restore_in_partitions(
    source: PlatformConnection,
    target: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    version: VersionRef,
    *,
    restore_id: str,
    options: RestoreOptions,
    partitions: int,
    dask: str = "",
    progress_id: UUID | None = None,
) -> dict[str, Any]:
    """Run in a flow: plan, at most ``partitions`` partition tasks at a time (in the flow's
    threads, or on Dask: see :func:`~tasks.partitions.partition_runner`), then finish. Each
    task carries the target platform's tag, so its concurrency limit caps them across runs;
    a partition that fails on a transient error is retried alone and resumes its journal."""
    runner = partition_runner(dask, partitions)
    tag = {platform_tag(target.platform)}
    number, begun = plan_restore.with_options(tags=tag)(
        source,
        target,
        store,
        project_id,
        version,
        restore_id=restore_id,
        options=options,
        partitions=partitions,
    )
    if isinstance(begun, dict):
        return {**begun, "version": number}
    run_id = str(flow_run.get_id() or "")
    with contextlib.ExitStack() as stack:
        if runner is not None:
            stack.enter_context(runner)
        reports = run_partitions(
            restore_one_partition.with_options(tags=tag),
            begun.partitions,
            lambda partition: {
                "source": source,
                "target": target,
                "store": store,
                "project_id": project_id,
                "number": number,
                "start": begun,
                "partition": partition,
                "run_id": run_id,
            },
            limit=partitions,
            runner=runner,
            progress=partition_progress(progress_id),
        )
    ordered = [reports[partition.key] for partition in begun.partitions]
    summary = finish(store, begun, ordered)
    return {**summary, "version": number}
