"""What a version looks like in the Prefect UI: a summary of separate tables and a diff.

Artifacts of a new version are keyed per project, so the artifact's history in the UI reads as
the project's versions (each entry says its version number). A run that made no version
publishes no keyed artifact: it says so in its log and its result only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from labelvault.connect import open_store_from
from labelvault.models import ProjectRef
from labelvault.settings import StoreSettings
from labelvault.vault import Vault
from tasks.common import STEP_TIMEOUT_SECONDS


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from free text."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; cells are formatted for people (thousands separators, no reprs)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    if len(lines) == 2:
        lines.append("| " + " | ".join(["(none)", *[""] * (len(headers) - 1)]) + " |")
    return "\n".join(lines)


def human_bytes(count: int) -> str:
    """``1234567`` → ``1.2 MiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"


def summary_markdown(summary: Mapping[str, Any], classes: Mapping[str, int]) -> str:
    """The version summary as four tables: rows per table, annotations per class, bytes,
    time."""
    rows = markdown_table(["table", "rows"], sorted(summary["rows"].items()))
    annotations = markdown_table(
        ["class", "annotations"],
        sorted(
            ((name or "(no class)", count) for name, count in classes.items()),
            key=lambda row: (-row[1], row[0]),
        ),
    )
    written, reused = summary["bytes_written"], summary["bytes_reused"]
    storage = markdown_table(
        ["bytes", "amount"],
        [("written", human_bytes(written)), ("reused from earlier versions", human_bytes(reused))],
    )
    timing = markdown_table(
        ["time", "value"],
        [
            ("seconds", summary["seconds"]),
            ("items per second", summary["items_per_second"]),
            ("captures (rounds)", summary["captures"]),
        ],
    )
    return (
        f"# Version {summary['version']} of {summary['project']}\n\n"
        f"{summary['reason']}\n\n"
        f"## Rows per table\n\n{rows}\n\n"
        f"## Annotations per class\n\n{annotations}\n\n"
        f"## Storage\n\n{storage}\n\n"
        f"## Time\n\n{timing}\n"
    )


@task(name="publish-version-summary", cache_policy=NO_CACHE, timeout_seconds=STEP_TIMEOUT_SECONDS)
def publish_version_summary(summary: dict[str, Any], store: StoreSettings) -> None:
    """For a new version: the summary tables and a markdown diff against the version before
    the run (whatever number of versions the run committed)."""
    if not summary["created"]:
        return
    with Vault(open_store_from(store)) as vault:
        platform, project_id = summary["platform"], summary["project_id"]
        project = ProjectRef(platform=platform, instance=summary["instance"], project_id=project_id)
        version = vault.version(project, summary["version"])
        key = artifact_key("labelvault", platform, project_id)
        create_markdown_artifact(
            key=key,
            markdown=summary_markdown(summary, vault.class_counts(project, version.number)),
            description=f"Version {version.number} of {platform} project {project_id}",
        )
        first = (summary.get("versions_created") or [version.number])[0]
        earlier = [v for v in vault.catalog.list(project) if v.number < first]
        if earlier:
            _, _, changes = vault.diff(project, earlier[-1].number, version.number)
            create_markdown_artifact(
                key=artifact_key(key, "diff"),
                markdown=changes.to_markdown(
                    title=f"Version {version.number} against version {earlier[-1].number}"
                ),
                description=f"Version {version.number} of {platform} project {project_id}: "
                f"what changed since version {earlier[-1].number}",
            )
