"""``labelvault``: capture, list, diff, query, restore and expire versions from a shell.

Global options say where versions live (``--store``, env ``LABELVAULT_STORE_URL``) and which
platform server a project lives on (``--platform``, ``--server-url``, ``--token``; the last two
default to ``LABELVAULT_<PLATFORM>_URL`` / ``_TOKEN``). A project's history is identified by
platform, server host and project id, so ``versions``, ``show``, ``update``, ``diff``,
``query`` and ``expire`` need the server's URL but no token; only ``capture`` and ``restore``
talk to the platform.

Every labelvault error ends the command with one red line saying what went wrong and what to
do, exit code 1 (2 for configuration errors), no traceback, and never a token.
"""

from __future__ import annotations

import functools
import io
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated, Any, NoReturn, ParamSpec, cast

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from labelvault.capture import CaptureResult
from labelvault.catalog import VersionInfo
from labelvault.connect import open_platform, open_store_from
from labelvault.diff import DiffResult
from labelvault.errors import (
    AuthenticationError,
    BucketNotFound,
    ConfigurationError,
    IntegrityError,
    LabelvaultError,
    LeaseHeld,
    PlatformNotFound,
    PlatformUnavailable,
    RestoreError,
    StorageAccessDenied,
    StorageUnavailable,
    UnsupportedProject,
    VersionNotFound,
)
from labelvault.models import ProjectRef, RestoreOptions, RestoreReport
from labelvault.platforms.base import Platform, ProjectInfo, instance_from_url
from labelvault.retention import ExpiryReport, RetentionPolicy
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.schema import TABLES
from labelvault.vault import Vault, VersionRef
from labelvault.webhooks import DEFAULT_MAX_BODY_BYTES, SECRET_HEADER, serve

__all__ = ["app", "main", "run"]

_P = ParamSpec("_P")

#: Rows ``query --format table`` shows at most unless told otherwise.
DEFAULT_TABLE_ROWS = 1000
#: Skipped or failed rows a restore lists by name; the rest are counted.
_ISSUES_SHOWN = 10

