"""Paginators against small server-side paginators over generated records."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from labelvault.errors import PaginationError, RequestRejected
from labelvault.http import (
    ApiClient,
    CursorPaginator,
    NextUrlPaginator,
    PageNumberPaginator,
    PageRequest,
    RequestSettings,
    SinglePagePaginator,
    build_client,
    paginate,
)

RECORDS = [{"id": i} for i in range(1, 24)]


def api(handler: Any) -> ApiClient:
    client = build_client("http://p.test", transport=httpx.MockTransport(handler))
    return ApiClient(
        client, platform="p", settings=RequestSettings(backoff_jitter=0), sleep=lambda s: None
    )


def page_mode(*, lose_on_page: int | None = None, lie_total: int = 0) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        per_page = body.get("per_page", 10)
        page = body.get("page", 1)
        records = list(RECORDS)
        if lose_on_page is not None and page >= lose_on_page:
            del records[0]  # an entity vanished between pages: everything shifts left
        chunk = records[(page - 1) * per_page : page * per_page]
        return httpx.Response(
            200,
            json={
                "total": len(RECORDS) + (lie_total if page == 1 else 0),
                "perPage": per_page,
                "pagesCount": math.ceil(len(RECORDS) / per_page),
                "entities": chunk,
            },
        )

    return handler


def test_page_mode_collects_every_entity() -> None:
    pages = list(
        paginate(
            api(page_mode()),
            PageRequest("POST", "/x.list", json={"datasetId": 1}),
            PageNumberPaginator(per_page=10),
        )
    )
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [e["id"] for p in pages for e in p] == list(range(1, 24))
    assert pages[2].request.json == {"datasetId": 1, "page": 3, "per_page": 10}
    assert pages[0].total == 23


def test_page_mode_learns_page_size_from_the_server() -> None:
    pages = list(
        paginate(api(page_mode()), PageRequest("POST", "/x.list", json={}), PageNumberPaginator())
    )
    assert sum(len(p) for p in pages) == 23


def test_page_mode_detects_missing_entities() -> None:
    with pytest.raises(PaginationError, match=r"announced 23 entities but held 22"):
        list(
            paginate(
                api(page_mode(lose_on_page=2)),
                PageRequest("POST", "/x.list", json={}),
                PageNumberPaginator(per_page=10),
            )
        )


def test_page_mode_detects_a_moving_total() -> None:
    with pytest.raises(PaginationError, match="total changed"):
        list(
            paginate(
                api(page_mode(lie_total=1)),
                PageRequest("POST", "/x.list", json={}),
                PageNumberPaginator(per_page=10),
            )
        )


def test_total_only_paging_in_the_query_string() -> None:
    """Label Studio style: page/page_size in the query, stop once ``total`` were seen."""

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        size = int(request.url.params["page_size"])
        chunk = RECORDS[(page - 1) * size : page * size]
        if not chunk:
            return httpx.Response(404, json={"detail": "Invalid page."})
        return httpx.Response(200, json={"total": len(RECORDS), "tasks": chunk})

    paginator = PageNumberPaginator(
        per_page=5,
        per_page_param="page_size",
        entities_key="tasks",
        pages_key=None,
        per_page_key=None,
        in_body=False,
    )
    pages = list(
        paginate(api(handler), PageRequest("GET", "/api/tasks", params={"project": 1}), paginator)
    )
    assert sum(len(p) for p in pages) == 23
    assert len(pages) == 5


def token_mode(*, drop: bool = False) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["pagination_mode"] == "token"
        start = int(body.get("after") or 0)
        size = body["per_page"]
        chunk = RECORDS[start : start + size]
        if drop and start:
            chunk = chunk[1:]
        end = start + size
        return httpx.Response(
            200,
            json={
                "total": len(RECORDS),
                "after": str(end) if end < len(RECORDS) else None,
                "entities": chunk,
            },
        )

    return handler


def test_token_mode() -> None:
    paginator = CursorPaginator(per_page=7, extra={"pagination_mode": "token"})
    pages = list(
        paginate(
            api(token_mode()), PageRequest("POST", "/images.list", json={"datasetId": 3}), paginator
        )
    )
    assert [e["id"] for p in pages for e in p] == list(range(1, 24))
    assert pages[1].request.json == {
        "datasetId": 3,
        "pagination_mode": "token",
        "per_page": 7,
        "after": "7",
    }


def test_token_mode_detects_missing_entities() -> None:
    paginator = CursorPaginator(per_page=7, extra={"pagination_mode": "token"})
    with pytest.raises(PaginationError, match="went missing"):
        list(
            paginate(
                api(token_mode(drop=True)), PageRequest("POST", "/images.list", json={}), paginator
            )
        )


@pytest.mark.parametrize(
    ("payload", "paginator", "key"),
    [
        ({"total": 1, "perPage": 1, "pagesCount": 1}, PageNumberPaginator(), "entities"),
        ({"entities": [], "perPage": 1, "pagesCount": 1}, PageNumberPaginator(), "total"),
        ({"entities": [], "total": 0, "perPage": 1}, PageNumberPaginator(), "pagesCount"),
        ({"entities": {}, "total": 0, "pagesCount": 1}, PageNumberPaginator(), "entities"),
        ({"entities": [], "total": "3", "pagesCount": 1}, PageNumberPaginator(), "total"),
        ({"entities": [], "total": 0}, CursorPaginator(), "after"),
        ([1, 2], PageNumberPaginator(), "entities"),
        ({"results": []}, NextUrlPaginator(total_key=None), "next"),
        ({"x": 1}, SinglePagePaginator(), "(body)"),
    ],
)
def test_malformed_page_names_the_expected_key(payload: Any, paginator: Any, key: str) -> None:
    handler = lambda request: httpx.Response(200, json=payload)  # noqa: E731
    with pytest.raises(RequestRejected, match=rf"expected key '{__import__('re').escape(key)}'"):
        list(paginate(api(handler), PageRequest("POST", "/x.list", json={}), paginator))


def test_next_url_paginator() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", 1))
        chunk = RECORDS[(page - 1) * 10 : page * 10]
        nxt = f"http://p.test/api/projects?page={page + 1}" if page * 10 < len(RECORDS) else None
        return httpx.Response(200, json={"count": len(RECORDS), "next": nxt, "results": chunk})

    pages = list(paginate(api(handler), PageRequest("GET", "/api/projects"), NextUrlPaginator()))
    assert [e["id"] for p in pages for e in p] == list(range(1, 24))


def test_single_page_bare_array() -> None:
    handler = lambda request: httpx.Response(200, json=[{"id": 1}, {"id": 2}])  # noqa: E731
    pages = list(paginate(api(handler), PageRequest("POST", "/x"), SinglePagePaginator()))
    assert pages == [[{"id": 1}, {"id": 2}]]


def test_each_listing_needs_a_fresh_paginator() -> None:
    paginator = PageNumberPaginator(per_page=10)
    list(paginate(api(page_mode()), PageRequest("POST", "/x.list", json={}), paginator))
    assert paginator.collected == 23
    assert not paginator.has_next_page
