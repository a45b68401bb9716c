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

from labelvault.errors import (
    AuthenticationError,
    PaginationError,
    PlatformNotFound,
    PlatformUnavailable,
)
from labelvault.http.settings import RequestSettings
from labelvault.platforms.base import PLATFORMS
from labelvault.platforms.labelstudio import (
    LabelStudioOptions,
    LabelStudioPlatform,
    is_personal_access_token,
    iter_json_array,
    task_rows,
)
from labelvault.platforms.labelstudio.exports import PredictionSpool
from labelvault.platforms.labelstudio.rows import Users, splice
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
    assert splice(value, encoded) == canonical_json(value)


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
        "meta": {"source": "cam"},
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


def _users(user_id: int = 7) -> Users:
    return Users([{"id": user_id, "email": "ann@example.com", "username": "ann"}])


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


class _ExportServer:
    """A server with one project whose exports name predictions by id, honouring Data
    Manager views on task ids the way Label Studio 1.23 does (``in`` is inclusive)."""

    def __init__(self, count: int, *, first_id: int = 1, fail_download: int | None = None):
        self.tasks: list[dict[str, Any]] = []
        self.predictions: list[dict[str, Any]] = []
        for n in range(first_id, first_id + count):
            task = _task(n, 100 * n, "2026-01-01T00:00:00Z")
            for prediction in task["predictions"]:
                self.predictions.append({**prediction, "task": n, "created_ago": "now"})
            task["predictions"] = [p["id"] for p in task["predictions"]]
            if n % 3 == 0:
                task["predictions"] = []  # listed, but not the task's any more
            task["meta"] = {"n": n}
            self.tasks.append(task)
        self.predictions.reverse()  # the listing is in no particular order
        self.views: dict[int, dict[str, Any]] = {}
        self.exports: dict[int, list[dict[str, Any]]] = {}
        self.titles: dict[int, str] = {}
        self.most_exports = 0
        self.downloads = 0
        self.fail_download = fail_download
        self._ids = iter(range(1, 10_000))

    def _selected(self, view_id: int | None) -> list[dict[str, Any]]:
        if view_id is None:
            return self.tasks
        where = self.views[view_id]["filters"]["items"][0]
        assert where["filter"] == "filter:tasks:id"
        op, value = where["operator"], where["value"]

        def keep(task_id: int) -> bool:
            if op == "in":
                return bool(value["min"] <= task_id <= value["max"])
            if op == "greater_or_equal":
                return task_id >= value
            assert op == "less_or_equal"
            return task_id <= value

        return [t for t in self.tasks if keep(t["id"])]

    def handler(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/api/projects/1":
            return httpx.Response(200, json={"id": 1, "title": "p", "label_config": "<View/>"})
        if path == "/api/users/":
            return httpx.Response(200, json=[{"id": 7, "email": "ann@example.com"}])
        if path == "/api/predictions/":
            return httpx.Response(200, content=json.dumps(self.predictions).encode())
        if path == "/api/tasks":
            ordering = json.loads(request.url.params["query"])["ordering"]
            ordered = sorted(self.tasks, key=lambda t: t["id"], reverse=ordering == ["-tasks:id"])
            page = [{"id": t["id"]} for t in ordered[:1]]
            return httpx.Response(200, json={"total": len(self.tasks), "tasks": page})
        if path == "/api/dm/views/" and method == "GET":
            views = [{"id": k, "data": v} for k, v in self.views.items()]
            return httpx.Response(200, json=views)
        if path == "/api/projects/1/exports/" and method == "GET":
            return httpx.Response(200, json=[{"id": k, "title": t} for k, t in self.titles.items()])
        if path == "/api/dm/views/" and method == "POST":
            view_id = next(self._ids)
            self.views[view_id] = json.loads(request.content)["data"]
            return httpx.Response(201, json={"id": view_id})
        if path.startswith("/api/dm/views/") and method == "DELETE":
            del self.views[int(path.split("/")[4])]
            return httpx.Response(204)
        if path == "/api/projects/1/exports/" and method == "POST":
            view = (json.loads(request.content).get("task_filter_options") or {}).get("view")
            export_id = next(self._ids)
            self.exports[export_id] = self._selected(view)
            self.titles[export_id] = json.loads(request.content)["title"]
            self.most_exports = max(self.most_exports, len(self.exports))
            counters = {"task_number": len(self.exports[export_id])}
            return httpx.Response(
                201, json={"id": export_id, "status": "completed", "counters": counters}
            )
        if path.endswith("/download"):
            self.downloads += 1
            if self.downloads == self.fail_download:
                return httpx.Response(500, text="boom")
            tasks = self.exports[int(path.split("/")[5])]
            return httpx.Response(200, content=json.dumps(tasks).encode())
        if path.startswith("/api/projects/1/exports/") and method == "DELETE":
            del self.exports[int(path.split("/")[5])]
            del self.titles[int(path.split("/")[5])]
            return httpx.Response(204)
        return httpx.Response(404, json={"detail": "not here"})

    def platform(self, **options: Any) -> LabelStudioPlatform:
        return LabelStudioPlatform(
            "http://ls.invalid",
            "t",
            settings=FAST,
            transport=httpx.MockTransport(self.handler),
            options=LabelStudioOptions(
                **{
                    "capture_mode": "export",
                    "page_size": 3,
                    "export_min_range_tasks": 1,
                    **options,
                }
            ),
        )


def _expected_rows(ids: range) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    users = _users()
    items, annotations = [], []
    for n in ids:
        task = _task(n, 100 * n, "2026-01-01T00:00:00Z")
        task["meta"] = {"n": n}
        if n % 3 == 0:
            task["predictions"] = []
        else:
            task["predictions"][0]["task"] = n
            task["predictions"][0]["created_ago"] = "now"
        item, rows = task_rows(task, users)
        items.append(item)
        annotations.extend(rows)
    return items, annotations


@pytest.mark.parametrize(
    ("partition", "concurrency", "first_id"),
    [(0, 1, 1), (10, 1, 1), (3, 1, 1), (4, 2, 5), (1, 3, 1), (2, 1, 1_000_000), (10, 3, 1)],
)
@pytest.mark.parametrize("slow_listing", [False, True])
def test_export_capture_reads_ranges_in_order_and_leaves_nothing_behind(
    partition: int,
    concurrency: int,
    first_id: int,
    slow_listing: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if slow_listing:
        load = PredictionSpool.load

        def slow(self: PredictionSpool, predictions: Iterator[Any]) -> None:
            time.sleep(0.2)
            load(self, predictions)

        monkeypatch.setattr(PredictionSpool, "load", slow)
    server = _ExportServer(10, first_id=first_id)
    with server.platform(export_partition_tasks=partition, export_concurrency=concurrency) as ls:
        pages = [(page.table, page.batch.to_pylist()) for page in ls.iter_pages("1")]
    assert [table for table, _ in pages] == ["project"] + ["items", "annotations"] * 4 + ["users"]
    items = [row for table, rows in pages if table == "items" for row in rows]
    annotations = [row for table, rows in pages if table == "annotations" for row in rows]
    expected_items, expected_annotations = _expected_rows(range(first_id, first_id + 10))
    assert [r["fingerprint"] for r in items] == [r["fingerprint"] for r in expected_items]
    assert [(r["key"], r["fingerprint"], r["raw"]) for r in annotations] == [
        (r["key"], r["fingerprint"], r["raw"]) for r in expected_annotations
    ]
    assert [r["raw"] for r in items] == [r["raw"] for r in expected_items]
    # At least two ranges per concurrent build.
    ranges = max(-(-10 // partition), 2 * concurrency if concurrency > 1 else 1) if partition else 1
    assert server.downloads == ranges
    assert server.views == {}
    assert server.exports == {}
    # At most the one being read, the one built next and the ones building.
    assert server.most_exports <= concurrency + 2


def test_ranges_are_not_cut_below_the_minimum() -> None:
    server = _ExportServer(10)
    with server.platform(export_concurrency=4, export_min_range_tasks=4) as ls:
        list(ls.iter_pages("1"))
    assert server.downloads == 2  # not 8 ranges of 1 or 2 tasks
    server = _ExportServer(10)
    with server.platform(export_concurrency=4, export_min_range_tasks=500) as ls:
        list(ls.iter_pages("1"))
    assert server.downloads == 1
    assert server.most_exports == 1


def test_failed_range_deletes_every_export_and_view() -> None:
    server = _ExportServer(10, fail_download=2)
    with (
        server.platform(export_partition_tasks=3, export_concurrency=2) as ls,
        pytest.raises(PlatformUnavailable, match="500"),
    ):
        list(ls.iter_pages("1"))
    assert server.downloads == 2
    assert server.views == {}
    assert server.exports == {}


def test_an_export_that_ignores_its_range_is_refused() -> None:
    server = _ExportServer(10)
    server._selected = lambda view_id: server.tasks  # type: ignore[method-assign]
    with (
        server.platform(export_partition_tasks=5) as ls,
        pytest.raises(PaginationError, match="did not apply the Data Manager view"),
    ):
        list(ls.iter_pages("1"))
    assert server.exports == {}


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
