"""``create`` (alias ``capture``), ``versions``, ``show``, ``update`` and ``projects``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labelvault.capture import CaptureProgress, CaptureResult
from labelvault.catalog import VersionInfo
from labelvault.cli import inputs
from labelvault.cli.app import (
    DescriptionOpt,
    ProjectArg,
    TagOpt,
    TitleOpt,
    VersionArg,
    app,
    state,
)
from labelvault.cli.boundary import EXIT_FAILED, Failure
from labelvault.cli.render import (
    Bar,
    Column,
    keyed_table,
    print_json,
    rows_table,
    size,
    tags,
    version_json,
    version_rows,
    when,
)
from labelvault.errors import ConfigurationError, ObjectNotFound
from labelvault.preview import PreviewResult, preview_version
from labelvault.snapshot.manifest import Manifest
from labelvault.storage import ObjectStore

__all__ = ["create", "projects", "show", "update", "versions"]


# --- create -----------------------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    project_id: ProjectArg,
    *,
    title: TitleOpt = None,
    description: DescriptionOpt = None,
    tag: TagOpt = None,
    preview: Annotated[
        bool,
        typer.Option("--preview", help="Also preview the version on its platform (reused)."),
    ] = False,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            min=1,
            max=64,
            help="Read this many partitions (Supervisely: datasets; Label Studio: task id ranges) "
            "side by side; 1 reads the project in one stream. Either way, what changed since "
            "the last version is stored as a delta.",
        ),
    ] = 1,
) -> None:
    """Capture a project into a new version (nothing is written when it did not change)."""
    st = state(ctx)
    platform = st.connect()
    shown: PreviewResult | None = None
    try:
        st.use_project(project_id)
        with st.vault() as vault:
            with Bar(st.err, "capturing") as bar:
                result = vault.capture(
                    platform,
                    project_id,
                    title=title or "",
                    description=description or "",
                    tags=tag or (),
                    progress=lambda update: _show_capture(bar, update),
                    parallel=parallel,
                )
                bar.finish(result.rows.get("items", 0))
            if preview:
                version = result.version
                shown = preview_version(vault, platform, version.project, version.number)
    finally:
        platform.close()
    if st.json:
        print_json({**result.summary(), **({"preview": shown.summary()} if shown else {})})
        return
    _print_capture(st.out, result)
    if shown is not None:
        st.out.print(
            f"  preview       project {shown.project.project_id} ({shown.project.name!r})",
            soft_wrap=True,
        )


app.command("capture", hidden=True, help="Another name for create.")(create)


def _show_capture(bar: Bar, update: CaptureProgress) -> None:
    """The overall bar, and one per partition while it runs."""
    bar.update(update.rows.get("items", 0), update.items_total)
    for part in update.partitions:
        bar.update_part(part.label, part.items, part.weight or None, part.done)


def _print_capture(out: Console, result: CaptureResult) -> None:
    version = result.version
    project = version.project
    where = f"{project.platform} project {project.project_id} on {project.instance}"
    if result.created:
        out.print(
            Text(f"created version {version.number} of {where}", style="bold green"),
            soft_wrap=True,
        )
    else:
        out.print(Text(f"{result.reason} of {where}", style="bold yellow"), soft_wrap=True)
    out.print(f"  version id    {version.id}", soft_wrap=True)
    out.print(f"  content hash  {version.content_hash}", soft_wrap=True)
    rows = result.rows or version_rows(version)
    out.print(rows_table(rows))
    if result.manifest is not None:
        manifest = result.manifest
        # Shares of the whole version: a version with a delta also carries its base's chunks.
        total = max(manifest.data_bytes, result.bytes_written)
        chunks = sum(len(table.all_chunks) for table in manifest.tables.values())
        share = 100 * result.bytes_written / total if total else 0.0
        items = rows.get("items", 0)
        speed = f", {items / result.seconds:,.0f} items/s" if result.seconds > 0 else ""
        out.print(
            f"  written       {size(result.bytes_written)} of {size(total)} ({share:.1f}%) in "
            f"{manifest.chunks_written:,} of {max(chunks, manifest.chunks_written):,} chunks; "
            f"reused {size(total - result.bytes_written)} already stored",
            soft_wrap=True,
        )
        out.print(f"  took          {result.seconds:.2f} s{speed}", soft_wrap=True)


# --- versions, show, update -------------------------------------------------------------------


@app.command()
def versions(ctx: typer.Context, project_id: ProjectArg) -> None:
    """List a project's versions, oldest first."""
    st = state(ctx)
    project = st.project(project_id)
    with st.vault() as vault:
        found = vault.catalog.list(project)
    if st.json:
        print_json({"project": str(project), "versions": [version_json(v) for v in found]})
        return
    if not found:
        st.out.print(
            Text(
                f"no versions of {project} yet; capture one with: labelvault create {project_id}",
                style="yellow",
            ),
            soft_wrap=True,
        )
        return
    cells = [
        [
            str(version.number),
            version.id,
            when(version.created_at),
            version.title,
            tags(version.tags),
            f"{rows.get('items', 0):,}",
            f"{rows.get('annotations', 0):,}",
            f"{sum(rows.values()):,}",
            version.preview_project_id or "",
        ]
        for version, rows in ((v, version_rows(v)) for v in found)
    ]
    # Narrow terminals (and pipes, 80 columns) wrap or shorten the other columns; the number,
    # the title and the counts always show.
    table = keyed_table(
        f"versions of {project}",
        [
            Column("#", key=True, justify="right"),
            Column("id", shorten=8),
            Column("created (UTC)", min_width=10),
            Column("title", key=True, min_width=12),
            Column("tags", min_width=4),
            Column("items", key=True, justify="right"),
            Column("annotations", key=True, justify="right"),
            Column("rows", key=True, justify="right"),
            Column("preview", min_width=4),
        ],
        cells,
        width=st.out.width,
    )
    st.out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    project_id: ProjectArg,
    version: VersionArg,
    *,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also read every chunk and check its sha256.")
    ] = False,
) -> None:
    """Show one version: its record, its content hash and its tables; say when it is damaged."""
    st = state(ctx)
    project = st.project(project_id)
    ref = inputs.version_ref(version)
    with st.vault() as vault:
        info = vault.version(project, ref)
        manifest = vault.manifest(info)
        damage = (
            [
                f"{d.kind} {d.key}: {d.problem}"
                for d in vault.verify(project, info.number, deep=True).damage
                if d.kind != "lease"
            ]
            if deep
            else missing_chunks(vault.store, manifest)
        )
    _fail_when_damaged(info, damage)
    if st.json:
        tables: dict[str, Any] = {
            name: {"rows": entry.rows, "chunks": len(entry.chunks), "bytes": entry.bytes}
            for name, entry in manifest.tables.items()
        }
        print_json(
            {
                **version_json(info),
                "captured_at": manifest.captured_at,
                "format_version": manifest.format_version,
                "data_bytes": manifest.data_bytes,
                "tables": tables,
            }
        )
        return
    _print_version_info(st.out, info)
    st.out.print(f"  captured at      {when(manifest.captured_at)}", soft_wrap=True)
    st.out.print(f"  format version   {manifest.format_version}", soft_wrap=True)
    st.out.print(f"  manifest         {info.manifest_key}", soft_wrap=True)
    st.out.print(rows_table(manifest.row_counts, manifest))
    st.out.print(f"  total data       {size(manifest.data_bytes)}", soft_wrap=True)


