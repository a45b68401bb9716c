"""Supervisely capture under injected faults: in process and over a real loopback socket."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from typing import Any

import httpx
import pytest

from labelvault.errors import AuthenticationError, PlatformUnavailable
from labelvault.http import RequestSettings
from labelvault.platforms.supervisely import SuperviselyPlatform
from tests.fakes.supervisely import (
    FakeSupervisely,
    FaultPlan,
    RichProject,
    capture_tables,
    fingerprint_multisets,
    generate_rich_project,
    keys_in_order,
)

SCHEDULE = RequestSettings(backoff_jitter=0, backoff_factor=1.5, max_retries=3)


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=4)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichProject:
    return generate_rich_project(fake, images_per_dataset=6)


def platform_for(
    fake: FakeSupervisely,
    sleeps: list[float],
    *,
    url: str = "http://sly.test",
    transport: httpx.BaseTransport | None = None,
    settings: RequestSettings = SCHEDULE,
    concurrency: int = 3,
) -> SuperviselyPlatform:
    return SuperviselyPlatform(
        url,
        fake.token,
        settings=settings,
        transport=transport,
        sleep=sleeps.append,
        concurrency=concurrency,
        batch_size=4,
        list_page_size=5,
    )


def assert_same_capture(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> None:
    assert set(a) == set(b)
    for table in a:
        assert keys_in_order(a, table) == keys_in_order(b, table), table
    assert fingerprint_multisets(a) == fingerprint_multisets(b)


def expected_sleep(kind: str) -> set[float]:
    """What the policy may sleep after a fault of ``kind``: Retry-After 1 s for 429, else the
    backoff of retry 1 or 2 (a request is never failed more than twice in a row)."""
    return {1.0} if kind == "429" else {1.5, 3.0}


@pytest.mark.parametrize("concurrency", [1, 4])
def test_capture_under_ten_percent_faults_in_process(
    fake: FakeSupervisely, rich: RichProject, concurrency: int
) -> None:
    pid = str(rich.project_id)
    clean = capture_tables(platform_for(fake, [], transport=fake.transport()), pid)
    clean_calls = len(fake.calls)

    fake.faults = FaultPlan(rate=0.1, seed=11, retry_after="1", max_faults=200)
    sleeps: list[float] = []
    faulty = capture_tables(
        platform_for(fake, sleeps, transport=fake.transport(), concurrency=concurrency), pid
    )
    assert_same_capture(clean, faulty)

    kinds = Counter(kind for _, kind in fake.fault_log)
    assert sum(kinds.values()) >= 5, kinds
    assert {"429", "slow", "drop"} & set(kinds), kinds
    # One sleep per fault, each one the configured value for its kind.
    assert len(sleeps) == len(fake.fault_log)
    assert Counter(s for s in sleeps if s == 1.0) == Counter(
        {1.0: kinds["429"]} if kinds["429"] else {}
    )
    assert all(s in expected_sleep("5xx") for s in sleeps if s != 1.0)
    # Faults never reach the handler, so the successful calls are exactly the clean run's.
    assert len(fake.calls) == 2 * clean_calls


def test_retry_schedule_through_the_platform(fake: FakeSupervisely, rich: RichProject) -> None:
    sleeps: list[float] = []
    platform = platform_for(fake, sleeps, transport=fake.transport())
    fake.fail_next("projects.info", 503, times=3)
    platform.get_project(str(rich.project_id))
    assert sleeps == [1.5, 3.0, 6.0]

    sleeps.clear()
    fake.fail_next("projects.info", 429, retry_after="0")  # the floor, not a hot loop
    fake.fail_next("projects.info", "drop")  # attempt 2: backoff 1.5 * 2
    fake.fail_next("projects.info", 429, retry_after="7")
    platform.get_project(str(rich.project_id))
    assert sleeps == [1.0, 3.0, 7.0]

    sleeps.clear()
    fake.fail_next("projects.info", "slow", times=4)
    with pytest.raises(PlatformUnavailable, match=r"ReadTimeout.*after 4 attempts"):
        platform.get_project(str(rich.project_id))
    assert sleeps == [1.5, 3.0, 6.0]


def test_exhausted_retries(fake: FakeSupervisely, rich: RichProject) -> None:
    sleeps: list[float] = []
    platform = platform_for(fake, sleeps, transport=fake.transport())
    fake.fail_next("projects.meta", 502, times=10)
    with pytest.raises(PlatformUnavailable, match=r"projects\.meta answered 502.*after 4 attempts"):
        list(platform.iter_pages(str(rich.project_id)))
    assert sleeps == [1.5, 3.0, 6.0]


def test_writes_are_not_repeated_after_a_5xx(fake: FakeSupervisely) -> None:
    sleeps: list[float] = []
    platform = platform_for(fake, sleeps, transport=fake.transport())
    fake.fail_next("datasets.add", 500)
    with pytest.raises(PlatformUnavailable):
        platform.add_dataset("1", {"name": "x", "custom_data": None}, None)
    assert sleeps == []


def test_capture_under_faults_over_loopback(fake: FakeSupervisely, rich: RichProject) -> None:
    """The same, over real sockets: 429, 5xx, answers slower than the read timeout, and
    connections dropped in the middle of a body."""
    pid = str(rich.project_id)
    # The read timeout sits well above a loaded machine's loopback latency and well below the
    # injected slow answers, so every sleep comes from an injected fault.
    settings = RequestSettings(backoff_jitter=0, read_timeout=1.5, connect_timeout=5)
    with fake.serve() as url:
        clean = capture_tables(platform_for(fake, [], url=url, settings=settings), pid)
        fake.faults = FaultPlan(rate=0.1, seed=5, retry_after="1", max_faults=40, slow_seconds=4.0)
        sleeps: list[float] = []
        faulty = capture_tables(platform_for(fake, sleeps, url=url, settings=settings), pid)
    assert_same_capture(clean, faulty)
    kinds = Counter(kind for _, kind in fake.fault_log)
    assert sum(kinds.values()) >= 5, kinds
    assert len(sleeps) == len(fake.fault_log)


def test_wire_level_auth_error_has_no_token(fake: FakeSupervisely, rich: RichProject) -> None:
    token = secrets.token_hex(24)
    fake.echo_token_in_errors = True
    sleeps: list[float] = []
    with fake.serve() as url:
        platform = SuperviselyPlatform(url, token, settings=SCHEDULE, sleep=sleeps.append)
        with pytest.raises(AuthenticationError) as info:
            platform.get_project(str(rich.project_id))
        # the server did echo it back: the raw body holds the token, the error does not
        raw = httpx.post(
            f"{url}/public/api/v3/projects.info",
            headers={"x-api-key": token},
            content=json.dumps({"id": rich.project_id}),
        )
        assert token in raw.text
    assert token not in str(info.value)
    assert sleeps == []
