"""Where events go: Prefect's events API, checked at start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from labelvault.errors import (
    ConfigurationError,
)

if TYPE_CHECKING:
    pass
from labelvault.webhooks.limits import PREFECT_CLOUD_PATH


def check_prefect_api_url(url: str) -> str:
    """``url`` without a trailing slash if it can be Prefect's API, else a ConfigurationError.

    Prefect's API lives at ``http(s)://HOST[:PORT]/api`` (a server) or
    ``https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>`` (Cloud); events go to
    ``<url>/events``.
    """
    fix = "set PREFECT_API_URL or pass --prefect-api-url, e.g. http://127.0.0.1:4200/api"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not has_host_and_port(parts):
        raise ConfigurationError(
            f"the Prefect API URL {shown_url(url)!r} is not an http(s) URL with a host; {fix}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"the Prefect API URL must not carry credentials; {fix} (without user:password@)"
        )
    path = parts.path.rstrip("/")
    if (
        parts.query
        or parts.fragment
        or not (path.endswith("/api") or PREFECT_CLOUD_PATH.fullmatch(path))
    ):
        raise ConfigurationError(
            f"the Prefect API URL {shown_url(url)!r} does not end with /api; {fix}"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def has_host_and_port(parts: SplitResult) -> bool:
    try:
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return False
    return bool(parts.hostname)


def shown_url(url: str) -> str:
    """``url`` cut short and without query or user info, for an error message."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    shown = (
        f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url.split("?", maxsplit=1)[0]
    )
    return shown[:200]


class EventSink:
    """Posts events to a Prefect server, retrying transport errors and 5xx answers."""

    def __init__(
        self,
        api_url: str,
        *,
        attempts: int = 5,
        transport: httpx.BaseTransport | None = None,
        wait_multiplier: float = 0.2,
    ) -> None:
        base_url = check_prefect_api_url(api_url)
        self.client = httpx.Client(base_url=base_url, timeout=10.0, transport=transport)
        self.attempts = attempts
        self.wait_multiplier = wait_multiplier

    def send(self, event: dict[str, Any]) -> None:
        """Deliver one event or raise after the last attempt."""

        @retry(
            retry=retry_if_exception_type(httpx.HTTPError),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.wait_multiplier, max=5),
            reraise=True,
        )
        def post() -> None:
            response = self.client.post("/events", json=[event])
            response.raise_for_status()

        post()


# --- connections and projects ------------------------------------------------------------------
