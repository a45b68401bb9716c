"""Prefect blocks that hold labelvault's credentials and storage settings.

Deployments name blocks in their parameters; the flows load them and hand plain values to the
library. ``deployments/setup.py`` creates them from environment variables.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from labelvault.settings import PlatformConnection, StoreSettings


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
