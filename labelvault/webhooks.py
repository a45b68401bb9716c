"""The event bridge: platform webhooks in, ``labelvault.project.changed`` Prefect events out.

Label Studio sends a webhook per annotation change; the bridge turns each into an event on the
project's resource and posts it to Prefect's ``/api/events`` with retries (``emit_event`` is
fire-and-forget and would lose events while the server is away). The ``version-on-change``
deployment reacts to those events.

Every request must carry the shared secret in the ``X-Labelvault-Secret`` header (Label Studio
sends it as a webhook header, see ``LabelStudioPlatform.register_webhook``); bodies are bounded.
A request that is unsigned, too large or names no project gets a 4xx and emits nothing.

Routes:

- ``POST /webhooks/labelstudio/<connection>``: a Label Studio webhook body
  (``{"action": …, "project": {"id": …}, …}``);
- ``POST /webhooks/<connection>/<project_id>``: any platform, body optional;
- ``GET /health``.

Run it with ``labelvault webhooks serve`` (``PREFECT_API_URL`` and ``LABELVAULT_WEBHOOK_SECRET``
set). It talks to Prefect over HTTP only, so the library still never imports prefect.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Final

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from labelvault.errors import ConfigurationError
from labelvault.events import project_changed_event

__all__ = ["DEFAULT_MAX_BODY_BYTES", "SECRET_HEADER", "EventSink", "create_app", "serve"]

#: The header that carries the shared secret.
SECRET_HEADER: Final = "X-Labelvault-Secret"
#: Webhook bodies larger than this are refused with 413 (annotation events are a few KiB).
DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
_MIN_SECRET_LENGTH: Final = 16


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
        self.client = httpx.Client(base_url=api_url.rstrip("/"), timeout=10.0, transport=transport)
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


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(
    sink: EventSink, *, secret: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> Starlette:
    """The bridge's ASGI application; ``secret`` is what callers must send."""
    if len(secret) < _MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"the webhook secret must be at least {_MIN_SECRET_LENGTH} characters "
            "(set LABELVAULT_WEBHOOK_SECRET or pass --secret)"
        )
    expected = secret.encode()

    async def read(request: Request) -> dict[str, Any]:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            raise _Refused(401, f"missing or wrong {SECRET_HEADER} header")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise _Refused(413, f"body larger than {max_body_bytes} bytes")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > max_body_bytes:
                raise _Refused(413, f"body larger than {max_body_bytes} bytes")
        if not body:
            return {}
        try:
            value = json.loads(body)
        except ValueError:
            raise _Refused(400, "the body is not JSON") from None
        if not isinstance(value, dict):
            raise _Refused(400, "the body is not a JSON object")
        return value

    async def emit(connection: str, project_id: str, body: dict[str, Any]) -> JSONResponse:
        try:
            # Only what happened travels in the event; task data stays on the platform.
            event = project_changed_event(
                connection, project_id, action=str(body.get("action", ""))
            )
        except ConfigurationError as exc:
            return JSONResponse({"error": exc.message}, status_code=400)
        try:
            await run_in_threadpool(sink.send, event)
        except httpx.HTTPError as exc:
            return JSONResponse({"error": f"prefect did not take the event: {exc}"}, 503)
        return JSONResponse({"event": event["id"], "resource": event["resource"]}, 202)

    async def labelstudio(request: Request) -> JSONResponse:
        try:
            body = await read(request)
        except _Refused as refused:
            return JSONResponse({"error": refused.message}, refused.status)
        project = body.get("project")
        project_id = project.get("id") if isinstance(project, dict) else project
        if project_id is None:
            return JSONResponse({"error": "the webhook body names no project"}, 400)
        return await emit(request.path_params["connection"], str(project_id), body)

    async def generic(request: Request) -> JSONResponse:
        try:
            body = await read(request)
        except _Refused as refused:
            return JSONResponse({"error": refused.message}, refused.status)
        params = request.path_params
        return await emit(params["connection"], params["project_id"], body)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/webhooks/labelstudio/{connection}", labelstudio, methods=["POST"]),
            Route("/webhooks/{connection}/{project_id}", generic, methods=["POST"]),
        ]
    )


def serve(
    *,
    prefect_api_url: str,
    secret: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Run the bridge until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the serving command needs it

    app = create_app(EventSink(prefect_api_url), secret=secret, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level="info")
