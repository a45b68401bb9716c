"""The retrying client: schedule, what is retried, error translation, redaction."""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from labelvault.errors import (
    AuthenticationError,
    PlatformNotFound,
    PlatformUnavailable,
    RequestRejected,
)
from labelvault.http import ApiClient, RequestSettings, build_client, parse_retry_after

Handler = Callable[[httpx.Request], httpx.Response]


def settings(**overrides: float) -> RequestSettings:
    values: dict[str, float] = {"backoff_jitter": 0.0}
    values.update(overrides)
    return RequestSettings(**values)  # type: ignore[arg-type]


def script(
    *outcomes: int | type[Exception] | httpx.Response,
) -> tuple[Handler, list[httpx.Request]]:
    """A handler that answers each request with the next scripted outcome."""
    seen: list[httpx.Request] = []
    queue: Iterator[int | type[Exception] | httpx.Response] = iter(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = next(queue)
        if isinstance(outcome, httpx.Response):
            return outcome
        if isinstance(outcome, int):
            return httpx.Response(outcome, json={"ok": outcome < 400})
        raise outcome("scripted failure", request=request)

    return handler, seen


def api_for(
    handler: Handler, *, token: str = "", **overrides: float
) -> tuple[ApiClient, list[float]]:
    sleeps: list[float] = []
    headers = {"x-api-key": token} if token else {}
    client = build_client(
        "http://platform.test", headers=headers, transport=httpx.MockTransport(handler)
    )
    api = ApiClient(
        client,
        platform="testplatform",
        settings=settings(**overrides),
        secrets=[token] if token else [],
        sleep=sleeps.append,
    )
    return api, sleeps


def test_defaults_follow_encord() -> None:
    s = RequestSettings()
    assert (s.max_retries, s.backoff_factor, s.connection_retries) == (3, 1.5, 3)
    assert (s.connect_timeout, s.read_timeout, s.write_timeout) == (180, 180, 180)


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELVAULT_HTTP_MAX_RETRIES", "7")
    monkeypatch.setenv("LABELVAULT_HTTP_READ_TIMEOUT", "5")
    s = RequestSettings()
    assert s.max_retries == 7
    assert s.timeout().read == 5
    with pytest.raises(ValueError, match="frozen"):
        s.max_retries = 1  # type: ignore[misc]


def test_backoff_schedule_is_factor_times_power_of_two() -> None:
    handler, seen = script(503, 502, 500, 200)
    api, sleeps = api_for(handler)
    response = api.request("GET", "/things")
    assert response.status_code == 200
    assert len(seen) == 4
    assert sleeps == [1.5, 3.0, 6.0]


def test_exhausted_retries_raise_unavailable_after_max_retries() -> None:
    handler, seen = script(503, 503, 503, 503, 200)
    api, sleeps = api_for(handler)
    with pytest.raises(PlatformUnavailable, match=r"503.*gave up after 4 attempts") as info:
        api.request("GET", "/things")
    assert info.value.status == 503
    assert len(seen) == 4
    assert sleeps == [1.5, 3.0, 6.0]


def test_jitter_is_bounded() -> None:
    handler, _ = script(503, 503, 200)
    api, sleeps = api_for(handler, backoff_jitter=0.5)
    api.request("GET", "/things")
    assert 1.5 <= sleeps[0] <= 2.0
    assert 3.0 <= sleeps[1] <= 3.5


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 1.0),  # the floor: Retry-After: 0 must not burn every attempt at once
        ("7", 7.0),
        ("2.5", 2.5),
        ("100000", 120.0),  # the cap
        ("soon", 1.5),  # unparseable → the backoff schedule
    ],
)
def test_retry_after_is_clamped(header: str, expected: float) -> None:
    handler, _ = script(httpx.Response(429, headers={"Retry-After": header}), 200)
    api, sleeps = api_for(handler)
    api.request("GET", "/things")
    assert sleeps == [expected]


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now=lambda: now) == 30.0
    assert (
        parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=lambda: now)
        == 0.0
    )
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0

    handler, _ = script(httpx.Response(503, headers={"Retry-After": date}), 200)
    sleeps: list[float] = []
    api = ApiClient(
        build_client("http://platform.test", transport=httpx.MockTransport(handler)),
        platform="testplatform",
        settings=settings(),
        sleep=sleeps.append,
        now=lambda: now,
    )
    api.request("GET", "/x")
    assert sleeps == [30.0]


def test_total_time_is_bounded() -> None:
    handler, seen = script(*([503] * 20))
    api, sleeps = api_for(handler, max_retries=10, max_elapsed=10.0)
    with pytest.raises(PlatformUnavailable):
        api.request("GET", "/things")
    assert sleeps == [1.5, 3.0]  # the next sleep (6 s) would pass 10 s in total
    assert len(seen) == 3