app = typer.Typer(
    name="labelvault",
    help="Versions of annotation projects: capture, list, diff, query, restore and expire.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(StrEnum):
    """How ``query`` prints its result."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


# --- state shared by the commands ---------------------------------------------------------------


@dataclass
class _State:
    """The global options of one invocation."""

    store_url: str
    platform: str
    server_url: str | None
    token: str | None
    out: Console
    err: Console
    project_id: str | None = None
    restore_id: str | None = None

    def env(self, suffix: str) -> str:
        """``LABELVAULT_<PLATFORM>_<SUFFIX>``."""
        return f"LABELVAULT_{self.platform.upper()}_{suffix}"

    def secret_values(self) -> list[str]:
        """Every secret this invocation may know, to be kept out of any output."""
        found = [self.token] if self.token else []
        found += [
            value
            for name, value in os.environ.items()
            if name.startswith("LABELVAULT_")
            and name.endswith(("_TOKEN", "_SECRET_KEY", "_PASSWORD"))
        ]
        return [value for value in found if len(value) >= 4]

    def check_platform(self) -> None:
        """Fail clearly on a platform name no adapter is registered for."""
        from labelvault.platforms import get_platform_factory  # noqa: PLC0415 - registers all

        get_platform_factory(self.platform)

    def project(self, project_id: str) -> ProjectRef:
        """The catalog identity of ``project_id`` on the configured server (no token needed)."""
        self.check_platform()
        self.use_project(project_id)
        url = self.server_url or os.environ.get(self.env("URL"))
        if not url:
            raise ConfigurationError(
                f"no {self.platform} server: set {self.env('URL')} or pass --server-url "
                "(versions are kept per server)"
            )
        return ProjectRef(
            platform=self.platform, instance=instance_from_url(url), project_id=project_id
        )

    def use_project(self, project_id: str) -> None:
        """Remember the project the command is about (for hints); refuse an empty id."""
        if not project_id.strip():
            raise ConfigurationError("the project id is empty")
        self.project_id = project_id

    def connect(self) -> Platform:
        """Open the platform (needs the server's URL and a token)."""
        self.check_platform()
        connection = PlatformConnection.from_env(
            self.platform, server_url=self.server_url, token=self.token
        )
        return open_platform(connection)

    @contextmanager
    def vault(self) -> Iterator[Vault]:
        """The store and its catalog, closed afterwards."""
        store = open_store_from(StoreSettings(url=self.store_url))
        try:
            yield Vault(store)
        finally:
            store.close()


def _state(ctx: typer.Context) -> _State:
    return cast(_State, ctx.find_root().obj)


def _version_ref(text: str) -> VersionRef:
    """``latest`` → ``None``; digits → a number; anything else → a version id."""
    if text.strip().lower() == "latest":
        return None
    return int(text) if text.isdigit() else text


# --- errors ------------------------------------------------------------------------------------


def _hint(exc: LabelvaultError, state: _State | None) -> str:
    """What to do about ``exc``, when its message does not say it already."""
    project = (state.project_id if state else None) or "PROJECT_ID"
    token_env = state.env("TOKEN") if state else "LABELVAULT_<PLATFORM>_TOKEN"
    hints: list[tuple[type[LabelvaultError], str]] = [
        (AuthenticationError, f"check the token (--token or {token_env})"),
        (PlatformNotFound, "check the project id and --server-url"),
        (UnsupportedProject, "capture an images project, or another platform's project"),
        (PlatformUnavailable, "check that the server is reachable, then run the command again"),
        (VersionNotFound, f"list the versions with: labelvault versions {project}"),
        (LeaseHeld, "another capture or expire is running on it; try again when it ends"),
        (IntegrityError, "the named object is damaged or missing; restore it from a backup"),
        (BucketNotFound, "create the bucket or fix --store"),
        (StorageAccessDenied, "check the LABELVAULT_STORE_S3_* credentials"),
        (StorageUnavailable, "check that the store is reachable, then run the command again"),
    ]
    if isinstance(exc, RestoreError) and state is not None and state.restore_id:
        return f"to resume, run the same command again with --restore-id {state.restore_id}"
    for kind, hint in hints:
        if isinstance(exc, kind):
            return hint
    return ""


def _fail(message: str, code: int, state: _State | None = None) -> NoReturn:
    """Print one red line (secrets masked) on stderr and exit with ``code``."""
    line = " ".join(message.split())
    for secret in state.secret_values() if state is not None else []:
        line = line.replace(secret, "***")
    err = state.err if state is not None else _console(stderr=True)
    err.print(Text(f"error: {line}", style="bold red"), soft_wrap=True)
    raise typer.Exit(code)


def _failure_message(exc: LabelvaultError, state: _State | None) -> str:
    message = exc.message.rstrip(". ")
    hint = _hint(exc, state)
    return f"{message}; {hint}" if hint else message


def _command(func: Callable[_P, None]) -> Callable[_P, None]:
    """Turn labelvault errors into one clean line and an exit code."""

    @functools.wraps(func)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        ctx: Any = kwargs.get("ctx")
        root: Any = ctx.find_root() if hasattr(ctx, "find_root") else None
        found = getattr(root, "obj", None)
        state = found if isinstance(found, _State) else None
        try:
            func(*args, **kwargs)
        except ConfigurationError as exc:
            _fail(_failure_message(exc, state), 2, state)
        except LabelvaultError as exc:
            _fail(_failure_message(exc, state), 1, state)
        except KeyboardInterrupt:
            resume = state.restore_id if state is not None else None
            hint = f"; to resume, run the same command with --restore-id {resume}" if resume else ""
            _fail(f"interrupted{hint}", 130, state)
        except BrokenPipeError:  # `labelvault query … | head`: stop quietly
            _silence_stdout()
            raise typer.Exit(0) from None

    return run


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


# --- output helpers ---------------------------------------------------------------------------


def _console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False)


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _version_rows(version: VersionInfo) -> dict[str, int]:
    """Rows per table, from the catalog record."""
    return {
        name.removeprefix("rows."): count
        for name, count in version.stats.items()
        if name.startswith("rows.")
    }


def _rows_table(rows: dict[str, int], manifest: Manifest | None = None) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    if manifest is not None:
        table.add_column("chunks", justify="right")
        table.add_column("bytes", justify="right")
    ordered = [name for name in TABLES if name in rows] + sorted(set(rows) - set(TABLES))
    for name in ordered:
        count = rows[name]
        cells = [name, f"{count:,}"]
        if manifest is not None and name in manifest.tables:
            entry = manifest.tables[name]
            cells += [f"{len(entry.chunks):,}", _size(entry.bytes)]
        table.add_row(*cells)
    return table


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _versions_phrase(numbers: Sequence[int]) -> str:
    if not numbers:
        return "no versions"
    listed = ", ".join(str(number) for number in numbers)
    return f"version {listed}" if len(numbers) == 1 else f"versions {listed}"


def _tags(tags: Sequence[str]) -> str:
    return ", ".join(tags)


# --- the global options ---------------------------------------------------------------------


def _print_version(value: bool) -> None:
    if value:
        try:
            number = package_version("labelvault")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            number = "unknown"
        typer.echo(f"labelvault {number}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    *,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            envvar="LABELVAULT_STORE_URL",
            help="Where versions live: a folder, file:///path, s3://bucket/prefix or memory://.",
        ),
    ] = "./labelvault-store",
    platform: Annotated[
        str,
        typer.Option(
            "--platform", envvar="LABELVAULT_PLATFORM", help="supervisely or labelstudio."
        ),
    ] = "supervisely",
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server-url",
            help="The platform's server (default: env LABELVAULT_<PLATFORM>_URL).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The platform's API token (default: env LABELVAULT_<PLATFORM>_TOKEN).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Versions of annotation projects: capture, list, diff, query, restore and expire."""
    ctx.obj = _State(
        store_url=store,
        platform=platform.strip().lower(),
        server_url=server_url,
        token=token,
        out=_console(),
        err=_console(stderr=True),
    )


