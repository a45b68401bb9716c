"""``diff``: what changed between two versions."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labelvault.catalog import VersionInfo
from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, app, state
from labelvault.cli.render import count, print_json
from labelvault.diff import DiffResult
from labelvault.errors import ConfigurationError

__all__ = ["diff"]


@app.command()
def diff(
    ctx: typer.Context,
    project_id: ProjectArg,
    old: Annotated[
        str, typer.Argument(metavar="OLD", help="The older version (number, id or 'latest').")
    ],
    new: Annotated[
        str, typer.Argument(metavar="NEW", help="The newer version (default: the latest).")
    ] = "latest",
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the diff as markdown.")
    ] = False,
) -> None:
    """What changed between two versions: rows added, removed and changed, per table and class."""
    st = state(ctx)
    project = st.project(project_id)
    if markdown and st.json:
        raise ConfigurationError("pass either --markdown or --json, not both")
    old_ref, new_ref = inputs.version_ref(old, "OLD"), inputs.version_ref(new, "NEW")
    with st.vault() as vault:
        old_info, new_info, result = vault.diff(project, old_ref, new_ref)
    if st.json:
        print_json(_diff_json(old_info, new_info, result))
        return
    title = f"Changes from version {old_info.number} to version {new_info.number}"
    if markdown:
        sys.stdout.write(result.to_markdown(title=title))
        return
    _print_diff(st.out, title, result)


def _diff_json(old: VersionInfo, new: VersionInfo, result: DiffResult) -> dict[str, Any]:
    return {
        "project": str(old.project),
        "old": {"version": old.number, "version_id": old.id, "content_hash": old.content_hash},
        "new": {"version": new.number, "version_id": new.id, "content_hash": new.content_hash},
        "same_content": result.old_content_hash == result.new_content_hash,
        "empty": result.is_empty,
        "tables": {
            name: {
                "old_rows": t.old_rows,
                "new_rows": t.new_rows,
                "added": t.added,
                "removed": t.removed,
                "changed": t.changed,
                "unchanged": t.unchanged,
                "chunks_read": t.chunks_read,
                "chunks_skipped": t.chunks_skipped,
            }
            for name, t in result.tables.items()
        },
        "classes": {name: asdict(changes) for name, changes in sorted(result.classes.items())},
    }


def _print_diff(out: Console, title: str, result: DiffResult) -> None:
    out.print(Text(title, style="bold"))
    if result.old_content_hash == result.new_content_hash:
        out.print(f"  same content (hash {result.new_content_hash})", soft_wrap=True)
    else:
        out.print(f"  content hash {result.old_content_hash[:16]} → {result.new_content_hash[:16]}")
    table = Table()
    for name in ("table", "old rows", "new rows", "added", "removed", "changed", "unchanged"):
        table.add_column(name, justify="left" if name == "table" else "right")
    table.add_column("chunks read / skipped", justify="right")
    for name, t in result.tables.items():
        table.add_row(
            name,
            f"{t.old_rows:,}",
            f"{t.new_rows:,}",
            count(t.added, "green"),
            count(t.removed, "red"),
            count(t.changed, "yellow"),
            f"{t.unchanged:,}",
            f"{t.chunks_read} / {t.chunks_skipped}",
        )
    out.print(table)
    if result.classes:
        classes = Table(title="annotations by class", title_justify="left")
        for name in ("class", "added", "removed", "changed"):
            classes.add_column(name, justify="left" if name == "class" else "right")
        for name, counts in sorted(result.classes.items()):
            classes.add_row(
                name or "(none)",
                count(counts.added, "green"),
                count(counts.removed, "red"),
                count(counts.changed, "yellow"),
            )
        out.print(classes)
    if result.is_empty:
        out.print(Text("no differences", style="green"))
