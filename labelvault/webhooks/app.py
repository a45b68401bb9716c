"""The bridge's routes: webhooks in, labelvault.project.changed events out."""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from labelvault.errors import (
    ConfigurationError,
    LabelvaultError,
)
from labelvault.events import project_changed_event, resource_id
from labelvault.settings import PlatformConnection
from labelvault.webhooks.connections import platform_project_exists
from labelvault.webhooks.guards import (
    Emitted,
    Expiring,
    Refused,
    RefuseQuerySecrets,
    TokenBuckets,
    bounded,
    is_json,
)
from labelvault.webhooks.limits import (
    DEFAULT_DEDUP_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PROJECT_CACHE_SECONDS,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_PER_SECOND,
    MIN_SECRET_LENGTH,
    SECRET_HEADER,
    ProjectExists,
)
from labelvault.webhooks.sink import EventSink

if TYPE_CHECKING:
    pass

_log = logging.getLogger("labelvault.webhooks")


class Bridge:
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
        self.buckets = TokenBuckets(rate_per_second, rate_burst, clock)
        self.emitted: Expiring[tuple[str, str], Emitted] = Expiring(dedup_seconds, clock)
        self.projects: Expiring[tuple[str, str], bool] = Expiring(project_cache_seconds, clock)

    def authorize(self, request: Request) -> None:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.expected):
            raise Refused(401, f"missing or wrong {SECRET_HEADER} header")

    def admit(self, request: Request, name: str, platform: str | None) -> None:
        """Bounds and form of the connection name, 404 for an unknown one, then the rate of
        the source (client address + connection)."""
        bounded("connection name", name)
        try:
            resource_id(name, "0")
        except ConfigurationError as exc:
            raise Refused(400, exc.message) from None
        if self.known is not None:
            found = self.known.get(name)
            if found is None or (platform is not None and found.platform != platform):
                kind = f"{platform} connection" if platform else "connection"
                names = ", ".join(sorted(self.known)) or "(none)"
                raise Refused(404, f"no {kind} named {name!r}; known connections: {names}")
        client = request.client.host if request.client else "unknown"
        wait = self.buckets.take((client, name))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise Refused(
                429,
                f"too many webhooks from {client} for {name!r}; retry in {retry_after} s",
                {"Retry-After": str(retry_after)},
            )

    async def read(self, request: Request) -> dict[str, Any]:
        """The JSON object in the body (``{}`` for none), bounded in size."""
        limit = self.max_body_bytes
        content_type = request.headers.get("content-type")
        if content_type is not None and not is_json(content_type):
            raise Refused(415, "the body must be JSON (Content-Type: application/json, UTF-8)")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refused(413, f"body larger than {limit} bytes")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise Refused(413, f"body larger than {limit} bytes")
        if not body:
            return {}
        if content_type is None:
            raise Refused(415, "a body needs Content-Type: application/json")
        try:
            value = json.loads(body)
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(value, dict):
            raise Refused(400, "the body is not a JSON object")
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
                raise Refused(
                    503, f"could not check project {project_id!r} on {name!r}: {exc.message}"
                ) from None
            self.projects.put(key, found)
        if not found:
            raise Refused(404, f"connection {name!r} has no project {project_id!r}")

    async def emit(self, name: str, project_id: str, action: str) -> JSONResponse:
        """One event per project per dedup window, for a project the platform has."""
        bounded("project id", project_id)
        try:
            resource_id(name, project_id)
        except ConfigurationError as exc:
            raise Refused(400, exc.message) from None
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
        self.emitted.put(key, Emitted(event["id"], event["resource"]))
        return JSONResponse({"event": event["id"], "resource": event["resource"]}, 202)

    async def labelstudio(self, request: Request) -> JSONResponse:
        """``POST /webhooks/labelstudio/<connection>``: the project is in the body."""
        name = request.path_params["connection"]
        try:
            self.authorize(request)
            self.admit(request, name, "labelstudio")
            body = await self.read(request)
            action = action_of(body)
            project = body.get("project")
            project_id = project.get("id") if isinstance(project, dict) else project
            if project_id is None:
                raise Refused(400, "the webhook body names no project")
            if isinstance(project_id, bool) or not isinstance(project_id, int | str):
                raise Refused(422, "the project id must be a number or a string")
            return await self.emit(name, str(project_id), action)
        except Refused as refused:
            return refused.response()

    async def generic(self, request: Request) -> JSONResponse:
        """``POST /webhooks/<connection>/<project_id>``: any platform, body optional."""
        name, project_id = request.path_params["connection"], request.path_params["project_id"]
        try:
            self.authorize(request)
            bounded("project id", project_id)
            self.admit(request, name, None)
            body = await self.read(request)
            return await self.emit(name, project_id, action_of(body))
        except Refused as refused:
            return refused.response()


def action_of(body: Mapping[str, Any]) -> str:
    action = body.get("action")
    if action is None:
        return ""
    if not isinstance(action, str):
        raise Refused(422, "the action must be a string")
    return bounded("action", action)


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
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"the webhook secret must be at least {MIN_SECRET_LENGTH} characters "
            "(set LABELVAULT_WEBHOOK_SECRET or pass --secret)"
        )
    check_limits(
        max_body_bytes=max_body_bytes,
        dedup_seconds=dedup_seconds,
        rate_per_second=rate_per_second,
        rate_burst=rate_burst,
        project_cache_seconds=project_cache_seconds,
    )
    for name in connections or {}:
        resource_id(name, "0")  # refuses a name no event could carry
    bridge = Bridge(
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
        middleware=[Middleware(RefuseQuerySecrets, secret=secret)],
    )


def check_limits(
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
