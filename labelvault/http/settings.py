"""Request settings: retries, backoff, timeouts and pool limits, as one frozen value object.

The defaults follow Encord's ``RequestsSettings``: ``max_retries=3``, ``backoff_factor=1.5``
(the n-th retry sleeps ``backoff_factor * 2**(n-1)`` seconds plus jitter),
``connection_retries=3`` and 180 s connect/read/write timeouts. Every field can be set from the
environment as ``LABELVAULT_HTTP_<FIELD>`` (for example ``LABELVAULT_HTTP_MAX_RETRIES=5``).
"""

from __future__ import annotations

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RequestSettings"]


class RequestSettings(BaseSettings):
    """How HTTP calls to a platform are made and retried (env prefix ``LABELVAULT_HTTP_``)."""

    model_config = SettingsConfigDict(env_prefix="LABELVAULT_HTTP_", frozen=True, extra="ignore")

    max_retries: int = Field(3, ge=0, description="retries after 408/429/5xx answers")
    backoff_factor: float = Field(1.5, ge=0, description="retry n sleeps factor * 2**(n-1) s")
    backoff_jitter: float = Field(0.5, ge=0, description="up to this many seconds added at random")
    backoff_max: float = Field(120.0, ge=0, description="cap of one backoff sleep, seconds")
    connection_retries: int = Field(3, ge=0, description="retries after transport errors")
    retry_after_min: float = Field(
        1.0, ge=0, description="floor for a server's Retry-After, so 0 cannot burn every attempt"
    )
    retry_after_max: float = Field(120.0, ge=0, description="cap for a server's Retry-After")
    max_elapsed: float = Field(
        900.0, gt=0, description="give up retrying once a call (sleeps included) would pass this"
    )
    connect_timeout: float = Field(180.0, gt=0)
    read_timeout: float = Field(180.0, gt=0)
    write_timeout: float = Field(180.0, gt=0)
    pool_timeout: float = Field(180.0, gt=0)
    max_connections: int = Field(16, ge=1)
    # As many as the pool holds: a connection closed as surplus keep-alive while requests wait
    # is one the sync pool may have handed to one of them (encode/httpcore#1110).
    max_keepalive_connections: int = Field(16, ge=0)
    keepalive_expiry: float = Field(30.0, ge=0)

    def timeout(self) -> httpx.Timeout:
        """The httpx timeout these settings describe."""
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.pool_timeout,
        )

    def limits(self) -> httpx.Limits:
        """The httpx connection-pool limits these settings describe."""
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )
