"""The event bridge: platform webhooks in, ``labelvault.project.changed`` Prefect events out.

Label Studio sends a webhook per annotation change; the bridge turns each into an event on the
project's resource and posts it to Prefect's ``/api/events`` with retries (``emit_event`` is
fire-and-forget and would lose events while the server is away). The ``version-on-change``
deployment reacts to those events.

Every request must carry the shared secret in the ``X-Labelvault-Secret`` header (Label Studio
sends it as a webhook header, see ``LabelStudioPlatform.register_webhook``). What the bridge
accepts is bounded, and each refusal is a 4xx with a one-line JSON ``{"error": …}``:

=====  =====================================================================================
400    a credential in the query string (never logged); a body that is not a JSON object;
       a name that cannot become a resource id
401    missing or wrong secret
404    an unknown connection, or a project the platform does not know
413    a body over ``max_body_bytes``
415    a body that is not JSON (``application/json``, ``application/*+json``; UTF-8)
422    an action, project id or connection name over :data:`~labelvault.events.MAX_FIELD_CHARS`
429    more than the per-source token bucket allows (source = client address + connection);
       ``Retry-After`` says when to come back
=====  =====================================================================================

A second change to the same project within ``dedup_seconds`` of an emitted event emits
nothing and answers 202 with that event's id (``"duplicate": true``); the flow waits for the
project to be quiet before capturing, so nothing is lost.

Connections are the platform servers the bridge knows, by name; ``serve`` learns them the way
``deployments/setup.py`` names its blocks: ``LABELVAULT_<PLATFORM>_URL`` and ``_TOKEN`` make a
connection named after the platform.

Routes:

- ``POST /webhooks/labelstudio/<connection>``: a Label Studio webhook body
  (``{"action": …, "project": {"id": …}, …}``);
- ``POST /webhooks/<connection>/<project_id>``: any platform, body optional;
- ``GET /health``.

Run it with ``labelvault webhooks serve`` (``PREFECT_API_URL`` and ``LABELVAULT_WEBHOOK_SECRET``
set). It talks to Prefect over HTTP only, so the library still never imports prefect. The access
log never shows query strings, and the secret is masked wherever it would appear.
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlsplit

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from labelvault.errors import (
    ConfigurationError,
    LabelvaultError,
    PlatformNotFound,
    UnsupportedProject,
)
from labelvault.events import MAX_FIELD_CHARS, project_changed_event, resource_id
from labelvault.settings import PlatformConnection

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "DEFAULT_DEDUP_SECONDS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PROJECT_CACHE_SECONDS",
    "DEFAULT_RATE_BURST",
    "DEFAULT_RATE_PER_SECOND",
    "SECRET_HEADER",
    "AccessLogScrubber",
    "EventSink",
    "ProjectExists",
    "check_prefect_api_url",
    "connections_from_env",
    "create_app",
    "platform_project_exists",
    "serve",
    "uvicorn_config",
]

#: The header that carries the shared secret.
SECRET_HEADER: Final = "X-Labelvault-Secret"
#: Webhook bodies larger than this are refused with 413 (annotation events are a few KiB).
DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
#: A project's second change within this many seconds emits no second event.
DEFAULT_DEDUP_SECONDS: Final = 5.0
#: Tokens a source (client address + connection) earns per second...
DEFAULT_RATE_PER_SECOND: Final = 10.0
#: ... and how many it may spend at once (a burst of webhooks after a bulk edit).
DEFAULT_RATE_BURST: Final = 50
#: How long an answer of the platform about a project's existence is reused.
DEFAULT_PROJECT_CACHE_SECONDS: Final = 60.0
_MIN_SECRET_LENGTH: Final = 16
#: Rate buckets, dedup entries and project answers kept at most (oldest go first).
_MAX_ENTRIES: Final = 10_000
#: Query parameter names (lowercased) that look like credentials.
_CREDENTIAL_NAME = re.compile(r"secret|token|passw|pwd|key|auth|signature|credential|session")
_PREFECT_CLOUD_PATH = re.compile(r"/api/accounts/[^/]+/workspaces/[^/]+")

#: Asks whether ``project_id`` exists on ``connection``'s platform (may block; run in a thread).
ProjectExists = Callable[[PlatformConnection, str], bool]

_log = logging.getLogger(__name__)


def check_prefect_api_url(url: str) -> str:
    """``url`` without a trailing slash if it can be Prefect's API, else a ConfigurationError.

    Prefect's API lives at ``http(s)://HOST[:PORT]/api`` (a server) or
    ``https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>`` (Cloud); events go to
    ``<url>/events``.
    """
    fix = "set PREFECT_API_URL or pass --prefect-api-url, e.g. http://127.0.0.1:4200/api"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not _has_host_and_port(parts):
        raise ConfigurationError(
            f"the Prefect API URL {_shown_url(url)!r} is not an http(s) URL with a host; {fix}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"the Prefect API URL must not carry credentials; {fix} (without user:password@)"
        )
    path = parts.path.rstrip("/")
    if (
        parts.query
        or parts.fragment
        or not (path.endswith("/api") or _PREFECT_CLOUD_PATH.fullmatch(path))
    ):
        raise ConfigurationError(
            f"the Prefect API URL {_shown_url(url)!r} does not end with /api; {fix}"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def _has_host_and_port(parts: SplitResult) -> bool:
    try:
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return False
    return bool(parts.hostname)


def _shown_url(url: str) -> str:
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


class _TokenBuckets:
    """A token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def take(self, key: tuple[str, str]) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        now = self.clock()
        tokens, then = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self.buckets[key] = (tokens, now)
        while len(self.buckets) > _MAX_ENTRIES:
            self.buckets.popitem(last=False)
        return wait


