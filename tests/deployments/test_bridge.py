"""The webhook bridge: webhook bodies become events; Prefect outages are retried, then 503."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from deployments.bridge import EventSink, create_app
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


@contextmanager
def _client(prefect: RecordingPrefect, attempts: int = 5) -> Iterator[httpx.Client]:
    """The bridge on a real loopback port, posting to a recording stand-in for Prefect."""
    sink = EventSink(
        "http://prefect.invalid/api",
        attempts=attempts,
        transport=httpx.MockTransport(prefect),
        wait_multiplier=0.0,
    )
    with serve_in_thread(create_app(sink)) as url, httpx.Client(base_url=url) as client:
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
        assert client.post("/webhooks/labelstudio/ls", json={"action": "X"}).status_code == 400
    assert prefect.calls == 0
