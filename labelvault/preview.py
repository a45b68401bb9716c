"""Preview a version without restoring it for good, and summarize a version without a platform.

A preview (the seed's ``enable_preview``) is a version restored by the restore engine into a
project that says what it is, linked from the version's metadata in the catalog
(:meth:`~labelvault.catalog.Catalog.link_preview`):

- Supervisely: one hidden workspace per team, :data:`PREVIEW_WORKSPACE`, made on first use in
  the team of the source project's workspace; the project is ``"[preview] <name> v<N>"``;
- Label Studio: a project titled ``"[preview] <name> v<N>"`` (within the 50-character title
  limit) whose description says it is a preview.

Asking again returns the linked project, unless ``overwrite`` (a new preview is made, linked,
and the old one deleted on the platform) or the linked project is gone (a new one is made).
Each preview is restored under its own journal (``preview-<version id>-<generation>``), so an
interrupted preview resumes instead of making a second project. Retention deletes a version's
preview with the version (:func:`delete_preview`), and a preview is never versioned of its own
accord (:func:`is_preview_title`: the webhook bridge ignores it).

:func:`version_summary` is the preview without the platform: counts per dataset and per class,
the items with the most annotations, and the diff against the previous version; its
:meth:`VersionSummary.to_markdown` is what the command line prints and the flow publishes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from labelvault.catalog import PreviewLink, VersionInfo
from labelvault.errors import (
    ConfigurationError,
    LabelvaultError,
    PlatformNotFound,
    UnsupportedProject,
)
from labelvault.models import ProjectInfo, ProjectRef, RestoreOptions
from labelvault.platforms.base import Platform, RestoreProgress
from labelvault.platforms.streams import Row, source_row

if TYPE_CHECKING:
    from labelvault.vault import Vault, VersionRef

__all__ = [
    "PREVIEW_KINDS",
    "PREVIEW_WORKSPACE",
    "PreviewResult",
    "VersionSummary",
    "delete_preview",
    "is_preview_title",
    "preview_description",
    "preview_title",
    "preview_version",
    "version_summary",
]

log = logging.getLogger(__name__)

#: The hidden Supervisely workspace, one per team, that holds the previews.
PREVIEW_WORKSPACE = "labelvault previews — do not edit"
_WORKSPACE_DESCRIPTION = (
    "Read-only previews of labelvault versions. Changes here are lost: a preview is deleted "
    "when it is replaced or its version expires."
)
#: Project kinds each platform can preview (a platform not named here: any kind).
PREVIEW_KINDS: Mapping[str, tuple[str, ...]] = {
    "supervisely": ("images",),
    "labelstudio": ("labelstudio",),
}
#: Label Studio's title limit; Supervisely previews use the same names.
TITLE_LIMIT = 50
_PREFIX = "[preview] "
#: A preview's name; Supervisely adds ``_001`` … when the name is taken in the workspace.
_TITLE = re.compile(r"^\[preview\] .* v\d+(_\d{3})?$", re.DOTALL)


@runtime_checkable
class HiddenWorkspaces(Protocol):
    """A platform whose previews live in a hidden workspace (Supervisely)."""

    def default_workspace(self, source: Row) -> str:
        """The workspace the version's project was in."""
        ...

    def preview_workspace(self, source_workspace_id: str, name: str, description: str) -> str:
        """The hidden workspace ``name`` of the source workspace's team, made on first use."""
        ...


def preview_title(name: str, number: int, limit: int = TITLE_LIMIT) -> str:
    """``"[preview] <name> v<N>"``, the name shortened with "…" to fit ``limit``."""
    suffix = f" v{number}"
    room = limit - len(_PREFIX) - len(suffix)
    short = name if len(name) <= room else name[: max(room - 1, 0)].rstrip() + "…"
    return f"{_PREFIX}{short}{suffix}"


def is_preview_title(name: str) -> bool:
    """True for a project named like a preview (such a project is never versioned)."""
    return bool(_TITLE.match(name))


def preview_description(project: ProjectRef, version: VersionInfo) -> str:
    """What a preview project says about itself."""
    return (
        f"labelvault preview of version {version.number} ({version.id}) of {project.platform} "
        f"project {project.project_id} on {project.instance}. Read-only: changes here are "
        "lost, and the project is deleted when the preview is replaced or the version expires."
    )


@dataclass(frozen=True)
class PreviewResult:
    """A version's preview: the project on the platform and its link in the catalog.

    ``created`` is False when the linked preview was returned; ``replaced`` names the preview
    project this one replaced (deleted on ``overwrite``, or found gone).
    """

    version: VersionInfo
    project: ProjectInfo
    link: PreviewLink
    created: bool
    replaced: str | None = None
    reason: str = ""

    def summary(self) -> dict[str, Any]:
        """Plain values for logs, flow results and ``--json``."""
        return {
            "source": str(self.version.project),
            "version": self.version.number,
            "version_id": self.version.id,
            "preview_project_id": self.project.project_id,
            "preview_project_name": self.project.name,
            "workspace_id": self.project.workspace_id,
            "instance": self.link.instance,
            "created": self.created,
            "created_at": self.link.created_at.isoformat(),
            "replaced": self.replaced,
            "reason": self.reason,
        }