# --- capture ----------------------------------------------------------------------------------


ProjectArg = Annotated[
    str, typer.Argument(metavar="PROJECT_ID", help="The project's id on the platform.")
]
VersionArg = Annotated[
    str, typer.Argument(metavar="VERSION", help="A version number, a version id, or 'latest'.")
]
TitleOpt = Annotated[str | None, typer.Option("--title", help="The version's title.")]
DescriptionOpt = Annotated[
    str | None, typer.Option("--description", help="The version's description.")
]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", help="A tag for the version (repeat for more).")
]


class _Bar:
    """A progress bar on stderr that appears with its first update (so a command that has
    nothing to do prints none)."""

    def __init__(self, console: Console, description: str, unit: str = "items") -> None:
        self.console = console
        self.description = description
        self.unit = unit
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def update(self, completed: int, total: int | None = None) -> None:
        """Show ``completed`` of ``total`` (``None``: unknown)."""
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total)
        assert self._task is not None
        self._progress.update(self._task, completed=completed, total=total)

    def finish(self, completed: int) -> None:
        """Show the final count (only if the bar is shown)."""
        if self._progress is not None and self._task is not None:
            total = self._progress.tasks[0].total
            self._progress.update(self._task, completed=completed, total=total or completed)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@app.command("create")
@_command
def create(
    ctx: typer.Context,
    project_id: ProjectArg,
    *,
    title: TitleOpt = None,
    description: DescriptionOpt = None,
    tag: TagOpt = None,
) -> None:
    """Capture a project into a new version (nothing is written when it did not change)."""
    state = _state(ctx)
    platform = state.connect()
    try:
        state.use_project(project_id)
        with state.vault() as vault, _Bar(state.err, "capturing") as bar:
            result = vault.capture(
                platform,
                project_id,
                title=title or "",
                description=description or "",
                tags=tag or (),
                progress=lambda update: bar.update(update.rows.get("items", 0), update.items_total),
            )
            bar.finish(result.rows.get("items", 0))
    finally:
        platform.close()
    _print_capture(state.out, result)


