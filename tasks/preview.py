"""Tasks for previews: make (or find) a version's preview, and summarize a version."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from labelvault.connect import open_platform, open_store_from
from labelvault.preview import preview_version, version_summary
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.vault import Vault, VersionRef
from tasks.common import RETRY_TRANSIENT, retry_transient


@task(
    name="preview-version",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_transient,
    **RETRY_TRANSIENT,
)
def preview(
    source: PlatformConnection,
    store: StoreSettings,
    project_id: str,
    version: VersionRef,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Preview one version on its own server (the linked preview, unless ``overwrite``)."""
    platform = open_platform(source)
    try:
        with Vault(open_store_from(store)) as vault:
            result = preview_version(
                vault, platform, source.project_ref(project_id), version, overwrite=overwrite
            )
    finally:
        platform.close()
    return result.summary()


@task(name="summarize-version", cache_policy=NO_CACHE)
def summarize(
    source: PlatformConnection, store: StoreSettings, project_id: str, version: VersionRef
) -> dict[str, Any]:
    """A version's summary: plain values plus the markdown under ``"markdown"``."""
    with Vault(open_store_from(store)) as vault:
        found = version_summary(vault, source.project_ref(project_id), version)
    return {**found.to_json(), "markdown": found.to_markdown()}
