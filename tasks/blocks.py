"""Prefect blocks that hold labelvault's credentials and storage settings.

Deployments name blocks in their parameters; the flows load them and hand plain values to the
library. ``deployments/setup.py`` creates them from environment variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from labelvault.errors import ConfigurationError
from labelvault.settings import PlatformConnection, StoreSettings

_B = TypeVar("_B", bound=Block)


class PlatformConnectionBlock(Block):
    """A platform server and the API token to use on it."""

    _block_type_name = "Labelvault Platform Connection"
    _block_type_slug = "labelvault-platform-connection"
    _description = "An annotation platform server (Supervisely, Label Studio) and its token."

    platform: Literal["supervisely", "labelstudio"] = Field(description="Platform kind.")
    server_url: str = Field(description="Base URL of the platform's server.")
    token: SecretStr = Field(description="API token.")

    def connection(self) -> PlatformConnection:
        """The library's value object for this block."""
        return PlatformConnection(
            platform=self.platform, server_url=self.server_url, token=self.token
        )


class StoreBlock(Block):
    """Where labelvault keeps versions: a folder or an S3 bucket."""

    _block_type_name = "Labelvault Store"
    _block_type_slug = "labelvault-store"
    _description = "The object store for labelvault's versions catalog and snapshots."

    url: str = Field(description="A folder, file:///…, or s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (non-AWS).")
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"

    def settings(self) -> StoreSettings:
        """The library's settings object for this block."""
        return StoreSettings(
            url=self.url,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
            s3_access_key=self.s3_access_key,
            s3_secret_key=self.s3_secret_key,
            s3_addressing_style=self.s3_addressing_style,
        )


#: A connection parameter: a saved block picked in the run form, or its name.
ConnectionChoice = PlatformConnectionBlock | str
#: A store parameter: a saved block picked in the run form, or its name.
StoreChoice = StoreBlock | str


def load_connection(choice: ConnectionChoice) -> PlatformConnection:
    """The platform connection a run parameter names or holds."""
    block = (
        choice
        if isinstance(choice, PlatformConnectionBlock)
        else _load(PlatformConnectionBlock, choice)
    )
    return block.connection()


def load_store(choice: StoreChoice) -> StoreSettings:
    """The store settings a run parameter names or holds."""
    block = choice if isinstance(choice, StoreBlock) else _load(StoreBlock, choice)
    return block.settings()


def choice_name(choice: object, default: str = "?") -> str:
    """How a run name shows a block parameter: the block's name (or the name given)."""
    if isinstance(choice, str):
        return choice
    if isinstance(choice, Block):
        return choice._block_document_name or default
    if isinstance(choice, dict) and isinstance(choice.get("$ref"), dict):
        try:
            block = cast(Block, Block.load_from_ref(choice["$ref"]))
        except (ValueError, RuntimeError):
            return default
        return block._block_document_name or default
    return default


def _load(kind: type[_B], name: str) -> _B:
    try:
        return cast(_B, kind.load(name))
    except ValueError as exc:
        raise ConfigurationError(
            f"no saved {kind._block_type_name} block named {name!r}: pick one on the "
            "run form or create it on the Blocks page (make deploy saves the defaults)"
        ) from exc


def project_label(parameters: Mapping[str, Any]) -> str:
    """``<connection>/<project id>`` from a run's parameters, for its name."""
    connection = choice_name(parameters.get("connection", "supervisely"))
    return f"{connection}/{parameters.get('project_id')}"