app.command("capture", hidden=True, help="Another name for create.")(create)


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
    rows = result.rows or _version_rows(version)
    out.print(_rows_table(rows))
    if result.manifest is not None:
        total = result.bytes_written + result.bytes_reused
        share = 100 * result.bytes_written / total if total else 0.0
        items = rows.get("items", 0)
        speed = f", {items / result.seconds:,.0f} items/s" if result.seconds > 0 else ""
        manifest = result.manifest
        out.print(
            f"  written       {_size(result.bytes_written)} of {_size(total)} ({share:.1f}%) in "
            f"{manifest.chunks_written:,} of {manifest.chunks_written + manifest.chunks_reused:,} "
            f"chunks; reused {_size(result.bytes_reused)} already stored",
            soft_wrap=True,
        )
        out.print(f"  took          {result.seconds:.2f} s{speed}", soft_wrap=True)


# --- versions, show, update -------------------------------------------------------------------


@app.command()
@_command
def versions(ctx: typer.Context, project_id: ProjectArg) -> None:
    """List a project's versions, oldest first."""
    state = _state(ctx)
    project = state.project(project_id)
    with state.vault() as vault:
        found = vault.catalog.list(project)
    if not found:
        state.out.print(
            Text(
                f"no versions of {project} yet; capture one with: labelvault create {project_id}",
                style="yellow",
            ),
            soft_wrap=True,
        )
        return
    table = Table(title=f"versions of {project}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("title")
    table.add_column("tags")
    table.add_column("items", justify="right")
    table.add_column("annotations", justify="right")
    table.add_column("rows", justify="right")
    for version in found:
        rows = _version_rows(version)
        table.add_row(
            str(version.number),
            version.id,
            _when(version.created_at),
            version.title,
            _tags(version.tags),
            f"{rows.get('items', 0):,}",
            f"{rows.get('annotations', 0):,}",
            f"{sum(rows.values()):,}",
        )
    state.out.print(table)


@app.command()
@_command
def show(ctx: typer.Context, project_id: ProjectArg, version: VersionArg) -> None:
    """Show one version: its record, its content hash and its tables."""
    state = _state(ctx)
    project = state.project(project_id)
    with state.vault() as vault:
        info = vault.version(project, _version_ref(version))
        manifest = vault.manifest(info)
    _print_version_info(state.out, info)
    state.out.print(f"  captured at      {_when(manifest.captured_at)}", soft_wrap=True)
    state.out.print(f"  format version   {manifest.format_version}", soft_wrap=True)
    state.out.print(f"  manifest         {info.manifest_key}", soft_wrap=True)
    state.out.print(_rows_table(manifest.row_counts, manifest))
    state.out.print(f"  total data       {_size(manifest.data_bytes)}", soft_wrap=True)


def _print_version_info(out: Console, info: VersionInfo) -> None:
    out.print(Text(f"version {info.number} of {info.project}", style="bold"), soft_wrap=True)
    lines = [
        ("id", info.id),
        ("created (UTC)", _when(info.created_at)),
        ("title", info.title),
        ("description", info.description),
        ("tags", _tags(info.tags)),
        ("content hash", info.content_hash),
        ("source updated", _when(info.source_updated_at)),
    ]
    if info.metadata_updated_at is not None:
        lines.append(("edited (UTC)", _when(info.metadata_updated_at)))
    for name, value in lines:
        out.print(f"  {name:<16} {value}", soft_wrap=True)


@app.command()
@_command
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
    state = _state(ctx)
    project = state.project(project_id)
    if clear_tags and tag:
        raise ConfigurationError("pass either --tag or --clear-tags, not both")
    tags: list[str] | None = [] if clear_tags else tag
    if title is None and description is None and tags is None:
        raise ConfigurationError("nothing to change: pass --title, --description, --tag …")
    with state.vault() as vault:
        ref = vault.version(project, _version_ref(version)).number
        info = vault.catalog.update(project, ref, title=title, description=description, tags=tags)
    state.out.print(Text(f"updated version {info.number}", style="bold green"))
    _print_version_info(state.out, info)


@app.command()
@_command
def projects(ctx: typer.Context) -> None:
    """List the projects of the configured server that have versions in the store."""
    state = _state(ctx)
    probe = state.project("_")
    with state.vault() as vault:
        found = vault.projects(probe.platform, probe.instance)
        table = Table(title=f"{probe.platform} projects on {probe.instance}", title_justify="left")
        table.add_column("project", justify="right")
        table.add_column("versions", justify="right")
        table.add_column("latest")
        table.add_column("created (UTC)")
        for project in found:
            listed = vault.catalog.list(project)
            latest = listed[-1] if listed else None
            table.add_row(
                project.project_id,
                str(len(listed)),
                str(latest.number) if latest else "",
                _when(latest.created_at) if latest else "",
            )
    if not found:
        state.out.print(Text(f"no versions of any project on {probe.instance}", style="yellow"))
        return
    state.out.print(table)


# --- diff ---------------------------------------------------------------------------------------


@app.command()
@_command
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
    state = _state(ctx)
    project = state.project(project_id)
    with state.vault() as vault:
        old_info, new_info, result = vault.diff(project, _version_ref(old), _version_ref(new))
    title = f"Changes from version {old_info.number} to version {new_info.number}"
    if markdown:
        sys.stdout.write(result.to_markdown(title=title))
        return
    _print_diff(state.out, title, result)


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
            _count(t.added, "green"),
            _count(t.removed, "red"),
            _count(t.changed, "yellow"),
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
                _count(counts.added, "green"),
                _count(counts.removed, "red"),
                _count(counts.changed, "yellow"),
            )
        out.print(classes)
    if result.is_empty:
        out.print(Text("no differences", style="green"))


