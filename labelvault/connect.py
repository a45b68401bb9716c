"""Open what the settings name: the object store and the platform adapter.

This sits above the core (settings values), the storage and the platforms, so that the core
imports neither.
"""

from __future__ import annotations

from labelvault.platforms import get_platform_factory
from labelvault.platforms.base import Platform
from labelvault.settings import PlatformConnection, StoreSettings
from labelvault.storage import ObjectStore, open_store

__all__ = ["open_platform", "open_store_from"]


def open_store_from(settings: StoreSettings) -> ObjectStore:
    """Open the configured store."""
    if not settings.url.startswith("s3://"):
        return open_store(settings.url)
    secret = settings.s3_secret_key
    return open_store(
        settings.url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key=settings.s3_access_key,
        secret_key=secret.get_secret_value() if secret else None,
        addressing_style=settings.s3_addressing_style,
    )


def open_platform(connection: PlatformConnection) -> Platform:
    """Connect to the platform through its registered adapter."""
    factory = get_platform_factory(connection.platform)
    return factory(connection.server_url, connection.token.get_secret_value())
