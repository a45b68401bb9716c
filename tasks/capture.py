"""Capture tasks: wait for a quiet project, then capture it into a version."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from labelvault.capture import CaptureProgress, wait_for_quiet
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.vault import Vault
from tasks.common import RETRY_TRANSIENT, retry_transient


class _ProgressArtifact:
    """Feeds capture progress into a Prefect progress artifact, at most every few seconds."""

    def __init__(self, description: str, every_seconds: float = 2.0) -> None:
        self.artifact_id: UUID = create_progress_artifact(progress=0.0, description=description)
        self.every_seconds = every_seconds
        self.next_update = 0.0

    def __call__(self, progress: CaptureProgress) -> None:
        fraction = progress.fraction
        now = time.monotonic()
        if fraction is None or now < self.next_update:
            return
        self.next_update = now + self.every_seconds
        update_progress_artifact(self.artifact_id, progress=round(100 * fraction, 1))

    def done(self) -> None:
        update_progress_artifact(self.artifact_id, progress=100.0)


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
    platform = connection.open()
    try:
        with Vault(store.open()) as vault:
            if quiet_seconds > 0:
                wait_for_quiet(
                    platform,
                    project_id,
                    quiet_seconds=quiet_seconds,
                    max_wait_seconds=max_wait_seconds,
                )
            progress = _ProgressArtifact(f"Capturing {connection.platform} project {project_id}")
            result = vault.capture(
                platform,
                project_id,
                title=title,
                description=description,
                tags=tags,
                progress=progress,
            )
            progress.done()
    finally:
        platform.close()
    return result.summary()
