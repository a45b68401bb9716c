"""Settings from the environment (prefix ``LABELVAULT_``) and flags, as small value objects.

The library itself receives plain values; these classes only gather them, and
:mod:`labelvault.connect` opens the store or platform they name. In Prefect
deployments the same values come from blocks (see ``tasks/blocks.py``).

=================================  =========================================================
variable                           meaning
=================================  =========================================================
``LABELVAULT_STORE_URL``           a folder (default ``./labelvault-store``), ``file:///…``,
                                   ``s3://bucket/prefix`` or ``memory://name``
``LABELVAULT_STORE_S3_*``          ``ENDPOINT_URL``, ``REGION``, ``ACCESS_KEY``,
                                   ``SECRET_KEY``, ``ADDRESSING_STYLE`` for ``s3://`` stores
``LABELVAULT_<PLATFORM>_URL``      the platform's server, e.g. ``LABELVAULT_SUPERVISELY_URL``
``LABELVAULT_<PLATFORM>_TOKEN``    its API token
=================================  =========================================================
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from labelvault.errors import ConfigurationError
from labelvault.models import ProjectRef, instance_from_url

__all__ = ["PlatformConnection", "PlatformEnvironment", "StoreSettings"]


class StoreSettings(BaseSettings):
    """Where versions live."""

    model_config = SettingsConfigDict(env_prefix="LABELVAULT_STORE_", extra="ignore")

    url: str = "labelvault-store"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"


class PlatformEnvironment(BaseSettings):
    """``LABELVAULT_<PLATFORM>_URL`` / ``_TOKEN``, read by pydantic-settings with the platform's
    prefix (``PlatformEnvironment(_env_prefix="LABELVAULT_SUPERVISELY_")``)."""

    model_config = SettingsConfigDict(extra="ignore")

    url: str | None = None
    token: SecretStr | None = None


class PlatformConnection(BaseModel):
    """Which platform server to talk to, and with which token."""

    model_config = ConfigDict(frozen=True)

    platform: str
    server_url: str
    token: SecretStr

    @classmethod
    def from_env(
        cls, platform: str, *, server_url: str | None = None, token: str | None = None
    ) -> PlatformConnection:
        """Fill what the caller did not pass from ``LABELVAULT_<PLATFORM>_URL`` / ``_TOKEN``."""
        prefix = f"LABELVAULT_{platform.upper()}_"
        env = PlatformEnvironment(_env_prefix=prefix)
        url = server_url or env.url
        secret = token or (env.token.get_secret_value() if env.token else None)
        missing = [
            name for name, value in ((f"{prefix}URL", url), (f"{prefix}TOKEN", secret)) if not value
        ]
        if missing or url is None or secret is None:
            raise ConfigurationError(
                f"no {platform} connection: set {' and '.join(missing)} "
                "(or pass --server-url / --token)"
            )
        return cls(platform=platform, server_url=url, token=SecretStr(secret))

    def project_ref(self, project_id: str) -> ProjectRef:
        """The catalog identity of ``project_id`` on this server (no token needed)."""
        return ProjectRef(
            platform=self.platform,
            instance=instance_from_url(self.server_url),
            project_id=project_id,
        )
