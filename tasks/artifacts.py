"""What a version looks like in the Prefect UI: a table artifact and a markdown diff."""

from __future__ import annotations

import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from labelvault.connect import open_store_from
from labelvault.models import ProjectRef
from labelvault.settings import StoreSettings
from labelvault.vault import Vault


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from free text."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


@task(name="publish-version-summary", cache_policy=NO_CACHE)
def publish_version_summary(summary: dict[str, Any], store: StoreSettings) -> None:
    """A table of the version (rows per table, annotations per class, bytes written vs
    reused, duration, items/s) and, for a new version, a markdown diff against the previous."""
    with Vault(open_store_from(store)) as vault:
        platform, project_id = summary["platform"], summary["project_id"]
        project = ProjectRef(platform=platform, instance=summary["instance"], project_id=project_id)
        version = vault.version(project, summary["version"])
        key = artifact_key("labelvault", platform, project_id)
        rows: list[dict[str, Any]] = [
            {"what": f"rows: {table}", "value": count} for table, count in summary["rows"].items()
        ]
        rows += [
            {"what": f"annotations: {name or '(no class)'}", "value": count}
            for name, count in vault.class_counts(version.project, version.number).items()
        ]
        rows += [
            {"what": "bytes written", "value": summary["bytes_written"]},
            {"what": "bytes reused", "value": summary["bytes_reused"]},
            {"what": "seconds", "value": summary["seconds"]},
            {"what": "items/s", "value": summary["items_per_second"]},
        ]
        create_table_artifact(
            key=key,
            table=rows,
            description=f"Version {version.number} of {platform} project {project_id}: "
            f"{summary['reason']}",
        )
        previous = vault.previous(version) if summary["created"] else None
        if previous is not None:
            _, _, changes = vault.diff(version.project, previous.number, version.number)
            create_markdown_artifact(
                key=artifact_key(key, "diff"),
                markdown=changes.to_markdown(
                    title=f"Version {version.number} against version {previous.number}"
                ),
                description=f"What changed in {platform} project {project_id}",
            )