def test_writes_are_not_retried_on_5xx_but_are_on_429() -> None:
    handler, seen = script(503)
    api, sleeps = api_for(handler)
    with pytest.raises(PlatformUnavailable):
        api.request("POST", "/create", json={"name": "x"})
    assert (len(seen), sleeps) == (1, [])

    handler, seen = script(httpx.Response(429, headers={"Retry-After": "2"}), 200)
    api, sleeps = api_for(handler)
    api.request("POST", "/create", json={"name": "x"})
    assert (len(seen), sleeps) == (2, [2.0])


def test_idempotent_write_is_retried() -> None:
    handler, seen = script(500, 200)
    api, sleeps = api_for(handler)
    api.request("POST", "/settings.update", json={"a": 1}, idempotent=True)
    assert (len(seen), sleeps) == (2, [1.5])
    assert seen[0].content == seen[1].content


def test_transport_errors_use_connection_retries() -> None:
    handler, seen = script(httpx.ReadError, httpx.ConnectError, 200)
    api, sleeps = api_for(handler)
    assert api.request("GET", "/x").status_code == 200
    assert sleeps == [1.5, 3.0]

    handler, seen = script(*([httpx.ConnectError] * 5))
    api, sleeps = api_for(handler, connection_retries=1)
    with pytest.raises(PlatformUnavailable, match=r"ConnectError.*reachable.*after 2 attempts"):
        api.request("GET", "/x")
    assert len(seen) == 2


def test_writes_retry_only_errors_before_sending() -> None:
    handler, seen = script(httpx.ConnectError, 200)
    api, _ = api_for(handler)
    api.request("POST", "/create", json={})
    assert len(seen) == 2

    handler, seen = script(httpx.ReadTimeout, 200)
    api, _ = api_for(handler)
    with pytest.raises(PlatformUnavailable, match="ReadTimeout"):
        api.request("POST", "/create", json={})
    assert len(seen) == 1


def test_multipart_body_is_rebuilt_on_every_attempt() -> None:
    handler, seen = script(500, 200)
    api, _ = api_for(handler)
    api.request(
        "POST",
        "/upload",
        data={"figureId": ["1"]},
        files=[("geometry", ("1", b'{"a":1}', "application/json"))],
        idempotent=True,
    )
    assert len(seen) == 2
    for request in seen:  # each attempt carries the whole body, not a consumed stream
        body = request.read()
        assert b'{"a":1}' in body
        assert int(request.headers["content-length"]) == len(body)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, PlatformNotFound),
        (400, RequestRejected),
        (422, RequestRejected),
        (302, RequestRejected),
    ],
)
def test_status_translation_is_immediate(status: int, error: type[Exception]) -> None:
    handler, seen = script(status, 200)
    api, sleeps = api_for(handler)
    with pytest.raises(error):
        api.request("GET", "/x")
    assert (len(seen), sleeps) == (1, [])


def test_secrets_never_reach_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    token = secrets.token_hex(16)
    other = secrets.token_hex(12)
    echo_body = {
        "error": f"bad token {token}",
        "details": {"headers": {"x-api-key": token}, "access_token": other},
    }
    handler, _ = script(httpx.Response(503, json=echo_body), httpx.Response(401, json=echo_body))
    api, _ = api_for(handler, token=token)
    with (
        caplog.at_level(logging.DEBUG, logger="labelvault.http"),
        pytest.raises(AuthenticationError) as info,
    ):
        api.request("GET", f"/x?token={token}&api_key={other}&page=2")
    text = str(info.value) + "\n" + caplog.text
    assert caplog.records, "the retry was logged"
    assert token not in text
    assert other not in text
    assert "page=2" in text
    assert "***" in text


def test_non_json_body_names_the_server() -> None:
    handler, _ = script(httpx.Response(200, text="<html>hello</html>"))
    api, _ = api_for(handler)
    with pytest.raises(RequestRejected, match=r"not JSON.*platform\.test.*testplatform server"):
        api.request_json("GET", "/x")


def test_bad_scheme_is_rejected_at_once() -> None:
    sleeps: list[float] = []
    api = ApiClient(build_client("ftp://platform.test"), platform="p", sleep=sleeps.append)
    with pytest.raises(RequestRejected, match="server URL"):
        api.request("GET", "/x")
    assert sleeps == []


def test_no_more_requests_are_in_flight_than_the_pool_has_connections() -> None:
    """Requests beyond the pool wait in the client, never queued inside httpcore's pool."""
    in_flight, most = 0, 0
    lock = threading.Lock()
    all_waiting = threading.Barrier(4, timeout=2.0)

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        with contextlib.suppress(threading.BrokenBarrierError):
            all_waiting.wait()  # hold the first arrivals together; never more than the pool
        with lock:
            in_flight -= 1
        return httpx.Response(200, json={"ok": True})

    api, _ = api_for(handler, max_connections=3)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: api.request_json("GET", "/x"), range(24)))
    assert answers == [{"ok": True}] * 24
    assert most == 3
    assert RequestSettings().max_keepalive_connections == RequestSettings().max_connections
