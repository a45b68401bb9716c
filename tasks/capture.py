"""Capture tasks: wait for a quiet project, then capture it into a version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from labelvault.capture import wait_for_quiet
from labelvault.connect import open_platform, open_store_from
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.vault import Vault
from tasks.common import RETRY_TRANSIENT, ProgressArtifact, retry_transient


@task(
    name="capture-version",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_transient,
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
    quiet_seconds: float = 0.0,
    max_wait_seconds: float = 600.0,
) -> dict[str, Any]:
    """Capture ``project_id``; returns the version summary as plain values."""
    platform = open_platform(connection)
    try:
        with Vault(open_store_from(store)) as vault:
            if quiet_seconds > 0:
                wait_for_quiet(
                    platform,
                    project_id,
                    quiet_seconds=quiet_seconds,
                    max_wait_seconds=max_wait_seconds,
                )
            artifact = ProgressArtifact(f"Capturing {connection.platform} project {project_id}")
            result = vault.capture(
                platform,
                project_id,
                title=title,
                description=description,
                tags=tags,
                progress=lambda progress: artifact.update(progress.fraction),
            )
            artifact.done()
    finally:
        platform.close()
    return result.summary()