def _count(value: int, style: str) -> Text:
    return Text(f"{value:,}", style=style if value else "")


# --- query --------------------------------------------------------------------------------------


@app.command()
@_command
def query(
    ctx: typer.Context,
    project_id: ProjectArg,
    sql: Annotated[
        str,
        typer.Argument(
            metavar="SQL",
            help="DuckDB SQL over the tables project, datasets, items, annotations, tags, users.",
        ),
    ],
    *,
    version: Annotated[
        str, typer.Option("--version", help="The version to query (default: the latest).")
    ] = "latest",
    output: Annotated[
        OutputFormat, typer.Option("--format", help="How to print the result.")
    ] = OutputFormat.TABLE,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Rows shown at most by --format table.")
    ] = DEFAULT_TABLE_ROWS,
) -> None:
    """Run SQL over one version (streamed; csv and json print every row)."""
    state = _state(ctx)
    project = state.project(project_id)
    with state.vault() as vault:
        try:
            reader = vault.query_reader(project, sql, _version_ref(version))
            if output is OutputFormat.TABLE:
                _print_query_table(state.out, reader, max_rows)
            elif output is OutputFormat.CSV:
                _write_csv(reader)
            else:
                _write_json(reader)
        except (duckdb.Error, pa.ArrowException) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _fail(
                f"the query failed: {first}; the tables are project, datasets, items, "
                "annotations, tags and users",
                1,
                state,
            )


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _print_query_table(out: Console, reader: pa.RecordBatchReader, max_rows: int) -> None:
    table = Table()
    for field in reader.schema:
        table.add_column(field.name, overflow="fold")
    shown = 0
    more = 0
    for batch in reader:
        if shown >= max_rows:
            more += batch.num_rows
            continue
        for row in batch.slice(0, max_rows - shown).to_pylist():
            table.add_row(*(_cell(value) for value in row.values()))
        more += max(0, batch.num_rows - (max_rows - shown))
        shown += min(batch.num_rows, max_rows - shown)
    out.print(table)
    note = f"{shown:,} row{'s' if shown != 1 else ''}"
    if more:
        note += f" shown, {more:,} more (use --format csv or --max-rows)"
    out.print(Text(note, style="dim"))


