"""The bridge bounds what it accepts: JSON only, known connections and projects, short fields,
one event per project per window, a rate per source, no credentials in query strings."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from labelvault.errors import ConfigurationError, PlatformNotFound, PlatformUnavailable
from labelvault.events import MAX_FIELD_CHARS
from labelvault.platforms import PLATFORMS, ProjectInfo
from labelvault.settings import PlatformConnection
from labelvault.webhooks import (
    SECRET_HEADER,
    AccessLogScrubber,
    EventSink,
    check_prefect_api_url,
    connections_from_env,
    create_app,
    platform_project_exists,
)

SECRET = secrets.token_urlsafe(24)
LS_BODY = {"action": "ANNOTATION_CREATED", "project": {"id": 12}}


def _connection(platform: str) -> PlatformConnection:
    return PlatformConnection(
        platform=platform, server_url=f"http://{platform}.invalid", token=SecretStr("t0ken-value")
    )


CONNECTIONS = {"labelstudio": _connection("labelstudio"), "supervisely": _connection("supervisely")}


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Projects:
    """Stands in for the platforms: which projects exist, and who asked."""

    existing: set[tuple[str, str]] = field(default_factory=set)
    asked: list[tuple[str, str]] = field(default_factory=list)
    error: Exception | None = None

    def __call__(self, connection: PlatformConnection, project_id: str) -> bool:
        self.asked.append((connection.platform, project_id))
        if self.error is not None:
            raise self.error
        return (connection.platform, project_id) in self.existing


class Bridge:
    """The app under test with a recording Prefect, driven in-process over ASGI."""

    def __init__(self, **options: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.clock = Clock()
        self.projects = Projects(
            existing={("labelstudio", "12"), ("supervisely", "1"), ("supervisely", "2")}
            | {("supervisely", str(n)) for n in range(100, 110)}
        )

        def prefect(request: httpx.Request) -> httpx.Response:
            self.events.extend(json.loads(request.content))
            return httpx.Response(204)

        sink = EventSink(
            "http://prefect.invalid/api", transport=httpx.MockTransport(prefect), attempts=1
        )
        settings: dict[str, Any] = {
            "secret": SECRET,
            "connections": CONNECTIONS,
            "project_exists": self.projects,
            "clock": self.clock,
            **options,
        }
        self.app = create_app(sink, **settings)

    def post(
        self,
        path: str,
        *,
        client: tuple[str, int] = ("10.0.0.1", 40000),
        signed: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {SECRET_HEADER: SECRET} if signed else {}
        headers.update(kwargs.pop("headers", {}))

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
                return await http.post(path, headers=headers, **kwargs)

        return asyncio.run(go())


def _one_line_error(response: httpx.Response) -> str:
    error = response.json()["error"]
    assert isinstance(error, str)
    assert error
    assert "\n" not in error
    return error


# --- content types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/jsonx",
        "json",
    ],
)
def test_bodies_that_are_not_json_get_415_and_emit_nothing(content_type: str) -> None:
    bridge = Bridge()
    response = bridge.post(
        "/webhooks/labelstudio/labelstudio",
        content=json.dumps(LS_BODY).encode(),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 415
    assert "JSON" in _one_line_error(response)
    assert bridge.events == []


def test_a_body_without_content_type_gets_415() -> None:
    bridge = Bridge()
    response = bridge.post("/webhooks/supervisely/1", content=b"{}")
    assert response.status_code == 415
    _one_line_error(response)
    assert bridge.events == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/cloudevents+json",
    ],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    bridge = Bridge()
    response = bridge.post(
        "/webhooks/labelstudio/labelstudio",
        content=json.dumps(LS_BODY).encode(),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    assert len(bridge.events) == 1


# --- connections and projects ----------------------------------------------------------------


def test_unknown_connections_get_404_and_the_platform_is_not_asked() -> None:
    bridge = Bridge()
    generic = bridge.post("/webhooks/nosuch/1")
    assert generic.status_code == 404
    assert "nosuch" in _one_line_error(generic)
    labelstudio = bridge.post("/webhooks/labelstudio/nosuch", json=LS_BODY)
    assert labelstudio.status_code == 404
    # A Label Studio body for a connection of another platform names no Label Studio project.
    other = bridge.post("/webhooks/labelstudio/supervisely", json=LS_BODY)
    assert other.status_code == 404
    assert "labelstudio connection" in _one_line_error(other)
    assert bridge.events == []
    assert bridge.projects.asked == []


def test_unknown_projects_get_404_and_emit_nothing() -> None:
    bridge = Bridge()
    response = bridge.post("/webhooks/supervisely/999")
    assert response.status_code == 404
    assert "999" in _one_line_error(response)
    missing_ls = bridge.post("/webhooks/labelstudio/labelstudio", json={"project": {"id": 5}})
    assert missing_ls.status_code == 404
    assert bridge.events == []
    assert bridge.projects.asked == [("supervisely", "999"), ("labelstudio", "5")]


def test_project_answers_are_cached_until_their_ttl() -> None:
    bridge = Bridge(project_cache_seconds=60.0, dedup_seconds=0.0)
    for _ in range(3):
        assert bridge.post("/webhooks/supervisely/1").status_code == 202
        assert bridge.post("/webhooks/supervisely/999").status_code == 404
    assert bridge.projects.asked == [("supervisely", "1"), ("supervisely", "999")]
    bridge.clock.now += 60.0
    bridge.projects.existing.add(("supervisely", "999"))
    assert bridge.post("/webhooks/supervisely/999").status_code == 202
    assert bridge.post("/webhooks/supervisely/1").status_code == 202
    assert len(bridge.projects.asked) == 4
    assert len(bridge.events) == 5


def test_a_platform_that_cannot_answer_gives_503_and_is_asked_again() -> None:
    bridge = Bridge()
    bridge.projects.error = PlatformUnavailable(
        "supervisely: connection refused", platform="supervisely"
    )
    response = bridge.post("/webhooks/supervisely/1")
    assert response.status_code == 503
    assert "connection refused" in _one_line_error(response)
    bridge.projects.error = None
    assert bridge.post("/webhooks/supervisely/1").status_code == 202
    assert len(bridge.projects.asked) == 2
    assert len(bridge.events) == 1


def test_the_default_project_check_asks_the_platform_through_its_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[FakePlatform] = []

    class FakePlatform:
        def __init__(self, server_url: str, token: str) -> None:
            self.server_url, self.token, self.closed = server_url, token, False
            opened.append(self)

        def get_project(self, project_id: str) -> ProjectInfo:
            if project_id != "7":
                raise PlatformNotFound(f"no project {project_id}", platform="fake")
            return ProjectInfo(
                platform="fake", instance="fake.invalid:80", project_id="7", name="p", kind="k"
            )

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(PLATFORMS, "fake", FakePlatform)
    connection = PlatformConnection(
        platform="fake", server_url="http://fake.invalid", token=SecretStr("abc123")
    )
    assert platform_project_exists(connection, "7") is True
    assert platform_project_exists(connection, "8") is False
    assert [(p.server_url, p.token, p.closed) for p in opened] == [
        ("http://fake.invalid", "abc123", True)
    ] * 2


# --- field sizes -------------------------------------------------------------------------------


def test_long_fields_get_422_and_emit_nothing() -> None:
    bridge = Bridge(max_body_bytes=4 << 20)
    long = "a" * (MAX_FIELD_CHARS + 1)
    huge_action = {"action": "x" * (1 << 20), "project": {"id": 12}}
    cases = [
        bridge.post("/webhooks/labelstudio/labelstudio", json=huge_action),
        bridge.post("/webhooks/labelstudio/labelstudio", json={"action": long, "project": 12}),
        bridge.post("/webhooks/labelstudio/labelstudio", json={"project": {"id": long}}),
        bridge.post(f"/webhooks/supervisely/{long}"),
        bridge.post(f"/webhooks/{long}/1"),
        bridge.post(f"/webhooks/labelstudio/{long}", json=LS_BODY),
        bridge.post("/webhooks/supervisely/1", json={"action": 5}),
        bridge.post("/webhooks/labelstudio/labelstudio", json={"project": {"id": [1]}}),
    ]
    assert [response.status_code for response in cases] == [422] * len(cases)
    for response in cases:
        assert len(_one_line_error(response)) < 200
    assert bridge.events == []
    assert bridge.projects.asked == []


def test_fields_at_the_bound_are_accepted() -> None:
    bridge = Bridge()
    action = "A" * MAX_FIELD_CHARS
    response = bridge.post("/webhooks/labelstudio/labelstudio", json={**LS_BODY, "action": action})
    assert response.status_code == 202, response.text
    assert bridge.events[0]["payload"] == {"action": action}


def test_bodies_over_the_default_bound_get_413() -> None:
    bridge = Bridge()
    body = {"action": "x", "project": {"id": 12}, "padding": "x" * (1 << 20)}
    response = bridge.post("/webhooks/labelstudio/labelstudio", json=body)
    assert response.status_code == 413
    _one_line_error(response)
    assert bridge.events == []


# --- dedup -------------------------------------------------------------------------------------


def test_changes_within_the_window_make_one_event_per_project() -> None:
    bridge = Bridge(dedup_seconds=5.0)
    first = bridge.post("/webhooks/labelstudio/labelstudio", json=LS_BODY)
    bridge.clock.now += 4.9
    again = bridge.post("/webhooks/labelstudio/labelstudio", json=LS_BODY)
    other = bridge.post("/webhooks/supervisely/1")
    assert [first.status_code, again.status_code, other.status_code] == [202, 202, 202]
    assert again.json()["duplicate"] is True
    assert again.json()["event"] == first.json()["event"]
    assert [e["resource"]["prefect.resource.id"] for e in bridge.events] == [
        "labelvault.project.labelstudio.12",
        "labelvault.project.supervisely.1",
    ]
    bridge.clock.now += 0.1
    later = bridge.post("/webhooks/labelstudio/labelstudio", json=LS_BODY)
    assert later.status_code == 202
    assert "duplicate" not in later.json()
    assert len(bridge.events) == 3


def test_dedup_window_zero_emits_every_change() -> None:
    bridge = Bridge(dedup_seconds=0.0)
    for _ in range(3):
        assert bridge.post("/webhooks/supervisely/1").status_code == 202
    assert len(bridge.events) == 3


def test_a_failed_emit_is_not_remembered_as_emitted() -> None:
    calls: list[int] = []

    def down_then_up(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503 if len(calls) == 1 else 204)

    sink = EventSink(
        "http://prefect.invalid/api", transport=httpx.MockTransport(down_then_up), attempts=1
    )
    bridge = Bridge()
    bridge.app = create_app(
        sink, secret=SECRET, connections=CONNECTIONS, project_exists=bridge.projects
    )
    assert bridge.post("/webhooks/supervisely/1").status_code == 503
    retried = bridge.post("/webhooks/supervisely/1")
    assert retried.status_code == 202
    assert "duplicate" not in retried.json()
    assert len(calls) == 2


# --- rate --------------------------------------------------------------------------------------


def test_a_source_over_its_rate_gets_429_with_retry_after() -> None:
    bridge = Bridge(rate_per_second=0.5, rate_burst=3, dedup_seconds=0.0)
    answers = [bridge.post("/webhooks/supervisely/1").status_code for _ in range(3)]
    assert answers == [202, 202, 202]
    refused = bridge.post("/webhooks/supervisely/1")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"
    assert "too many" in _one_line_error(refused)
    # Other sources have their own buckets: another address, or another connection.
    assert bridge.post("/webhooks/supervisely/1", client=("10.0.0.2", 40000)).status_code == 202
    assert bridge.post("/webhooks/labelstudio/labelstudio", json=LS_BODY).status_code == 202
    bridge.clock.now += 2.0
    assert bridge.post("/webhooks/supervisely/1").status_code == 202
    assert bridge.post("/webhooks/supervisely/1").status_code == 429
    assert len(bridge.events) == 6


def test_rate_limited_requests_do_not_reach_the_platform() -> None:
    bridge = Bridge(rate_per_second=1.0, rate_burst=2, project_cache_seconds=0.0)
    statuses = [bridge.post(f"/webhooks/supervisely/{n}").status_code for n in range(100, 105)]
    assert statuses == [202, 202, 429, 429, 429]
    assert len(bridge.projects.asked) == 2


@pytest.mark.parametrize(
    "options",
    [
        {"rate_per_second": 0.0},
        {"rate_burst": 0},
        {"dedup_seconds": -1.0},
        {"project_cache_seconds": -1.0},
        {"max_body_bytes": 0},
    ],
)
def test_limits_that_make_no_sense_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="bridge limits"):
        Bridge(**options)


# --- query strings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"secret={SECRET}",
        "token=abc",
        "api_key=abc",
        "X-Labelvault-Secret=abc",
        "access_token=abc",
        "password=hunter22",
        f"anything={SECRET}",
    ],
)
@pytest.mark.parametrize("signed", [True, False])
def test_credentials_in_the_query_string_get_400(query: str, *, signed: bool) -> None:
    bridge = Bridge()
    response = bridge.post(f"/webhooks/supervisely/1?{query}", signed=signed)
    assert response.status_code == 400
    error = _one_line_error(response)
    assert SECRET_HEADER in error
    assert SECRET not in response.text
    assert bridge.events == []
    assert bridge.projects.asked == []


def test_a_harmless_query_string_is_ignored() -> None:
    bridge = Bridge()
    assert bridge.post("/webhooks/supervisely/1?source=ci").status_code == 202


# --- start-up checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "127.0.0.1:4200/api",
        "ftp://127.0.0.1:4200/api",
        "http:///api",
        "http://127.0.0.1:4200",
        "http://127.0.0.1:4200/",
        "http://127.0.0.1:4200/api/events",
        "http://127.0.0.1:99999/api",
        "http://127.0.0.1:4200/api?x=1",
        "http://user:pw@127.0.0.1:4200/api",
        "not a url",
    ],
)
def test_a_url_that_is_not_prefects_api_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        EventSink(url)
    message = caught.value.message
    assert "PREFECT_API_URL" in message
    assert "\n" not in message
    assert "pw" not in message


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
        ("https://prefect.example.com/api/", "https://prefect.example.com/api"),
        ("http://h/prefix/api", "http://h/prefix/api"),
        (
            "https://api.prefect.cloud/api/accounts/a1/workspaces/w2",
            "https://api.prefect.cloud/api/accounts/a1/workspaces/w2",
        ),
    ],
)
def test_prefect_api_urls_are_accepted(url: str, base: str) -> None:
    assert check_prefect_api_url(url) == base


def test_connections_come_from_the_platform_variables() -> None:
    found = connections_from_env(
        {
            "LABELVAULT_LABELSTUDIO_URL": "http://ls.invalid:8080",
            "LABELVAULT_LABELSTUDIO_TOKEN": "tok-ls",
            "LABELVAULT_STORE_URL": "memory://x",
        }
    )
    assert list(found) == ["labelstudio"]
    assert found["labelstudio"].server_url == "http://ls.invalid:8080"
    assert found["labelstudio"].token.get_secret_value() == "tok-ls"


def test_half_a_connection_or_none_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigurationError, match="LABELVAULT_SUPERVISELY_TOKEN is not set"):
        connections_from_env({"LABELVAULT_SUPERVISELY_URL": "http://sly.invalid"})
    with pytest.raises(ConfigurationError, match="knows no connections"):
        connections_from_env({})


def test_a_connection_name_no_event_could_carry_is_refused_at_start() -> None:
    with pytest.raises(ConfigurationError, match="lowercase"):
        create_app(
            EventSink("http://prefect.invalid/api"),
            secret=SECRET,
            connections={"Bad.Name": _connection("supervisely")},
        )


def test_the_access_log_filter_drops_query_strings_and_secrets() -> None:
    scrub = AccessLogScrubber([SECRET])
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", f"/webhooks/{SECRET}/1?token={SECRET}", "1.1", 400),
        None,
    )
    assert scrub.filter(record) is True
    assert record.getMessage() == '127.0.0.1:5 - "POST /webhooks/***/1 HTTP/1.1" 400'
    other = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("a?b",), None)
    assert scrub.filter(other) is True
    assert other.getMessage() == "plain a?b"
