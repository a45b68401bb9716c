"""Serving the bridge with uvicorn; the access log never shows a query string or the secret."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from starlette.applications import Starlette

from labelvault.settings import PlatformConnection
from labelvault.webhooks.app import create_app
from labelvault.webhooks.connections import connections_from_env
from labelvault.webhooks.limits import (
    DEFAULT_DEDUP_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PROJECT_CACHE_SECONDS,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_PER_SECOND,
    ProjectExists,
)
from labelvault.webhooks.sink import EventSink

if TYPE_CHECKING:
    import uvicorn


class AccessLogScrubber(logging.Filter):
    """Keeps query strings and the given secrets out of uvicorn's access log lines."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [value for value in secrets if value]

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the request path of an access record (client, method, path, version,
        status); other records pass unchanged."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            for value in self.secrets:
                path = path.replace(value, "***")
            record.args = (args[0], args[1], path, args[3], args[4])
        return True


def uvicorn_config(
    app: Starlette, *, host: str, port: int, secret: str, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn's settings for the bridge: its access log never shows a query or the secret."""
    import uvicorn  # noqa: PLC0415 - only serving needs it

    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["filters"] = {"scrub": {"()": AccessLogScrubber, "secrets": (secret,)}}
    log_config["loggers"]["uvicorn.access"]["filters"] = ["scrub"]
    log_config["handlers"]["access"]["filters"] = ["scrub"]
    log_config["loggers"][__name__] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=log_config)


def serve(
    *,
    prefect_api_url: str,
    secret: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    connections: Mapping[str, PlatformConnection] | None = None,
    project_exists: ProjectExists | None = None,
    dedup_seconds: float = DEFAULT_DEDUP_SECONDS,
    rate_per_second: float = DEFAULT_RATE_PER_SECOND,
    rate_burst: int = DEFAULT_RATE_BURST,
    project_cache_seconds: float = DEFAULT_PROJECT_CACHE_SECONDS,
) -> None:
    """Run the bridge until interrupted; every setting is checked before the port is bound.

    ``connections`` default to :func:`connections_from_env`.
    """
    import uvicorn  # noqa: PLC0415 - only the serving command needs it

    app = create_app(
        EventSink(prefect_api_url),
        secret=secret,
        max_body_bytes=max_body_bytes,
        connections=connections_from_env() if connections is None else connections,
        project_exists=project_exists,
        dedup_seconds=dedup_seconds,
        rate_per_second=rate_per_second,
        rate_burst=rate_burst,
        project_cache_seconds=project_cache_seconds,
    )
    uvicorn.Server(uvicorn_config(app, host=host, port=port, secret=secret)).run()
