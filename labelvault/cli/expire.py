"""``expire``: delete old versions and the data only they use (a dry run unless --apply)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labelvault.catalog import PreviewLink
from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, app, state
from labelvault.cli.render import plural, print_json, size, tags, versions_phrase, when
from labelvault.errors import ConfigurationError
from labelvault.platforms.base import Platform
from labelvault.preview import delete_preview
from labelvault.retention import ExpiryReport, RetentionPolicy

__all__ = ["expire"]


@app.command()
def expire(
    ctx: typer.Context,
    project_id: ProjectArg,
    *,
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", min=0, help="Keep the last N versions.")
    ] = None,
    keep_younger_than: Annotated[
        float | None,
        typer.Option("--keep-younger-than", help="Keep versions younger than DAYS days."),
    ] = None,
    keep_tagged: Annotated[
        bool, typer.Option("--keep-tagged/--no-keep-tagged", help="Keep tagged versions.")
    ] = True,
    apply: Annotated[
        bool, typer.Option("--apply", help="Delete for real (the default is a dry run).")
    ] = False,
) -> None:
    """Delete old versions and the data only they use (a dry run unless --apply)."""
    st = state(ctx)
    project = st.project(project_id)
    if keep_last is None and keep_younger_than is None:
        raise ConfigurationError(
            "say what to keep: --keep-last N and/or --keep-younger-than DAYS "
            "(the latest version is always kept)"
        )
    younger = (
        timedelta(days=inputs.days(keep_younger_than, "--keep-younger-than"))
        if keep_younger_than is not None
        else None
    )
    policy = RetentionPolicy(
        keep_last=keep_last, keep_tagged=keep_tagged, keep_younger_than=younger
    )
    opened: list[Platform] = []

    def drop_preview(link: PreviewLink) -> None:
        if not opened:  # the platform is needed only when a preview goes
            opened.append(st.connect())
        delete_preview(opened[0], link)

    try:
        with st.vault() as vault:
            report = vault.expire(project, policy, dry_run=not apply, delete_preview=drop_preview)
    finally:
        for platform in opened:
            platform.close()
    if st.json:
        print_json(_expiry_json(report))
        return
    _print_expiry(st.out, report)


def _expiry_json(report: ExpiryReport) -> dict[str, Any]:
    return {
        "project": str(report.project),
        "dry_run": report.dry_run,
        "versions": [
            {
                "version": d.version.number,
                "version_id": d.version.id,
                "keep": d.keep,
                "reasons": list(d.reasons),
            }
            for d in report.plan.decisions
        ],
        "expired": [v.number for v in report.plan.expired],
        "kept": [v.number for v in report.plan.kept],
        "versions_deleted": list(report.versions_deleted),
        "objects_deleted": report.deleted_count,
        "bytes_deleted": report.deleted_bytes,
        "freed_objects": report.freed.count,
        "orphan_objects": report.orphans.count,
        "fresh_orphan_objects": report.fresh_orphans.count,
        "live_objects": report.live.count,
        "live_bytes": report.live.bytes,
        "previews": {
            str(number): link.project_id for number, link in sorted(report.previews.items())
        },
        "journals": list(report.journals),
    }


def _print_expiry(out: Console, report: ExpiryReport) -> None:
    if not report.plan.decisions:
        out.print(Text(f"no versions of {report.project}", style="yellow"), soft_wrap=True)
        return
    table = Table(title=f"retention of {report.project}", title_justify="left")
    for name in ("#", "created (UTC)", "tags", "decision", "why"):
        table.add_column(name, justify="right" if name == "#" else "left")
    for decision in report.plan.decisions:
        version = decision.version
        table.add_row(
            str(version.number),
            when(version.created_at),
            tags(version.tags),
            Text("keep", style="green") if decision.keep else Text("expire", style="red"),
            "; ".join(decision.reasons),
        )
    out.print(table)
    gone = report.plan.expired
    verb = "would delete" if report.dry_run else "deleted"
    out.print(
        f"{verb} {versions_phrase([v.number for v in gone])} and "
        f"{plural(report.deleted_count, 'object')} ({size(report.deleted_bytes)}): "
        f"{report.freed.count:,} used only by those versions, "
        f"{report.orphans.count:,} left by failed captures",
        soft_wrap=True,
    )
    if report.previews:
        listed = ", ".join(
            f"project {link.project_id} (version {number})"
            for number, link in sorted(report.previews.items())
        )
        out.print(f"{verb} their previews on the platform: {listed}", soft_wrap=True)
    if report.journals:
        out.print(
            f"{verb} {plural(len(report.journals), 'abandoned restore journal')}: "
            + ", ".join(report.journals),
            soft_wrap=True,
        )
    out.print(
        f"keeps {versions_phrase([v.number for v in report.plan.kept])} and "
        f"{plural(report.live.count, 'object')} ({size(report.live.bytes)})"
        + (
            f"; {report.fresh_orphans.count:,} unreferenced objects younger than "
            f"{report.grace} are left for now"
            if report.fresh_orphans.count
            else ""
        ),
        soft_wrap=True,
    )
    if report.dry_run:
        out.print(
            Text("dry run: nothing was deleted; add --apply to delete", style="yellow"),
            soft_wrap=True,
        )
