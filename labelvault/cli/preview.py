"""``preview``: a version as a marked, linked project on its platform; ``summary``: a version at
a glance from the store alone (the markdown the Prefect flow publishes)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, app, state
from labelvault.cli.render import Bar, print_json, version_rows
from labelvault.preview import preview_version, version_summary

__all__ = ["preview", "summary"]


@app.command()
def preview(
    ctx: typer.Context,
    project_id: ProjectArg,
    version: Annotated[
        str, typer.Argument(metavar="VERSION", help="A version number, a version id, or 'latest'.")
    ],
    *,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Make a new preview and delete the one linked now."),
    ] = False,
) -> None:
    """Preview a version as a read-only project on its platform (reused unless --overwrite)."""
    st = state(ctx)
    project = st.project(project_id)
    ref = inputs.version_ref(version)
    platform = st.connect()
    try:
        with st.vault() as vault:
            total = version_rows(vault.version(project, ref)).get("items")
            with Bar(st.err, "previewing") as bar:
                result = preview_version(
                    vault,
                    platform,
                    project,
                    ref,
                    overwrite=overwrite,
                    progress=lambda created: bar.update(created.get("items", 0), total),
                )
                bar.finish(total or 0)
    finally:
        platform.close()
    if st.json:
        print_json(result.summary())
        return
    where = f" in workspace {result.project.workspace_id}" if result.project.workspace_id else ""
    verb = "previewed" if result.created else "already previewed"
    st.out.print(
        Text(
            f"{verb}: version {result.version.number} as project {result.project.project_id} "
            f"({result.project.name!r}){where}",
            style="bold green",
        ),
        soft_wrap=True,
    )
    if result.replaced:
        gone = "deleted" if overwrite else "was gone"
        st.out.print(f"  previous preview project {result.replaced} {gone}", soft_wrap=True)
    if not result.created:
        st.out.print("  add --overwrite to make a new one", soft_wrap=True)


@app.command()
def summary(
    ctx: typer.Context,
    project_id: ProjectArg,
    version: Annotated[
        str,
        typer.Argument(metavar="[VERSION]", help="A version number, a version id, or 'latest'."),
    ] = "latest",
    *,
    top: Annotated[
        int, typer.Option("--top", min=1, max=1000, help="Items with the most annotations.")
    ] = 10,
) -> None:
    """Summarize a version without the platform: rows, datasets, classes, largest items, and
    the changes since the previous version (markdown)."""
    st = state(ctx)
    project = st.project(project_id)
    ref = inputs.version_ref(version)
    with st.vault() as vault:
        found = version_summary(vault, project, ref, top=top)
    if st.json:
        print_json(found.to_json())
        return
    st.out.print(found.to_markdown(), soft_wrap=True, end="")