def _write_csv(reader: pa.RecordBatchReader) -> None:
    header = True
    for batch in reader:
        buffer = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_batches([batch], schema=reader.schema),
            buffer,
            write_options=pacsv.WriteOptions(include_header=header),
        )
        sys.stdout.write(buffer.getvalue().decode("utf-8"))
        header = False
    if header:  # no rows at all: still print the header
        buffer = io.BytesIO()
        pacsv.write_csv(reader.schema.empty_table(), buffer)
        sys.stdout.write(buffer.getvalue().decode("utf-8"))
    sys.stdout.flush()


def _write_json(reader: pa.RecordBatchReader) -> None:
    sys.stdout.write("[")
    first = True
    for batch in reader:
        for row in batch.to_pylist():
            sys.stdout.write("\n" if first else ",\n")
            sys.stdout.write(json.dumps(row, ensure_ascii=False, default=_cell))
            first = False
    sys.stdout.write("\n]\n" if not first else "]\n")
    sys.stdout.flush()


# --- restore ------------------------------------------------------------------------------------


@app.command()
@_command
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
) -> None:
    """Restore a version as a new project (the source project is never touched)."""
    state = _state(ctx)
    project = state.project(project_id)
    platform = state.connect()
    try:
        with state.vault() as vault:
            info = vault.version(project, _version_ref(version))
            state.restore_id = restore_id or secrets.token_hex(6)
            options = RestoreOptions(
                workspace_id=workspace,
                project_name=name,
                project_description=description,
                skip_missed_entities=skip_missed,
                allow_failures=allow_failures,
                datasets=tuple(dataset) if dataset else None,
                classes=tuple(class_name) if class_name else None,
            )
            report = _restore_with_progress(state, vault, platform, project, info, options=options)
    finally:
        platform.close()
    _print_restored(
        state.out,
        info,
        report.project,
        report.created,
        skipped=tuple(f"{i.table} {i.key}: {i.reason}" for i in report.skipped),
        failures=(
            *(f"{i.table} {i.key}: {i.reason}" for i in report.failures),
            *report.warnings,
        ),
        resumed=report.resumed,
        restore_id=state.restore_id,
        filtered_out=report.filtered_out,
    )