@dataclass(frozen=True)
class _Emitted:
    event_id: str
    resource: Mapping[str, Any]


_K = TypeVar("_K")
_V = TypeVar("_V")


class _Expiring(Generic[_K, _V]):
    """A bounded map whose entries expire ``ttl`` seconds after they were put."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self.entries: OrderedDict[_K, tuple[float, _V]] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        found = self.entries.get(key)
        if found is None:
            return None
        if self.clock() >= found[0]:
            del self.entries[key]
            return None
        return found[1]

    def put(self, key: _K, value: _V) -> None:
        self.entries.pop(key, None)
        self.entries[key] = (self.clock() + self.ttl, value)
        while len(self.entries) > _MAX_ENTRIES:
            self.entries.popitem(last=False)


# --- the application -------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message}, self.status, headers=self.headers)


def _credential_in_query(query: bytes, secret: str) -> bool:
    """Whether the query string names a credential or carries the secret."""
    text = query.decode("latin-1")
    if secret in unquote_plus(text):
        return True
    return any(
        _CREDENTIAL_NAME.search(name.lower()) for name, _ in parse_qsl(text, keep_blank_values=True)
    )


class _RefuseQuerySecrets:
    """ASGI middleware: 400 for any request with a credential in its query string."""

    def __init__(self, app: ASGIApp, *, secret: str) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _credential_in_query(scope["query_string"], self.secret):
            response = JSONResponse(
                {
                    "error": "credentials do not belong in the query string; "
                    f"send the secret in the {SECRET_HEADER} header"
                },
                400,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_json(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, in UTF-8 if a charset is named."""
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    kind, _, subtype = media.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _bounded(what: str, value: str) -> str:
    if len(value) > MAX_FIELD_CHARS:
        raise _Refused(
            422, f"the {what} is {len(value)} characters long; at most {MAX_FIELD_CHARS} allowed"
        )
    return value


