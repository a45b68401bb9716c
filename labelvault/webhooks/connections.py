"""The platform connections the bridge knows, and whether a project exists on one."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import SecretStr

from labelvault.errors import (
    ConfigurationError,
    PlatformNotFound,
    UnsupportedProject,
)
from labelvault.settings import PlatformConnection

if TYPE_CHECKING:
    pass


def connections_from_env(environ: Mapping[str, str] | None = None) -> dict[str, PlatformConnection]:
    """One connection per platform whose ``LABELVAULT_<PLATFORM>_URL`` and ``_TOKEN`` are set,
    named after the platform (as ``deployments/setup.py`` names its blocks)."""
    from labelvault.platforms import PLATFORMS  # noqa: PLC0415 - importing registers them all

    env = os.environ if environ is None else environ
    found: dict[str, PlatformConnection] = {}
    for platform in sorted(PLATFORMS):
        url_name, token_name = (
            f"LABELVAULT_{platform.upper()}_{part}" for part in ("URL", "TOKEN")
        )
        url, token = env.get(url_name), env.get(token_name)
        if not url and not token:
            continue
        if not url or not token:
            missing = url_name if not url else token_name
            raise ConfigurationError(
                f"{missing} is not set; the bridge needs both {url_name} and {token_name} "
                f"to check {platform} projects"
            )
        found[platform] = PlatformConnection(
            platform=platform, server_url=url, token=SecretStr(token)
        )
    if not found:
        raise ConfigurationError(
            "the bridge knows no connections: set LABELVAULT_<PLATFORM>_URL and _TOKEN for each "
            "platform that sends webhooks (e.g. LABELVAULT_LABELSTUDIO_URL)"
        )
    return found


def platform_project_exists(connection: PlatformConnection, project_id: str) -> bool:
    """Ask the connection's platform whether it has ``project_id`` (a project labelvault can
    version: a preview of a version is not one); other platform errors propagate."""
    from labelvault.platforms import get_platform_factory  # noqa: PLC0415 - registers them all
    from labelvault.preview import is_preview_title  # noqa: PLC0415 - only the bridge needs it

    factory = get_platform_factory(connection.platform)
    platform = factory(connection.server_url, connection.token.get_secret_value())
    try:
        info = platform.get_project(project_id)
    except (PlatformNotFound, UnsupportedProject):
        return False
    finally:
        platform.close()
    return not is_preview_title(info.name)


# --- limits ----------------------------------------------------------------------------------
