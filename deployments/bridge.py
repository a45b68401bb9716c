"""The event bridge: platform webhooks in, ``labelvault.project.changed`` Prefect events out.

Label Studio sends a webhook per annotation change; the bridge turns each into an event on the
project's resource and posts it to Prefect's ``/api/events`` with retries (``emit_event`` is
fire-and-forget and would lose events while the server is away). The ``version-on-change``
deployment reacts to those events.

Routes:
- ``POST /webhooks/labelstudio/<connection>``: a Label Studio webhook body
  (``{"action": …, "project": {"id": …}, …}``);
- ``POST /webhooks/<connection>/<project_id>``: any platform, body optional;
- ``GET /health``.

Run: ``python -m deployments.bridge --port 8765`` with ``PREFECT_API_URL`` set.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from labelvault.errors import ConfigurationError
from labelvault.events import project_changed_event


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


def create_app(sink: EventSink) -> Starlette:
    """The bridge's ASGI application."""

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
        body = await _json(request)
        project = body.get("project")
        project_id = project.get("id") if isinstance(project, dict) else project
        if project_id is None:
            return JSONResponse({"error": "the webhook body names no project"}, 400)
        return await emit(request.path_params["connection"], str(project_id), body)

    async def generic(request: Request) -> JSONResponse:
        params = request.path_params
        return await emit(params["connection"], params["project_id"], await _json(request))

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/webhooks/labelstudio/{connection}", labelstudio, methods=["POST"]),
            Route("/webhooks/{connection}/{project_id}", generic, methods=["POST"]),
        ]
    )


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="labelvault webhook → Prefect event bridge")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--prefect-api-url", default=os.environ.get("PREFECT_API_URL"))
    args = parser.parse_args(argv)
    if not args.prefect_api_url:
        parser.error("set PREFECT_API_URL or pass --prefect-api-url")
    uvicorn.run(create_app(EventSink(args.prefect_api_url)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
