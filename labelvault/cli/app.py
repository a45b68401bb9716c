"""The ``labelvault`` typer app: the global options, the state they make, the entry point.

Global options say where versions live (``--store``, env ``LABELVAULT_STORE_URL``) and which
platform server a project lives on (``--platform``, ``--server-url``, ``--token``; the last two
default to ``LABELVAULT_<PLATFORM>_URL`` / ``_TOKEN``). ``--json`` makes every command answer
with one JSON document on stdout. The commands live in the modules next to this one, one per
group; they register on :data:`app` when the package is imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated, cast

import typer
from rich.console import Console

from labelvault.cli import inputs
from labelvault.cli.boundary import BoundaryGroup, env_secrets
from labelvault.cli.render import console
from labelvault.connect import open_platform, open_store_from
from labelvault.errors import ConfigurationError
from labelvault.models import ProjectRef
from labelvault.platforms.base import Platform, instance_from_url
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.vault import Vault

__all__ = [
    "DescriptionOpt",
    "ProjectArg",
    "State",
    "TagOpt",
    "TitleOpt",
    "VersionArg",
    "app",
    "main",
    "run",
    "state",
]

app = typer.Typer(
    name="labelvault",
    help="Versions of annotation projects: capture, list, diff, query, restore and expire.",
    cls=BoundaryGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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


@dataclass
class State:
    """The global options of one invocation, and what the command learned for error hints."""

    store_url: str
    platform: str
    server_url: str | None
    token: str | None
    out: Console
    err: Console
    json: bool = False
    #: Where ``store_url`` / ``platform`` came from: the flag or the environment variable.
    store_source: str = "--store"
    platform_source: str = "--platform"
    project_id: str | None = None
    restore_id: str | None = None

    def env(self, suffix: str) -> str:
        """``LABELVAULT_<PLATFORM>_<SUFFIX>``."""
        return f"LABELVAULT_{self.platform.upper()}_{suffix}"

    def secret_values(self) -> list[str]:
        """Every secret this invocation may know, to be kept out of any output."""
        return [*([self.token] if self.token else []), *env_secrets()]

    def check_platform(self) -> None:
        """Fail clearly on a platform name no adapter is registered for."""
        from labelvault.platforms import get_platform_factory  # noqa: PLC0415 - registers all

        try:
            get_platform_factory(self.platform)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{exc.message}; set {self.platform_source} to one of them"
            ) from None

    def resolved_server_url(self) -> str | None:
        """``--server-url`` or ``LABELVAULT_<PLATFORM>_URL``, checked; ``None`` if neither."""
        if self.server_url:
            return inputs.server_url(self.server_url, "--server-url")
        found = os.environ.get(self.env("URL"))
        return inputs.server_url(found, self.env("URL")) if found else None

    def project(self, project_id: str) -> ProjectRef:
        """The catalog identity of ``project_id`` on the configured server (no token needed)."""
        self.check_platform()
        self.use_project(project_id)
        url = self.resolved_server_url()
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
            raise ConfigurationError(
                "the project id is empty; pass PROJECT_ID, the project's id on the platform"
            )
        self.project_id = project_id

    def connect(self) -> Platform:
        """Open the platform (needs the server's URL and a token)."""
        self.check_platform()
        connection = PlatformConnection.from_env(
            self.platform, server_url=self.resolved_server_url(), token=self.token
        )
        return open_platform(connection)

    @contextmanager
    def vault(self) -> Iterator[Vault]:
        """The store and its catalog, closed afterwards."""
        store = open_store_from(
            StoreSettings(url=inputs.store_url(self.store_url, self.store_source))
        )
        try:
            yield Vault(store)
        finally:
            store.close()


def state(ctx: typer.Context) -> State:
    """The state the global options made."""
    return cast(State, ctx.find_root().obj)


def _print_version(value: bool) -> None:
    if value:
        try:
            number = package_version("labelvault")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            number = "unknown"
        typer.echo(f"labelvault {number}")
        raise typer.Exit()


def _source(ctx: typer.Context, name: str, flag: str, variable: str) -> str:
    found = ctx.get_parameter_source(name)
    return variable if found is not None and found.name == "ENVIRONMENT" else flag


@app.callback()
def main(
    ctx: typer.Context,
    *,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            envvar="LABELVAULT_STORE_URL",
            help="Where versions live: a folder, file:///path or s3://bucket/prefix.",
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
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Answer with one JSON document on stdout (errors too)."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Versions of annotation projects: capture, list, diff, query, restore and expire."""
    ctx.obj = State(
        store_url=store,
        platform=platform.strip().lower(),
        server_url=server_url,
        token=token,
        out=console(),
        err=console(stderr=True),
        json=json_output,
        store_source=_source(ctx, "store", "--store", "LABELVAULT_STORE_URL"),
        platform_source=_source(ctx, "platform", "--platform", "LABELVAULT_PLATFORM"),
    )


def run() -> None:
    """Entry point for ``python -m labelvault``."""
    app(prog_name="labelvault")
