"""Label Studio adapter pieces that need no server: streaming JSON, rows, auth, errors."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelvault.errors import AuthenticationError, PlatformNotFound, PlatformUnavailable
from labelvault.http.settings import RequestSettings
from labelvault.platforms.base import PLATFORMS
from labelvault.platforms.labelstudio import (
    SOURCE_META_KEY,
    LabelStudioOptions,
    LabelStudioPlatform,
    _canonical,
    _PredictionSpool,
    _splice,
    _Users,
    is_personal_access_token,
    iter_json_array,
    task_rows,
)
from labelvault.snapshot.schema import canonical_json

FAST = RequestSettings(max_retries=0, connection_retries=0, backoff_factor=0.0, backoff_jitter=0.0)


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# --- streaming JSON -----------------------------------------------------------------------

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_values, max_size=8), st.integers(min_value=1, max_value=40), st.booleans())
def test_json_array_any_chunking(elements: list[Any], size: int, pretty: bool) -> None:
    text = json.dumps(elements, indent=1 if pretty else None, ensure_ascii=False)
    assert list(iter_json_array(_chunks(text.encode(), size))) == elements


def test_json_array_splits_multibyte_characters_and_numbers() -> None:
    data = json.dumps([{"t": "Grüße 🚀 ñ"}, 12345678901234567890, -0.0, 1e-300, "x"]).encode()
    for size in (1, 2, 3, 7):
        assert list(iter_json_array(_chunks(data, size))) == json.loads(data)


def test_json_array_large_element_is_linear() -> None:
    big = [{"data": "x" * 2_000_000}, {"n": 1}]
    data = json.dumps(big).encode()
    started = time.monotonic()
    assert list(iter_json_array(_chunks(data, 4096))) == big
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize(
    "text", ["", "[", '[{"a":1}', '[{"a":1},', '{"a":1}', "[1 2]", "[1]x", '[{"a":1}]]']
)
def test_json_array_rejects_truncated_or_foreign_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        list(iter_json_array(_chunks(text.encode(), 3)))


# --- rows ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _values, max_size=6), st.data())
def test_splice_is_canonical_json(value: dict[str, Any], data: st.DataObject) -> None:
    keys = data.draw(st.sets(st.sampled_from(sorted(value)), max_size=3)) if value else set()
    encoded = {key: canonical_json(value[key]) for key in keys}
    assert _splice(value, encoded) == canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_canonical_is_canonical_json(value: Any) -> None:
    assert _canonical(value) == canonical_json(value)


def _task(task_id: int, ann_id: int, stamp: str, users: int = 7) -> dict[str, Any]:
    region = {
        "id": "r1",
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "value": {
            "x": 10.125,
            "y": 0.1 + 0.2,
            "width": 3.0,
            "height": 4.0,
            "rectanglelabels": ["cat"],
        },
    }
    return {
        "id": task_id,
        "data": {"image": "http://example.invalid/a.jpg", "caption": "Grüße"},
        "meta": {"source": "cam", SOURCE_META_KEY: {"source": "000000000042"}},
        "created_at": stamp,
        "updated_at": stamp,
        "annotations": [
            {
                "id": ann_id + 1,
                "result": [
                    region,
                    {"id": "c", "type": "choices", "value": {"choices": ["day"]}},
                ],
                "completed_by": {"id": users, "email": "ann@example.com"},
                "was_cancelled": False,
                "ground_truth": True,
                "lead_time": 2.5,
                "created_at": stamp,
            },
            {
                "id": ann_id,
                "result": [],
                "completed_by": users,
                "was_cancelled": True,
                "ground_truth": False,
                "lead_time": None,
            },
        ],
        "predictions": [
            {"id": ann_id + 5, "result": [region], "score": 0.5, "model_version": "m1"}
        ],
        "drafts": [
            {
                "id": ann_id + 9,
                "user": "ann@example.com",
                "result": [region],
                "lead_time": 1.0,
                "annotation": ann_id + 1,
            }
        ],
    }


def _users(user_id: int = 7) -> _Users:
    return _Users([{"id": user_id, "email": "ann@example.com", "username": "ann"}])


def test_task_rows_keys_order_and_normalized_columns() -> None:
    item, rows = task_rows(_task(3, 100, "2026-01-01T00:00:00Z"), _users())
    assert item["key"] == "000000000003"
    assert item["link"] == "http://example.invalid/a.jpg"
    assert json.loads(item["meta"]) == {"source": "cam"}  # the restore marker is not content
    keys = [row["key"] for row in rows]
    assert keys == sorted(keys)
    assert keys == [
        "000000000003/a000000000100",
        "000000000003/a000000000101",
        "000000000003/d000000000109",
        "000000000003/p000000000105",
    ]
    by_key = {row["key"]: row for row in rows}
    first = by_key["000000000003/a000000000101"]
    assert first["class_name"] == "cat|day"
    assert first["geometry_type"] == "any"  # a rectangle and a choice
    assert first["author"] == "ann@example.com"
    assert json.loads(first["geometry"])[0]["value"]["y"] == 0.1 + 0.2
    cancelled = by_key["000000000003/a000000000100"]
    assert cancelled["geometry_type"] is None
    assert cancelled["author"] == "ann@example.com"
    prediction = by_key["000000000003/p000000000105"]
    assert (prediction["kind"], prediction["geometry_type"], prediction["class_name"]) == (
        "prediction",
        "rectangle",
        "cat",
    )
    draft = by_key["000000000003/d000000000109"]
    assert draft["kind"] == "draft"
    assert draft["author"] == "ann@example.com"


def test_fingerprints_ignore_ids_and_timestamps_but_not_content() -> None:
    item_a, rows_a = task_rows(_task(3, 100, "2026-01-01T00:00:00Z", users=7), _users(7))
    item_b, rows_b = task_rows(_task(900, 5000, "2027-05-05T10:00:00Z", users=2), _users(2))
    assert item_a["fingerprint"] == item_b["fingerprint"]
    assert sorted(r["fingerprint"] for r in rows_a) == sorted(r["fingerprint"] for r in rows_b)
    changed = _task(3, 100, "2026-01-01T00:00:00Z")
    changed["drafts"][0]["annotation"] = 100  # the draft now edits the other annotation
    _, rows_c = task_rows(changed, _users())
    assert sorted(r["fingerprint"] for r in rows_a) != sorted(r["fingerprint"] for r in rows_c)
    changed = _task(3, 100, "2026-01-01T00:00:00Z")
    changed["data"]["caption"] = "Grusse"
    item_d, _ = task_rows(changed, _users())
    assert item_d["fingerprint"] != item_a["fingerprint"]


def _export_server(count: int) -> httpx.MockTransport:
    """A server with one project whose export names predictions by id."""
    tasks = []
    predictions = []
    for n in range(1, count + 1):
        task = _task(n, 100 * n, "2026-01-01T00:00:00Z")
        for prediction in task["predictions"]:
            predictions.append({**prediction, "task": n, "created_ago": "now"})
        task["predictions"] = [p["id"] for p in task["predictions"]]
        if n % 3 == 0:
            task["predictions"] = []  # listed, but not the task's any more
        task["meta"] = {"n": n}
        tasks.append(task)
    predictions.reverse()  # the listing is in no particular order

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/projects/1":
            return httpx.Response(200, json={"id": 1, "title": "p", "label_config": "<View/>"})
        if path == "/api/users/":
            return httpx.Response(200, json=[{"id": 7, "email": "ann@example.com"}])
        if path == "/api/predictions/":
            return httpx.Response(200, content=json.dumps(predictions).encode())
        if path == "/api/projects/1/exports/" and request.method == "POST":
            return httpx.Response(201, json={"id": 4, "status": "completed"})
        if path == "/api/projects/1/exports/4/download":
            return httpx.Response(200, content=json.dumps(tasks).encode())
        if path == "/api/projects/1/exports/4" and request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(404, json={"detail": "not here"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("window", [0, 1, 4, 1000])
@pytest.mark.parametrize("slow_listing", [False, True])
def test_export_capture_holds_tasks_while_predictions_arrive(
    window: int, slow_listing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if slow_listing:
        load = _PredictionSpool.load

        def slow(self: _PredictionSpool, predictions: Iterator[Any]) -> None:
            time.sleep(0.2)
            load(self, predictions)

        monkeypatch.setattr(_PredictionSpool, "load", slow)
    options = LabelStudioOptions(export_hold_window=window, page_size=3)
    with LabelStudioPlatform(
        "http://ls.invalid", "t", settings=FAST, transport=_export_server(10), options=options
    ) as ls:
        pages = [(page.table, page.batch.to_pylist()) for page in ls.iter_pages("1")]
    assert [table for table, _ in pages] == ["project"] + ["items", "annotations"] * 4 + ["users"]
    items = [row for table, rows in pages if table == "items" for row in rows]
    annotations = [row for table, rows in pages if table == "annotations" for row in rows]
    users = _users()
    expected_items, expected_annotations = [], []
    for n in range(1, 11):
        task = _task(n, 100 * n, "2026-01-01T00:00:00Z")
        task["meta"] = {"n": n}
        if n % 3 == 0:
            task["predictions"] = []
        else:
            task["predictions"][0]["task"] = n
            task["predictions"][0]["created_ago"] = "now"
        item, rows = task_rows(task, users)
        expected_items.append(item)
        expected_annotations.extend(rows)
    assert [r["fingerprint"] for r in items] == [r["fingerprint"] for r in expected_items]
    assert [(r["key"], r["fingerprint"], r["raw"]) for r in annotations] == [
        (r["key"], r["fingerprint"], r["raw"]) for r in expected_annotations
    ]
    assert [r["raw"] for r in items] == [r["raw"] for r in expected_items]


# --- auth and errors ----------------------------------------------------------------------


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_token_form_decides_the_auth_scheme() -> None:
    assert is_personal_access_token(_jwt({"token_type": "refresh", "exp": 9999999999}))
    assert not is_personal_access_token("0123456789abcdef0123456789abcdef01234567")
    assert not is_personal_access_token("a.b.c")


def test_legacy_token_header_and_redacted_errors() -> None:
    token = secrets.token_hex(20)  # the legacy token's form: 40 hex digits
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if request.url.path == "/api/projects/5":
            return httpx.Response(404, json={"detail": "No Project matches the given query."})
        return httpx.Response(401, json={"detail": f"Invalid token {token}."})

    ls = LabelStudioPlatform(
        "http://ls.invalid:8080", token, settings=FAST, transport=httpx.MockTransport(handler)
    )
    with ls:
        with pytest.raises(PlatformNotFound) as missing:
            ls.get_project("5")
        with pytest.raises(AuthenticationError) as refused:
            ls.get_project("6")
    assert "project 5 does not exist" in str(missing.value)
    assert seen == [f"Token {token}", f"Token {token}"]
    for exc in (missing.value, refused.value):
        assert token not in str(exc)
        assert token not in repr(exc.args)
    assert ls.instance == "ls.invalid:8080"
    assert PLATFORMS["labelstudio"] is LabelStudioPlatform


def test_personal_access_token_refreshes_and_retries_on_401() -> None:
    refresh = _jwt({"token_type": "refresh", "exp": 9999999999})
    accesses = [_jwt({"token_type": "access", "exp": time.time() + 300, "n": n}) for n in (1, 2)]
    issued: list[str] = []
    answered: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/token/refresh/":
            assert json.loads(request.content) == {"refresh": refresh}
            issued.append(accesses[len(issued)])
            return httpx.Response(200, json={"access": issued[-1]})
        auth = request.headers["authorization"]
        answered.append(auth)
        if auth == f"Bearer {accesses[0]}" and len(answered) > 1:
            return httpx.Response(401, json={"detail": "Token is invalid or expired"})
        return httpx.Response(200, json={"id": 5, "title": "p", "task_number": 3})

    with LabelStudioPlatform(
        "http://ls.invalid", refresh, settings=FAST, transport=httpx.MockTransport(handler)
    ) as ls:
        assert ls.get_project("5").counts == {"items": 3}
        assert ls.get_project("5").name == "p"  # the first access token is refused now
        assert ls.get_project("5").name == "p"
    assert (
        answered
        == [f"Bearer {accesses[0]}", f"Bearer {accesses[0]}"] + [f"Bearer {accesses[1]}"] * 2
    )
    assert len(issued) == 2


def test_refused_personal_access_token_is_an_authentication_error() -> None:
    refresh = _jwt({"token_type": "refresh", "exp": 9999999999})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "Token is invalid or expired"})

    with (
        LabelStudioPlatform(
            "http://ls.invalid", refresh, settings=FAST, transport=httpx.MockTransport(handler)
        ) as ls,
        pytest.raises(AuthenticationError) as refused,
    ):
        ls.get_project("1")
    assert refresh not in str(refused.value)
    assert "personal access token" in str(refused.value)


def test_unreachable_server_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    token = secrets.token_hex(20)
    with (
        LabelStudioPlatform(
            "http://ls.invalid", token, settings=FAST, transport=httpx.MockTransport(handler)
        ) as ls,
        pytest.raises(PlatformUnavailable) as down,
    ):
        ls.get_project("1")
    assert token not in str(down.value)
