"""The webhook bridge: webhook bodies become events; Prefect outages are retried, then 503."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from labelvault.errors import ConfigurationError
from labelvault.settings import PlatformConnection
from labelvault.webhooks import SECRET_HEADER, EventSink, create_app
from tests.servers.asgi import serve_in_thread


class RecordingPrefect:
    """Stands in for Prefect's /api/events: fails the first ``failures`` posts with 503."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.events: list[dict[str, Any]] = []
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert request.url.path == "/api/events"
        if self.calls <= self.failures:
            return httpx.Response(503)
        self.events.extend(json.loads(request.content))
        return httpx.Response(204)


SECRET = secrets.token_urlsafe(24)
CONNECTIONS = {
    name: PlatformConnection(
        platform=name, server_url=f"http://{name}.invalid", token=SecretStr("not-used")
    )
    for name in ("labelstudio", "supervisely")
}


@contextmanager
def _client(
    prefect: RecordingPrefect, attempts: int = 5, *, signed: bool = True, max_body: int = 4096
) -> Iterator[httpx.Client]:
    """The bridge on a real loopback port, posting to a recording stand-in for Prefect."""
    sink = EventSink(
        "http://prefect.invalid/api",
        attempts=attempts,
        transport=httpx.MockTransport(prefect),
        wait_multiplier=0.0,
    )
    app = create_app(
        sink,
        secret=SECRET,
        max_body_bytes=max_body,
        connections=CONNECTIONS,
        project_exists=lambda _connection, _project_id: True,
    )
    headers = {SECRET_HEADER: SECRET} if signed else {}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=headers) as client:
        yield client


def test_label_studio_webhook_becomes_a_project_event() -> None:
    prefect = RecordingPrefect()
    body = {"action": "ANNOTATION_CREATED", "project": {"id": 12}, "annotation": {"id": 5}}
    with _client(prefect) as client:
        response = client.post("/webhooks/labelstudio/labelstudio", json=body)
    assert response.status_code == 202
    [event] = prefect.events
    assert event["event"] == "labelvault.project.changed"
    assert event["resource"]["prefect.resource.id"] == "labelvault.project.labelstudio.12"
    assert event["payload"] == {"action": "ANNOTATION_CREATED"}


def test_generic_webhook_names_project_in_the_path() -> None:
    prefect = RecordingPrefect()
    with _client(prefect) as client:
        response = client.post("/webhooks/supervisely/77")
    assert response.status_code == 202
    assert prefect.events[0]["resource"]["labelvault.project_id"] == "77"


def test_prefect_outage_is_retried_until_it_answers() -> None:
    prefect = RecordingPrefect(failures=2)
    with _client(prefect) as client:
        response = client.post("/webhooks/supervisely/1")
    assert response.status_code == 202
    assert prefect.calls == 3
    assert len(prefect.events) == 1


def test_prefect_that_stays_down_gives_503_and_no_event() -> None:
    prefect = RecordingPrefect(failures=100)
    with _client(prefect, attempts=3) as client:
        response = client.post("/webhooks/supervisely/1")
    assert response.status_code == 503
    assert prefect.calls == 3
    assert prefect.events == []


def test_bad_names_are_refused_with_400() -> None:
    prefect = RecordingPrefect()
    with _client(prefect) as client:
        assert client.post("/webhooks/Bad.Name/1").status_code == 400
        no_project = client.post("/webhooks/labelstudio/labelstudio", json={"action": "X"})
        assert no_project.status_code == 400
    assert prefect.calls == 0


def test_unsigned_or_wrongly_signed_requests_get_401_and_emit_nothing() -> None:
    prefect = RecordingPrefect()
    body = {"action": "ANNOTATION_CREATED", "project": {"id": 12}}
    with _client(prefect, signed=False) as client:
        assert client.post("/webhooks/labelstudio/labelstudio", json=body).status_code == 401
        wrong = {SECRET_HEADER: SECRET[:-1] + ("x" if SECRET[-1] != "x" else "y")}
        assert client.post("/webhooks/supervisely/1", headers=wrong).status_code == 401
    assert prefect.calls == 0


def test_bodies_over_the_bound_get_413_and_emit_nothing() -> None:
    prefect = RecordingPrefect()
    big = {"action": "X", "project": {"id": 1}, "padding": "x" * 5000}
    with _client(prefect, max_body=4096) as client:
        assert client.post("/webhooks/labelstudio/labelstudio", json=big).status_code == 413
        chunked = client.post(
            "/webhooks/supervisely/1", content=iter([b"{" + b" " * 3000, b" " * 3000 + b"}"])
        )
        assert chunked.status_code == 413
        as_json = {"Content-Type": "application/json"}
        for bad in (b"[1, 2]", b"{nope"):
            response = client.post("/webhooks/supervisely/1", content=bad, headers=as_json)
            assert response.status_code == 400
    assert prefect.calls == 0


def test_a_short_secret_is_refused_at_start() -> None:
    with pytest.raises(ConfigurationError, match="at least 16"):
        create_app(EventSink("http://prefect.invalid/api"), secret="short")
