"""``verify`` and ``unlock``: check a project's versions for damage; break a lease on purpose."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, app, state
from labelvault.cli.boundary import EXIT_FAILED, Failure
from labelvault.cli.render import print_json
from labelvault.verify import VerifyReport

__all__ = ["unlock", "verify"]


@app.command()
def verify(
    ctx: typer.Context,
    project_id: Annotated[
        str | None,
        typer.Argument(metavar="[PROJECT]", help="The project (default: every project)."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Argument(metavar="[VERSION]", help="One version (default: all of them)."),
    ] = None,
    *,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also read every chunk and check its sha256.")
    ] = False,
) -> None:
    """Check version records, manifests and (with --deep) every chunk; exit 1 on damage."""
    st = state(ctx)
    if project_id is None:
        if version is not None:
            raise Failure("name the project whose version to verify", 2)
        probe = st.project("_")
        with st.vault() as vault:
            projects = vault.projects(probe.platform, probe.instance)
            reports = [vault.verify(project, deep=deep) for project in projects]
    else:
        project = st.project(project_id)
        ref = inputs.version_ref(version) if version is not None else None
        with st.vault() as vault:
            reports = [vault.verify(project, ref, deep=deep)]
    damaged = [report for report in reports if not report.ok]
    if st.json:
        print_json({"ok": not damaged, "projects": [report.summary() for report in reports]})
    else:
        for report in reports:
            _print_report(st.out, report)
        if not reports:
            st.out.print("no versions of this server in the store")
    if damaged:
        names = ", ".join(str(report.project.project_id) for report in damaged)
        raise Failure(
            f"damage found in project {names}; the damaged versions cannot be read or restored "
            "(see the list above)",
            EXIT_FAILED,
        )


def _print_report(out: Any, report: VerifyReport) -> None:
    checked = len(report.versions_checked)
    what = f"{checked} version{'s' if checked != 1 else ''}"
    if report.deep:
        what += f", {report.chunks_checked:,} chunks"
    if report.ok:
        out.print(Text(f"{report.project}: ok ({what})", style="green"), soft_wrap=True)
    else:
        out.print(Text(f"{report.project}: damaged ({what})", style="bold red"), soft_wrap=True)
    for damage in report.damage:
        versions = ", ".join(str(n) for n in damage.versions)
        where = f" (versions {versions})" if versions else ""
        out.print(f"  {damage.kind} {damage.key}: {damage.problem}{where}", soft_wrap=True)
    if report.lease:
        out.print(f"  lease: {report.lease}", soft_wrap=True)


@app.command()
def unlock(
    ctx: typer.Context,
    project_id: ProjectArg,
    *,
    force: Annotated[
        bool,
        typer.Option("--force", help="Break it even while its holder runs on this host."),
    ] = False,
) -> None:
    """Break a project's capture/expire lease on purpose, naming its holder."""
    st = state(ctx)
    project = st.project(project_id)
    with st.vault() as vault:
        broken = vault.unlock(project, force=force)
    if st.json:
        print_json({"unlocked": broken is not None, **(broken.summary() if broken else {})})
        return
    if broken is None:
        st.out.print(f"{project} is not locked")
        return
    st.out.print(
        Text(f"unlocked {project}: the lease of {broken.holder} is broken", style="bold"),
        soft_wrap=True,
    )
