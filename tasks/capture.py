"""Capture tasks: wait for a quiet project (holding nothing), then capture it into a version."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.runtime import flow_run

from labelvault.capture import (
    CaptureLease,
    CaptureResult,
    CaptureStart,
    capture_partition,
    commit_capture,
    start_capture,
    wait_for_quiet,
)
from labelvault.connect import open_platform, open_store_from
from labelvault.platforms.base import Partition
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.snapshot.manifest import Manifest
from labelvault.vault import Vault
from tasks.common import (
    CAPTURE_TIMEOUT_SECONDS,
    RETRY_TRANSIENT,
    ProgressArtifact,
    platform_tag,
    retry_transient,
)
from tasks.partitions import partition_progress, partition_runner, run_partitions

#: How long a captured partition stays reusable by a retry of its run.
PARTITION_RESULT_LIFETIME = timedelta(days=1)


@task(
    name="wait-for-quiet-project",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_transient,
    **RETRY_TRANSIENT,
)
def wait_quiet(
    connection: PlatformConnection,
    project_id: str,
    *,
    quiet_seconds: float,
    max_wait_seconds: float,
) -> None:
    """Wait until the project has not changed for ``quiet_seconds`` (at most
    ``max_wait_seconds``). Runs before any slot is taken: waiting holds no capacity."""
    logger = get_run_logger()
    logger.info(
        "waiting until %s project %s has been quiet for %.0f s (at most %.0f s)",
        connection.platform,
        project_id,
        quiet_seconds,
        max_wait_seconds,
    )
    platform = open_platform(connection)
    try:
        info = wait_for_quiet(
            platform, project_id, quiet_seconds=quiet_seconds, max_wait_seconds=max_wait_seconds
        )
    finally:
        platform.close()
    if info.updated_at is None:
        # Label Studio's project time does not move with its tasks: the wait was the quiet time.
        logger.info(
            "project %s: waited %.0f s (the platform gives no change time)",
            project_id,
            quiet_seconds,
        )
    else:
        logger.info("project %s is quiet (last change %s)", project_id, info.updated_at.isoformat())


@task(
    name="capture-version",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_transient,
    timeout_seconds=CAPTURE_TIMEOUT_SECONDS,
    **RETRY_TRANSIENT,
)
def capture(
    connection: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    *,
    title: str = "",
    description: str = "",
    tags: Sequence[str] = (),
    progress_id: UUID | None = None,
) -> dict[str, Any]:
    """Capture ``project_id``; returns the version summary as plain values. ``progress_id``
    is the run's progress artifact, moved by every attempt."""
    platform = open_platform(connection)
    artifact = ProgressArtifact(progress_id) if progress_id is not None else None
    try:
        with Vault(open_store_from(store)) as vault:
            result = vault.capture(
                platform,
                project_id,
                title=title,
                description=description,
                tags=tags,
                progress=(
                    (lambda progress: artifact.update(progress.fraction))
                    if artifact is not None
                    else None
                ),
            )
    finally:
        platform.close()
    if artifact is not None:
        artifact.done()
    return result.summary()


# --- a capture in partitions: plan, partitions side by side, commit -------------------------


@task(
    name="plan-capture",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_transient,
    **RETRY_TRANSIENT,
)
def plan_capture(
    connection: PlatformConnection, store: StoreSettings, project_id: str, *, partitions: int
) -> CaptureStart | dict[str, Any]:
    """Reserve the next version and plan its partitions; the latest version's summary when
    the platform says nothing changed."""
    platform = open_platform(connection)
    try:
        with Vault(open_store_from(store)) as vault:
            begun = start_capture(platform, project_id, catalog=vault.catalog, parallel=partitions)
    finally:
        platform.close()
    if isinstance(begun, CaptureResult):
        return begun.summary()
    get_run_logger().info(
        "%d partitions: %s",
        len(begun.partitions),
        ", ".join(partition.label for partition in begun.partitions),
    )
    return begun


def partition_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """A partition's result is reused by a retry of the same flow run (while the project's
    time has not moved): retrying a failed run captures only the partitions it lacks."""
    start, partition = parameters["start"], parameters["partition"]
    run = parameters.get("run_id") or context.task_run.flow_run_id
    if not run:
        return None
    spec = json.dumps(dict(partition.spec), sort_keys=True, default=str)
    return ":".join(
        [
            "capture-partition",
            str(run),
            start.ref.prefix,
            str(start.source.source_updated_at),
            partition.key,
            hashlib.sha256(spec.encode()).hexdigest()[:16],
        ]
    )


@task(
    name="capture-partition",
    task_run_name="capture {partition.label}",
    cache_key_fn=partition_cache_key,
    cache_expiration=PARTITION_RESULT_LIFETIME,
    persist_result=True,
    retry_condition_fn=retry_transient,
    **RETRY_TRANSIENT,
)
def capture_one_partition(
    connection: PlatformConnection,
    store: StoreSettings,
    start: CaptureStart,
    partition: Partition,
    run_id: str = "",
) -> Manifest:
    """Write one partition into chunks; its manifest (small: chunk list and sums).
    ``run_id``: the flow run it belongs to, whose retries reuse it."""
    platform = open_platform(connection)
    try:
        with Vault(open_store_from(store)) as vault:
            return capture_partition(
                platform, start, partition, store=vault.store, catalog=vault.catalog
            )
    finally:
        platform.close()


@task(name="commit-version", cache_policy=NO_CACHE)
def commit_version(
    store: StoreSettings,
    start: CaptureStart,
    parts: list[Manifest],
    *,
    title: str = "",
    description: str = "",
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """Merge the partitions in plan order and commit the version; its summary."""
    with Vault(open_store_from(store)) as vault:
        result = commit_capture(
            start,
            parts,
            store=vault.store,
            catalog=vault.catalog,
            title=title,
            description=description,
            tags=tags,
            check_chunks=True,
        )
    return result.summary()


def capture_in_partitions(
    connection: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    *,
    partitions: int,
    dask: str = "",
    title: str = "",
    description: str = "",
    tags: Sequence[str] = (),
    progress_id: UUID | None = None,
) -> dict[str, Any]:
    """Run in a flow: plan, at most ``partitions`` partition tasks at a time (in the flow's
    threads, or on Dask: see :func:`partition_runner`), then commit.

    The flow renews the reservation while the partitions run and cancels it when one fails
    for good (after its retries); each task carries the platform's tag, so the platform's
    concurrency limit caps them across all runs.
    """
    runner = partition_runner(dask, partitions)
    tag = {platform_tag(connection.platform)}
    begun = plan_capture.with_options(tags=tag)(
        connection, store, project_id, partitions=partitions
    )
    if isinstance(begun, dict):
        return begun
    partition_task = capture_one_partition.with_options(tags=tag)
    run_id = str(flow_run.get_id() or "")
    with Vault(open_store_from(store)) as vault, contextlib.ExitStack() as stack:
        lease = CaptureLease(vault.catalog, begun)
        try:
            if runner is not None:
                stack.enter_context(runner)
            parts = run_partitions(
                partition_task,
                begun.partitions,
                lambda partition: {
                    "connection": connection,
                    "store": store,
                    "start": begun,
                    "partition": partition,
                    "run_id": run_id,
                },
                limit=partitions,
                runner=runner,
                tick=lease.keep,
                progress=partition_progress(progress_id),
            )
            ordered = [parts[partition.key] for partition in begun.partitions]
            return commit_version(
                store, lease.current, ordered, title=title, description=description, tags=tags
            )
        except BaseException:
            vault.catalog.cancel(lease.current.reservation)
            raise
