"""Capture tasks: wait for a quiet project (holding nothing), then capture it into a version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelvault.capture import wait_for_quiet
from labelvault.connect import open_platform, open_store_from
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.vault import Vault
from tasks.common import (
    CAPTURE_TIMEOUT_SECONDS,
    RETRY_TRANSIENT,
    ProgressArtifact,
    retry_transient,
)


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