def _restore_with_progress(
    state: _State,
    vault: Vault,
    target: Platform,
    project: ProjectRef,
    info: VersionInfo,
    *,
    options: RestoreOptions,
) -> RestoreReport:
    total = _version_rows(info).get("items") if not options.datasets else None
    with _Bar(state.err, "restoring") as bar:
        assert state.restore_id is not None
        _, result = vault.restore(
            target,
            project,
            info.number,
            restore_id=state.restore_id,
            options=options,
            progress=lambda created: bar.update(created.get("items", 0), total),
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
    out.print(_rows_table({t: n for t, n in created.items() if n or t != "users"}))
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


# --- expire -------------------------------------------------------------------------------------


@app.command()
@_command
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
    state = _state(ctx)
    project = state.project(project_id)
    if keep_last is None and keep_younger_than is None:
        raise ConfigurationError(
            "say what to keep: --keep-last N and/or --keep-younger-than DAYS "
            "(the latest version is always kept)"
        )
    if keep_younger_than is not None and keep_younger_than <= 0:
        raise ConfigurationError("--keep-younger-than takes a positive number of days")
    policy = RetentionPolicy(
        keep_last=keep_last,
        keep_tagged=keep_tagged,
        keep_younger_than=(
            timedelta(days=keep_younger_than) if keep_younger_than is not None else None
        ),
    )
    with state.vault() as vault:
        report = vault.expire(project, policy, dry_run=not apply)
    _print_expiry(state.out, report)


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
            _when(version.created_at),
            _tags(version.tags),
            Text("keep", style="green") if decision.keep else Text("expire", style="red"),
            "; ".join(decision.reasons),
        )
    out.print(table)
    gone = report.plan.expired
    verb = "would delete" if report.dry_run else "deleted"
    out.print(
        f"{verb} {_versions_phrase([v.number for v in gone])} and "
        f"{_plural(report.deleted_count, 'object')} ({_size(report.deleted_bytes)}): "
        f"{report.freed.count:,} used only by those versions, "
        f"{report.orphans.count:,} left by failed captures",
        soft_wrap=True,
    )
    out.print(
        f"keeps {_versions_phrase([v.number for v in report.plan.kept])} and "
        f"{_plural(report.live.count, 'object')} ({_size(report.live.bytes)})"
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


# --- webhooks ---------------------------------------------------------------------------------

webhooks_app = typer.Typer(
    help="The bridge from platform webhooks to labelvault.project.changed Prefect events.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")

SecretOpt = Annotated[
    str,
    typer.Option(
        "--secret",
        envvar="LABELVAULT_WEBHOOK_SECRET",
        help="The shared secret webhooks must send in X-Labelvault-Secret (16+ characters).",
        show_default=False,
    ),
]


@webhooks_app.command("serve")
@_command
def webhooks_serve(
    ctx: typer.Context,
    *,
    secret: SecretOpt,
    prefect_api_url: Annotated[
        str,
        typer.Option(
            "--prefect-api-url",
            envvar="PREFECT_API_URL",
            help="Where events go.",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8765,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Larger webhook bodies get 413.")
    ] = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Receive webhooks and emit labelvault.project.changed events (until interrupted).

    Label Studio: point a webhook at /webhooks/labelstudio/<connection> (see `webhooks
    register`). Anything else can POST to /webhooks/<connection>/<project_id>.
    """
    serve(
        prefect_api_url=prefect_api_url,
        secret=secret,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
    )


@webhooks_app.command("register")
@_command
def webhooks_register(
    ctx: typer.Context,
    project_id: ProjectArg,
    bridge_url: Annotated[
        str, typer.Argument(help="The bridge's base URL, e.g. http://127.0.0.1:8765.")
    ],
    *,
    secret: SecretOpt,
    connection: Annotated[
        str,
        typer.Option("--connection", help="The connection (block) name the events carry."),
    ] = "labelstudio",
) -> None:
    """Make a Label Studio project send its annotation changes to the bridge (idempotent)."""
    state = _state(ctx)
    platform = state.connect()
    try:
        register = getattr(platform, "register_webhook", None)
        if register is None:
            raise ConfigurationError(
                f"{state.platform} has no webhooks labelvault can register; post to the bridge's "
                "/webhooks/<connection>/<project_id> from your own automation instead"
            )
        hook = register(
            project_id,
            f"{bridge_url.rstrip('/')}/webhooks/labelstudio/{connection}",
            headers={SECRET_HEADER: secret},
        )
    finally:
        platform.close()
    state.out.print(
        f"webhook {hook.id} of project {project_id} → {hook.url} ({', '.join(hook.actions)})",
        soft_wrap=True,
    )


def run() -> None:
    """Entry point for ``python -m labelvault``."""
    app(prog_name="labelvault")
