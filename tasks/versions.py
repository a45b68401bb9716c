"""Tasks over committed versions: restore, diff, expire."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE

from labelvault.catalog import PreviewLink
from labelvault.connect import open_platform, open_store_from
from labelvault.models import RestoreOptions
from labelvault.platforms.base import Platform
from labelvault.preview import delete_preview
from labelvault.retention import RetentionPolicy
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.vault import Vault, VersionRef
from tasks.common import (
    RESTORE_TIMEOUT_SECONDS,
    RETRY_TRANSIENT,
    STEP_TIMEOUT_SECONDS,
    ProgressArtifact,
    retry_transient,
)


@task(
    name="restore-version",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_transient,
    timeout_seconds=RESTORE_TIMEOUT_SECONDS,
    **RETRY_TRANSIENT,
)
def restore(
    source: PlatformConnection,
    target: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    version: VersionRef,
    *,
    restore_id: str,
    options: RestoreOptions,
    progress_id: UUID | None = None,
) -> dict[str, Any]:
    """Restore one version into a new project on ``target``; resumable by ``restore_id``.
    ``progress_id`` is the run's progress artifact, moved by every attempt."""
    platform = open_platform(target)
    try:
        with Vault(open_store_from(store)) as vault:
            project = source.project_ref(project_id)
            info = vault.version(project, version)
            items = info.stats.get("rows.items")
            artifact = ProgressArtifact(progress_id) if progress_id is not None else None
            _, report = vault.restore(
                platform,
                project,
                info.number,
                restore_id=restore_id,
                options=options,
                progress=(
                    (
                        lambda created: artifact.update(
                            created.get("items", 0) / items if items else None
                        )
                    )
                    if artifact is not None
                    else None
                ),
            )
            if artifact is not None:
                artifact.done()
    finally:
        platform.close()
    return {**report.summary(), "version": info.number}


@task(name="diff-versions", cache_policy=NO_CACHE, timeout_seconds=STEP_TIMEOUT_SECONDS)
def diff(
    source: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    old: VersionRef,
    new: VersionRef = None,
) -> dict[str, Any]:
    """Diff two versions; returns the counts and the markdown summary."""
    with Vault(open_store_from(store)) as vault:
        old_info, new_info, result = vault.diff(source.project_ref(project_id), old, new)
    title = f"Changes from version {old_info.number} to version {new_info.number}"
    return {
        "old": old_info.number,
        "new": new_info.number,
        "tables": result.summary(),
        "markdown": result.to_markdown(title=title),
    }


@task(
    name="expire-versions",
    cache_policy=NO_CACHE,
    timeout_seconds=STEP_TIMEOUT_SECONDS,
    retry_condition_fn=retry_transient,
    **RETRY_TRANSIENT,
)
def expire(
    source: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    policy: RetentionPolicy,
    *,
    dry_run: bool = True,
) -> dict[str, Any]:
    """Apply a retention policy to one project; the previews of expired versions go with them
    (the platform is opened only when one has to)."""
    opened: list[Platform] = []

    def drop_preview(link: PreviewLink) -> None:
        if not opened:
            opened.append(open_platform(source))
        delete_preview(opened[0], link)

    try:
        with Vault(open_store_from(store)) as vault:
            report = vault.expire(
                source.project_ref(project_id),
                policy,
                dry_run=dry_run,
                delete_preview=drop_preview,
            )
    finally:
        for platform in opened:
            platform.close()
    return report.summary()


@task(name="list-projects", cache_policy=NO_CACHE, timeout_seconds=STEP_TIMEOUT_SECONDS)
def list_projects(source: PlatformConnection, store: StoreSettings) -> list[str]:
    """Ids of the projects of ``source``'s server that have versions in the store."""
    instance = source.project_ref("_").instance
    with Vault(open_store_from(store)) as vault:
        return [ref.project_id for ref in vault.projects(source.platform, instance)]