def _check_target(platform: Platform, project: ProjectRef) -> None:
    if (platform.name, platform.instance) != (project.platform, project.instance):
        raise ConfigurationError(
            f"a preview is made on the version's own server ({project.platform} at "
            f"{project.instance}), not on {platform.name} at {platform.instance}; connect to it"
        )


def _check_kind(platform: Platform, project: ProjectRef, source: Row) -> None:
    kinds = PREVIEW_KINDS.get(platform.name)
    kind = str(source.get("kind") or "unknown")
    if kinds is None or kind in kinds:
        return
    raise UnsupportedProject(
        f"{platform.name} project {project.project_id} is a {kind!r} project: previews are "
        f"made of {', '.join(kinds)} projects only",
        platform=platform.name,
        project=project.project_id,
    )


def preview_version(
    vault: Vault,
    platform: Platform,
    project: ProjectRef,
    ref: VersionRef = None,
    *,
    overwrite: bool = False,
    progress: RestoreProgress | None = None,
) -> PreviewResult:
    """Preview version ``ref`` (default: the latest) of ``project`` on ``platform``, the
    project's own server; see the module docstring.

    Raises:
        VersionNotFound: no such version.
        UnsupportedProject: the platform cannot preview this kind of project.
        AuthenticationError: the token may not make the previews workspace or the project.
        RestoreError: the preview stopped half made; asking again resumes it.
    """
    _check_target(platform, project)
    version = vault.version(project, ref)
    source = source_row(vault.reader(project, version.number).iter_batches)
    _check_kind(platform, project, source)
    linked = vault.catalog.preview(project, version.number)
    gone: str | None = None
    if linked is not None and not overwrite:
        try:
            shown = platform.get_project(linked.project_id)
        except PlatformNotFound:
            gone = linked.project_id
            log.info("the preview project %s of %s is gone; making a new one", gone, version.id)
        else:
            return PreviewResult(version, shown, linked, created=False, reason="existing preview")
    generation = linked.generation + 1 if linked is not None else 1
    workspace: str | None = None
    if isinstance(platform, HiddenWorkspaces):
        workspace = platform.preview_workspace(
            platform.default_workspace(source), PREVIEW_WORKSPACE, _WORKSPACE_DESCRIPTION
        )
    options = RestoreOptions(
        workspace_id=workspace,
        project_name=preview_title(str(source.get("name") or project.project_id), version.number),
        project_description=preview_description(project, version),
        # An overwrite makes the new preview before the old one goes: they may share a name.
        allow_duplicate_name=True,
    )
    _, report = vault.restore(
        platform,
        project,
        version.number,
        restore_id=f"preview-{version.id}-{generation}",
        options=options,
        progress=progress,
    )
    link = PreviewLink(
        platform=platform.name,
        instance=platform.instance,
        project_id=report.project.project_id,
        created_at=vault.catalog.now(),
        generation=generation,
        workspace_id=report.project.workspace_id,
    )
    try:
        stored = vault.catalog.link_preview(project, version.number, link, expected=linked)
    except LabelvaultError:
        delete_preview(platform, link)  # never leave an unlinked preview behind
        raise
    if stored is not None and stored.project_id != link.project_id:
        # Another preview was linked meanwhile: keep that one, drop this one.
        delete_preview(platform, link)
        return PreviewResult(
            version,
            platform.get_project(stored.project_id),
            stored,
            created=False,
            reason="another preview was made at the same time",
        )
    replaced = None
    if linked is not None and gone is None:
        delete_preview(platform, linked)
        replaced = linked.project_id
    reason = (
        f"replaced preview {replaced}"
        if replaced
        else f"preview {gone} was gone"
        if gone
        else "new preview"
    )
    return PreviewResult(
        version, report.project, link, created=True, replaced=replaced or gone, reason=reason
    )


def delete_preview(platform: Platform, link: PreviewLink) -> None:
    """Delete a preview project on its platform (one already gone counts as deleted)."""
    if (platform.name, platform.instance) != (link.platform, link.instance):
        raise ConfigurationError(
            f"preview project {link.project_id} lives on {link.platform} at {link.instance}, "
            f"not on {platform.name} at {platform.instance}; connect to its server to delete it"
        )
    platform.delete_project(link.project_id)