def _fail_when_damaged(info: VersionInfo, damage: list[str]) -> None:
    if damage:
        listed = "; ".join(damage[:5]) + (f"; … {len(damage) - 5} more" if len(damage) > 5 else "")
        raise Failure(
            f"version {info.number} is damaged ({listed}); run labelvault verify --deep",
            EXIT_FAILED,
        )


def _print_version_info(out: Console, info: VersionInfo) -> None:
    out.print(Text(f"version {info.number} of {info.project}", style="bold"), soft_wrap=True)
    lines = [
        ("id", info.id),
        ("created (UTC)", when(info.created_at)),
        ("title", info.title),
        ("description", info.description),
        ("tags", tags(info.tags)),
        ("content hash", info.content_hash),
        ("source updated", when(info.source_updated_at)),
    ]
    if info.metadata_updated_at is not None:
        lines.append(("edited (UTC)", when(info.metadata_updated_at)))
    if info.preview_project_id is not None:
        lines.append(("preview", f"project {info.preview_project_id}"))
    for name, value in lines:
        out.print(f"  {name:<16} {value}", soft_wrap=True)


@app.command()
def update(
    ctx: typer.Context,
    project_id: ProjectArg,
    version: VersionArg,
    *,
    title: TitleOpt = None,
    description: DescriptionOpt = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="The version's new tags (replace the old ones; repeat)."),
    ] = None,
    clear_tags: Annotated[
        bool, typer.Option("--clear-tags", help="Remove every tag of the version.")
    ] = False,
) -> None:
    """Change a version's title, description or tags (its content never changes)."""
    st = state(ctx)
    project = st.project(project_id)
    if clear_tags and tag:
        raise ConfigurationError("pass either --tag or --clear-tags, not both")
    new_tags: list[str] | None = [] if clear_tags else tag
    if title is None and description is None and new_tags is None:
        raise ConfigurationError("nothing to change: pass --title, --description, --tag …")
    ref = inputs.version_ref(version)
    with st.vault() as vault:
        number = vault.version(project, ref).number
        info = vault.catalog.update(
            project, number, title=title, description=description, tags=new_tags
        )
    if st.json:
        print_json(version_json(info))
        return
    st.out.print(Text(f"updated version {info.number}", style="bold green"))
    _print_version_info(st.out, info)


@app.command()
def projects(ctx: typer.Context) -> None:
    """List the projects of the configured server that have versions in the store."""
    st = state(ctx)
    probe = st.project("_")
    listing: list[dict[str, Any]] = []
    with st.vault() as vault:
        found = vault.projects(probe.platform, probe.instance)
        table = Table(title=f"{probe.platform} projects on {probe.instance}", title_justify="left")
        table.add_column("project", justify="right")
        table.add_column("versions", justify="right")
        table.add_column("latest")
        table.add_column("created (UTC)")
        for project in found:
            listed = vault.catalog.list(project)
            latest = listed[-1] if listed else None
            listing.append(
                {
                    "project_id": project.project_id,
                    "versions": len(listed),
                    "latest": latest.number if latest else None,
                    "created_at": latest.created_at if latest else None,
                }
            )
            table.add_row(
                project.project_id,
                str(len(listed)),
                str(latest.number) if latest else "",
                when(latest.created_at) if latest else "",
            )
    if st.json:
        print_json({"platform": probe.platform, "instance": probe.instance, "projects": listing})
        return
    if not found:
        st.out.print(Text(f"no versions of any project on {probe.instance}", style="yellow"))
        return
    st.out.print(table)


def missing_chunks(store: ObjectStore, manifest: Manifest) -> list[str]:
    """Chunks of a version that are gone or of the wrong size (a cheap check: no reads)."""
    found = []
    for table in manifest.tables.values():
        for chunk in table.all_chunks:
            try:
                stored = store.head(chunk.key).size
            except ObjectNotFound:
                found.append(f"chunk {chunk.key}: missing")
                continue
            if stored != chunk.bytes:
                found.append(f"chunk {chunk.key}: {stored} bytes, the manifest says {chunk.bytes}")
    return found