class _Bridge:
    """The request handlers and the state they share (buckets, dedup window, project cache)."""

    def __init__(
        self,
        sink: EventSink,
        *,
        secret: str,
        max_body_bytes: int,
        connections: Mapping[str, PlatformConnection] | None,
        project_exists: ProjectExists,
        dedup_seconds: float,
        rate_per_second: float,
        rate_burst: int,
        project_cache_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.sink = sink
        self.expected = secret.encode()
        self.max_body_bytes = max_body_bytes
        self.known = dict(connections) if connections is not None else None
        self.exists = project_exists
        self.clock = clock
        self.buckets = _TokenBuckets(rate_per_second, rate_burst, clock)
        self.emitted: _Expiring[tuple[str, str], _Emitted] = _Expiring(dedup_seconds, clock)
        self.projects: _Expiring[tuple[str, str], bool] = _Expiring(project_cache_seconds, clock)

    def authorize(self, request: Request) -> None:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.expected):
            raise _Refused(401, f"missing or wrong {SECRET_HEADER} header")

    def admit(self, request: Request, name: str, platform: str | None) -> None:
        """Bounds and form of the connection name, 404 for an unknown one, then the rate of
        the source (client address + connection)."""
        _bounded("connection name", name)
        try:
            resource_id(name, "0")
        except ConfigurationError as exc:
            raise _Refused(400, exc.message) from None
        if self.known is not None:
            found = self.known.get(name)
            if found is None or (platform is not None and found.platform != platform):
                kind = f"{platform} connection" if platform else "connection"
                names = ", ".join(sorted(self.known)) or "(none)"
                raise _Refused(404, f"no {kind} named {name!r}; known connections: {names}")
        client = request.client.host if request.client else "unknown"
        wait = self.buckets.take((client, name))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise _Refused(
                429,
                f"too many webhooks from {client} for {name!r}; retry in {retry_after} s",
                {"Retry-After": str(retry_after)},
            )

    async def read(self, request: Request) -> dict[str, Any]:
        """The JSON object in the body (``{}`` for none), bounded in size."""
        limit = self.max_body_bytes
        content_type = request.headers.get("content-type")
        if content_type is not None and not _is_json(content_type):
            raise _Refused(415, "the body must be JSON (Content-Type: application/json, UTF-8)")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(413, f"body larger than {limit} bytes")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise _Refused(413, f"body larger than {limit} bytes")
        if not body:
            return {}
        if content_type is None:
            raise _Refused(415, "a body needs Content-Type: application/json")
        try:
            value = json.loads(body)
        except ValueError:
            raise _Refused(400, "the body is not JSON") from None
        if not isinstance(value, dict):
            raise _Refused(400, "the body is not a JSON object")
        return value

    async def check_project(self, name: str, project_id: str) -> None:
        """404 unless the platform has the project (answers are cached)."""
        if self.known is None:
            return
        key = (name, project_id)
        found = self.projects.get(key)
        if found is None:
            try:
                found = await run_in_threadpool(self.exists, self.known[name], project_id)
            except LabelvaultError as exc:
                _log.warning("could not check project %s on %s: %s", project_id, name, exc.message)
                raise _Refused(
                    503, f"could not check project {project_id!r} on {name!r}: {exc.message}"
                ) from None
            self.projects.put(key, found)
        if not found:
            raise _Refused(404, f"connection {name!r} has no project {project_id!r}")

    async def emit(self, name: str, project_id: str, action: str) -> JSONResponse:
        """One event per project per dedup window, for a project the platform has."""
        _bounded("project id", project_id)
        try:
            resource_id(name, project_id)
        except ConfigurationError as exc:
            raise _Refused(400, exc.message) from None
        key = (name, project_id)
        earlier = self.emitted.get(key)
        if earlier is not None:
            body = {"event": earlier.event_id, "resource": earlier.resource, "duplicate": True}
            return JSONResponse(body, 202)
        await self.check_project(name, project_id)
        # Only what happened travels in the event; task data stays on the platform.
        event = project_changed_event(name, project_id, action=action)
        try:
            await run_in_threadpool(self.sink.send, event)
        except httpx.HTTPError as exc:
            return JSONResponse({"error": f"prefect did not take the event: {exc}"}, 503)
        self.emitted.put(key, _Emitted(event["id"], event["resource"]))
        return JSONResponse({"event": event["id"], "resource": event["resource"]}, 202)

    async def labelstudio(self, request: Request) -> JSONResponse:
        """``POST /webhooks/labelstudio/<connection>``: the project is in the body."""
        name = request.path_params["connection"]
        try:
            self.authorize(request)
            self.admit(request, name, "labelstudio")
            body = await self.read(request)
            action = _action_of(body)
            project = body.get("project")
            project_id = project.get("id") if isinstance(project, dict) else project
            if project_id is None:
                raise _Refused(400, "the webhook body names no project")
            if isinstance(project_id, bool) or not isinstance(project_id, int | str):
                raise _Refused(422, "the project id must be a number or a string")
            return await self.emit(name, str(project_id), action)
        except _Refused as refused:
            return refused.response()

    async def generic(self, request: Request) -> JSONResponse:
        """``POST /webhooks/<connection>/<project_id>``: any platform, body optional."""
        name, project_id = request.path_params["connection"], request.path_params["project_id"]
        try:
            self.authorize(request)
            _bounded("project id", project_id)
            self.admit(request, name, None)
            body = await self.read(request)
            return await self.emit(name, project_id, _action_of(body))
        except _Refused as refused:
            return refused.response()


