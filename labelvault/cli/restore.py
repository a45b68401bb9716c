"""``restore``: a version as a new project on the platform (resumable by --restore-id).

The new project goes to the server the version was captured from, or to another server of
the same platform: ``--to-server-url`` and ``--to-token`` (or ``LABELVAULT_<PLATFORM>_TO_URL``
and ``LABELVAULT_<PLATFORM>_TO_TOKEN``). A name the target workspace already uses is refused
unless ``--allow-duplicate-name``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.text import Text

from labelvault.catalog import VersionInfo
from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, State, VersionArg, app, state
from labelvault.cli.render import Bar, print_json, rows_table, version_rows
from labelvault.connect import open_platform
from labelvault.errors import ConfigurationError, VersionNotFound
from labelvault.keys import safe_segment, unsafe_segment
from labelvault.models import ProjectInfo, ProjectRef, RestoreOptions, RestoreReport
from labelvault.platforms.base import Platform
from labelvault.settings import PlatformConnection
from labelvault.vault import Vault

__all__ = ["restore"]

#: Skipped or failed rows a restore lists by name; the rest are counted.
_ISSUES_SHOWN = 10


@app.command()
def restore(
    ctx: typer.Context,
    project_id: ProjectArg,
    version: VersionArg,
    *,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The new project's name (default: '<name>, from ver. N')."),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="The new project's description.")
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", help="Workspace id (default: the source project's)."),
    ] = None,
    skip_missed: Annotated[
        bool,
        typer.Option("--skip-missed", help="Skip items whose media is gone, and list them."),
    ] = False,
    allow_failures: Annotated[
        bool,
        typer.Option("--allow-failures", help="Go on past rows the platform rejects; list them."),
    ] = False,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Restore only this dataset (name or path; repeat)."),
    ] = None,
    class_name: Annotated[
        list[str] | None,
        typer.Option("--class", help="Restore only annotations of this class (repeat)."),
    ] = None,
    restore_id: Annotated[
        str | None,
        typer.Option("--restore-id", help="Resume the interrupted restore with this id."),
    ] = None,
    to_server_url: Annotated[
        str | None,
        typer.Option(
            "--to-server-url",
            help="Restore into another server of the platform "
            "(default: env LABELVAULT_<PLATFORM>_TO_URL, else the version's own server).",
        ),
    ] = None,
    to_token: Annotated[
        str | None,
        typer.Option(
            "--to-token",
            help="The API token of --to-server-url (default: env LABELVAULT_<PLATFORM>_TO_TOKEN).",
        ),
    ] = None,
    allow_duplicate_name: Annotated[
        bool,
        typer.Option(
            "--allow-duplicate-name",
            help="Restore even when the target has a project of that name "
            "(Supervisely adds _001; Label Studio makes a second project of that title).",
        ),
    ] = False,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            min=1,
            max=64,
            help="Restore the items in partitions, this many side by side (Supervisely); a "
            "resumed restore keeps the partitions it began with.",
        ),
    ] = 1,
) -> None:
    """Restore a version as a new project (the source project is never touched)."""
    st = state(ctx)
    project = st.project(project_id)
    ref = inputs.version_ref(version)
    platform = _target(st, to_server_url, to_token)
    try:
        with st.vault() as vault:
            info = _version(vault, project, ref)
            st.restore_id = restore_id or secrets.token_hex(6)
            options = RestoreOptions(
                workspace_id=workspace,
                project_name=name,
                project_description=description,
                skip_missed_entities=skip_missed,
                allow_failures=allow_failures,
                datasets=tuple(dataset) if dataset else None,
                classes=tuple(class_name) if class_name else None,
                allow_duplicate_name=allow_duplicate_name,
            )
            report = _restore_with_progress(
                st, vault, platform, project, info, options=options, parallel=parallel
            )
    finally:
        platform.close()
    skipped = tuple(f"{i.table} {i.key}: {i.reason}" for i in report.skipped)
    failures = (*(f"{i.table} {i.key}: {i.reason}" for i in report.failures), *report.warnings)
    if st.json:
        print_json(
            {
                **report.summary(),
                "source": str(info.project),
                "version": info.number,
                "version_id": info.id,
                "content_hash": info.content_hash,
                "restore_id": st.restore_id,
                "skipped": list(skipped),
                "failures": list(failures),
            }
        )
        return
    _print_restored(
        st.out,
        info,
        report.project,
        report.created,
        skipped=skipped,
        failures=failures,
        resumed=report.resumed,
        restore_id=st.restore_id,
        filtered_out=report.filtered_out,
    )


def _target(st: State, to_url: str | None, to_token: str | None) -> Platform:
    """The platform to restore into: the version's server, or the one ``--to-server-url``
    (``LABELVAULT_<PLATFORM>_TO_URL``) names, with its own token."""
    url_source = "--to-server-url" if to_url else st.env("TO_URL")
    url = to_url or os.environ.get(st.env("TO_URL"))
    token = to_token or os.environ.get(st.env("TO_TOKEN"))
    if not url and not token:
        return st.connect()
    if not url:
        raise ConfigurationError(
            f"a target token was given without a target server: pass --to-server-url or set "
            f"{st.env('TO_URL')} (or drop --to-token to restore into the version's server)"
        )
    checked = inputs.server_url(url, url_source)
    if not token:
        raise ConfigurationError(
            f"no token for the target server {checked}: pass --to-token or set {st.env('TO_TOKEN')}"
        )
    st.check_platform()
    connection = PlatformConnection(
        platform=st.platform, server_url=checked, token=SecretStr(token)
    )
    return open_platform(connection)


def _version(vault: Vault, project: ProjectRef, ref: int | str | None) -> VersionInfo:
    """The version to restore; when the store has no version of the project on that server at
    all, say so and name the servers it does have versions from."""
    try:
        return vault.version(project, ref)
    except VersionNotFound:
        try:
            vault.version(project, None)
        except VersionNotFound:
            pass
        else:
            raise  # the project has versions, not this one
    servers = _servers(vault, project.platform)
    known = (
        f"it has {project.platform} versions from {', '.join(servers)}; pass --server-url "
        "with the server the project was captured from"
        if servers
        else f"it has no {project.platform} versions from any server; capture one first"
    )
    raise VersionNotFound(
        f"no versions exist for {project.platform} project {project.project_id} on server "
        f"{project.instance} in this store; {known}",
        project=str(project),
    )


def _servers(vault: Vault, platform: str) -> list[str]:
    """The servers (``host:port``) the store has versions from, for one platform."""
    base = safe_segment(platform) + "/"
    found: set[str] = set()
    for info in vault.store.list(base):
        instance, _, rest = info.key[len(base) :].partition("/")
        if "/versions/" in f"/{rest.partition('/')[2]}":
            found.add(unsafe_segment(instance))
    return sorted(found)


def _restore_with_progress(
    st: State,
    vault: Vault,
    target: Platform,
    project: ProjectRef,
    info: VersionInfo,
    *,
    options: RestoreOptions,
    parallel: int,
) -> RestoreReport:
    total = version_rows(info).get("items") if not options.datasets else None
    with Bar(st.err, "restoring") as bar:
        assert st.restore_id is not None
        _, result = vault.restore(
            target,
            project,
            info.number,
            restore_id=st.restore_id,
            options=options,
            progress=lambda created: bar.update(created.get("items", 0), total),
            parallel=parallel,
        )
        bar.finish(result.created.get("items", 0))
    return result


def _print_restored(
    out: Console,
    info: VersionInfo,
    project: ProjectInfo,
    created: dict[str, int],
    *,
    skipped: Sequence[str],
    failures: Sequence[str],
    resumed: bool = False,
    restore_id: str | None = None,
    filtered_out: dict[str, int] | None = None,
) -> None:
    where = f" in workspace {project.workspace_id}" if project.workspace_id else ""
    verb = "finished restoring" if resumed else "restored"
    out.print(
        Text(
            f"{verb} version {info.number} as project {project.project_id} "
            f"({project.name!r}){where}",
            style="bold green",
        ),
        soft_wrap=True,
    )
    out.print(f"  source        {info.project}, version {info.number} ({info.id})", soft_wrap=True)
    if restore_id:
        out.print(f"  restore id    {restore_id}", soft_wrap=True)
    out.print(rows_table({t: n for t, n in created.items() if n or t != "users"}))
    left_out = {table: count for table, count in (filtered_out or {}).items() if count}
    if left_out:
        listed = ", ".join(f"{table} {count:,}" for table, count in left_out.items())
        out.print(f"  left out by --dataset/--class: {listed}", soft_wrap=True)
    for label, issues, style in (("skipped", skipped, "yellow"), ("failed", failures, "red")):
        if not issues:
            continue
        out.print(Text(f"  {label}: {len(issues):,}", style=style))
        for issue in issues[:_ISSUES_SHOWN]:
            out.print(f"    {issue}", soft_wrap=True)
        if len(issues) > _ISSUES_SHOWN:
            out.print(f"    … and {len(issues) - _ISSUES_SHOWN:,} more")
