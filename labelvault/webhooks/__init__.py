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

from labelvault.webhooks.app import create_app
from labelvault.webhooks.connections import connections_from_env, platform_project_exists
from labelvault.webhooks.limits import (
    DEFAULT_DEDUP_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PROJECT_CACHE_SECONDS,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_PER_SECOND,
    SECRET_HEADER,
    ProjectExists,
)
from labelvault.webhooks.serving import AccessLogScrubber, serve, uvicorn_config
from labelvault.webhooks.sink import EventSink, check_prefect_api_url

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