def _action_of(body: Mapping[str, Any]) -> str:
    action = body.get("action")
    if action is None:
        return ""
    if not isinstance(action, str):
        raise _Refused(422, "the action must be a string")
    return _bounded("action", action)


async def _health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(
    sink: EventSink,
    *,
    secret: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    connections: Mapping[str, PlatformConnection] | None = None,
    project_exists: ProjectExists | None = None,
    dedup_seconds: float = DEFAULT_DEDUP_SECONDS,
    rate_per_second: float = DEFAULT_RATE_PER_SECOND,
    rate_burst: int = DEFAULT_RATE_BURST,
    project_cache_seconds: float = DEFAULT_PROJECT_CACHE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The bridge's ASGI application; ``secret`` is what callers must send.

    ``connections`` are the known connections by name (404 for others); ``None`` accepts any
    well-formed name and checks no project (``serve`` always passes them). ``project_exists``
    defaults to asking the platform (:func:`platform_project_exists`); its answers are kept
    ``project_cache_seconds``. ``clock`` (monotonic seconds) drives dedup, rate and cache.
    """
    if len(secret) < _MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"the webhook secret must be at least {_MIN_SECRET_LENGTH} characters "
            "(set LABELVAULT_WEBHOOK_SECRET or pass --secret)"
        )
    _check_limits(
        max_body_bytes=max_body_bytes,
        dedup_seconds=dedup_seconds,
        rate_per_second=rate_per_second,
        rate_burst=rate_burst,
        project_cache_seconds=project_cache_seconds,
    )
    for name in connections or {}:
        resource_id(name, "0")  # refuses a name no event could carry
    bridge = _Bridge(
        sink,
        secret=secret,
        max_body_bytes=max_body_bytes,
        connections=connections,
        project_exists=project_exists or platform_project_exists,
        dedup_seconds=dedup_seconds,
        rate_per_second=rate_per_second,
        rate_burst=rate_burst,
        project_cache_seconds=project_cache_seconds,
        clock=clock,
    )
    return Starlette(
        routes=[
            Route("/health", _health, methods=["GET"]),
            Route("/webhooks/labelstudio/{connection}", bridge.labelstudio, methods=["POST"]),
            Route("/webhooks/{connection}/{project_id}", bridge.generic, methods=["POST"]),
        ],
        middleware=[Middleware(_RefuseQuerySecrets, secret=secret)],
    )


def _check_limits(
    *,
    max_body_bytes: int,
    dedup_seconds: float,
    rate_per_second: float,
    rate_burst: int,
    project_cache_seconds: float,
) -> None:
    """One line for the first limit that makes no sense."""
    rules = [
        (max_body_bytes >= 1, "max_body_bytes must be at least 1"),
        (dedup_seconds >= 0, "dedup_seconds must be 0 (off) or more"),
        (rate_per_second > 0 and math.isfinite(rate_per_second), "rate_per_second must be > 0"),
        (rate_burst >= 1, "rate_burst must be at least 1"),
        (project_cache_seconds >= 0, "project_cache_seconds must be 0 (off) or more"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigurationError(f"bridge limits: {message}")


# --- serving ---------------------------------------------------------------------------------


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