# --- the summary -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSummary:
    """A version at a glance, read from the store alone (no platform)."""

    version: VersionInfo
    rows: dict[str, int]
    datasets: list[dict[str, Any]]
    classes: dict[str, int]
    largest_items: list[dict[str, Any]]
    previous: int | None = None
    diff: dict[str, dict[str, int]] | None = None
    diff_markdown: str = ""
    preview: PreviewLink | None = None
    shown: int = field(default=50)

    def to_json(self) -> dict[str, Any]:
        """Plain values for ``--json`` and flow results."""
        version = self.version
        return {
            "project": str(version.project),
            "version": version.number,
            "version_id": version.id,
            "title": version.title,
            "created_at": version.created_at.isoformat(),
            "content_hash": version.content_hash,
            "rows": dict(self.rows),
            "datasets": list(self.datasets),
            "classes": dict(self.classes),
            "largest_items": list(self.largest_items),
            "previous": self.previous,
            "diff": self.diff,
            "preview": None if self.preview is None else self.preview.model_dump(mode="json"),
        }

    def to_markdown(self) -> str:
        """The summary as markdown (the command line prints it, the flow publishes it)."""
        version = self.version
        lines = [
            f"# Version {version.number} of {version.project.platform} project "
            f"{version.project.project_id}",
            "",
            f"{_cell(version.title) or '(untitled)'} · created "
            f"{version.created_at:%Y-%m-%d %H:%M:%S} UTC · content hash "
            f"`{version.content_hash[:12]}`",
        ]
        if self.preview is not None:
            lines += ["", f"Preview: project {self.preview.project_id} on {self.preview.instance}."]
        lines += ["", "## Rows", "", "| table | rows |", "|---|---:|"]
        lines += [f"| {table} | {count:,} |" for table, count in self.rows.items()]
        lines += ["", "## Datasets", "", "| dataset | items | annotations |", "|---|---:|---:|"]
        lines += [
            f"| {_cell(d['dataset']) or '(none)'} | {d['items']:,} | {d['annotations']:,} |"
            for d in self.datasets[: self.shown]
        ]
        if len(self.datasets) > self.shown:
            lines.append(f"| … and {len(self.datasets) - self.shown:,} more | | |")
        lines += ["", "## Classes", "", "| class | annotations |", "|---|---:|"]
        lines += [
            f"| {_cell(name) or '(no class)'} | {count:,} |"
            for name, count in list(self.classes.items())[: self.shown]
        ]
        if len(self.classes) > self.shown:
            lines.append(f"| … and {len(self.classes) - self.shown:,} more | |")
        lines += [
            "",
            "## Items with the most annotations",
            "",
            "| item | dataset | annotations |",
            "|---|---|---:|",
        ]
        lines += [
            f"| {_cell(i['item'])} | {_cell(i['dataset'])} | {i['annotations']:,} |"
            for i in self.largest_items
        ]
        lines.append("")
        if self.diff_markdown:
            lines += [self.diff_markdown.rstrip(), ""]
        else:
            lines += ["## Changes", "", "The first version: nothing to compare with.", ""]
        return "\n".join(lines)


def _cell(text: Any) -> str:
    """Text fit for a markdown table cell: one line, no column breaks."""
    return " ".join(str(text or "").split()).replace("|", "\\|")


_DATASETS_SQL = """
SELECT coalesce(d.path, d.name, i.dataset_key, '') AS dataset,
       count(DISTINCT i.key) AS items, count(a.key) AS annotations
FROM items i
LEFT JOIN datasets d ON d.key = i.dataset_key
LEFT JOIN annotations a ON a.item_key = i.key
GROUP BY 1 ORDER BY 1
"""
_LARGEST_SQL = """
SELECT coalesce(i.name, i.key) AS item, coalesce(d.path, d.name, '') AS dataset,
       count(a.key) AS annotations
FROM items i
LEFT JOIN datasets d ON d.key = i.dataset_key
LEFT JOIN annotations a ON a.item_key = i.key
GROUP BY i.key, i.name, d.path, d.name
ORDER BY annotations DESC, i.key
LIMIT {top}
"""


def version_summary(
    vault: Vault, project: ProjectRef, ref: VersionRef = None, *, top: int = 10
) -> VersionSummary:
    """Summarize version ``ref`` (default: the latest) from the store: rows per table, counts
    per dataset and class, the ``top`` items with the most annotations, and the diff against
    the previous version."""
    version = vault.version(project, ref)
    rows = {
        name.removeprefix("rows."): count
        for name, count in version.stats.items()
        if name.startswith("rows.")
    }
    datasets = vault.query(project, _DATASETS_SQL, version.number).to_pylist()
    largest = vault.query(project, _LARGEST_SQL.format(top=int(top)), version.number).to_pylist()
    previous = vault.previous(version)
    diff: dict[str, dict[str, int]] | None = None
    diff_markdown = ""
    if previous is not None:
        _, _, changes = vault.diff(project, previous.number, version.number)
        diff = changes.summary()
        diff_markdown = changes.to_markdown(title=f"Changes against version {previous.number}")
    return VersionSummary(
        version=version,
        rows=rows,
        datasets=datasets,
        classes=vault.class_counts(project, version.number),
        largest_items=largest,
        previous=None if previous is None else previous.number,
        diff=diff,
        diff_markdown=diff_markdown,
        preview=vault.catalog.preview(project, version.number),
    )
