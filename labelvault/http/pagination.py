"""Paginators: small stateful objects that walk one listing, page by page.

The contract follows dlt's ``BasePaginator``: :meth:`BasePaginator.init_request` prepares the
first request, :meth:`BasePaginator.update_state` reads a page (returning its entities and
remembering what the next request needs), :meth:`BasePaginator.update_request` turns that into
the next request, and :attr:`BasePaginator.has_next_page` says when to stop. After the last
page :meth:`BasePaginator.check_complete` verifies the pages against their own total, so a
listing that lost entities while it ran fails instead of silently returning fewer.

Paginators hold state: make a fresh one for every listing. :func:`paginate` runs one through an
:class:`~labelvault.http.client.ApiClient` and yields :class:`Page` objects.

A page that lacks a key the paginator needs raises :class:`MalformedPage` naming that key;
:func:`paginate` turns it into a :class:`~labelvault.errors.RequestRejected` and pages that
disagree with their totals into a :class:`~labelvault.errors.PaginationError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from labelvault.errors import PaginationError, RequestRejected
from labelvault.http.client import ApiClient

__all__ = [
    "BasePaginator",
    "CursorPaginator",
    "IncompleteListing",
    "MalformedPage",
    "NextUrlPaginator",
    "Page",
    "PageNumberPaginator",
    "PageRequest",
    "SinglePagePaginator",
    "paginate",
]


class MalformedPage(ValueError):
    """A page lacks a key the paginator expected, or holds a value of the wrong type."""

    def __init__(self, key: str, expected: str, got: Any) -> None:
        shown = repr(got)
        if len(shown) > 120:
            shown = shown[:120] + " …"
        super().__init__(f"expected key {key!r} ({expected}) in the page, got {shown}")
        self.key = key


class IncompleteListing(ValueError):
    """The pages disagree with the total they announced."""


@dataclass
class PageRequest:
    """The request of one page: paginators update ``params`` (query) or ``json`` (body)."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None

    def fields(self, in_body: bool) -> dict[str, Any]:
        """The mapping page parameters go into: the JSON body or the query string."""
        if in_body:
            if self.json is None:
                self.json = {}
            return self.json
        return self.params


class Page(list[Any]):
    """The entities of one page, with the request that fetched it and its position."""

    def __init__(
        self, entities: list[Any], *, number: int, total: int | None, request: PageRequest
    ) -> None:
        super().__init__(entities)
        self.number = number
        self.total = total
        self.request = request


def _require(payload: Any, key: str, kind: type | tuple[type, ...], expected: str) -> Any:
    if not isinstance(payload, Mapping):
        raise MalformedPage(key, f"a JSON object holding {expected}", payload)
    if key not in payload:
        raise MalformedPage(key, expected, f"keys {sorted(payload)}")
    value = payload[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise MalformedPage(key, expected, value)
    return value


class BasePaginator(ABC):
    """One listing's walk through its pages."""

    def __init__(self, *, entities_key: str | None, total_key: str | None) -> None:
        self.entities_key = entities_key
        self.total_key = total_key
        self.total: int | None = None
        self.collected = 0
        self.pages = 0
        self._has_next_page = True

    @property
    def has_next_page(self) -> bool:
        """Whether another page should be requested."""
        return self._has_next_page

    def init_request(self, request: PageRequest) -> None:  # noqa: B027 - optional hook
        """Prepare the first request."""

    def entities(self, payload: Any) -> list[Any]:
        """The entity list of ``payload``; raises :class:`MalformedPage` when it is missing."""
        if self.entities_key is None:
            if not isinstance(payload, list):
                raise MalformedPage("(body)", "a JSON array of entities", payload)
            return payload
        return list(_require(payload, self.entities_key, list, "an array of entities"))

    def read_total(self, payload: Any) -> None:
        """Remember the announced total; a total that moves between pages is an error."""
        if self.total_key is None:
            return
        total = int(_require(payload, self.total_key, int, "the integer total"))
        if self.total is not None and total != self.total:
            raise IncompleteListing(
                f"the total changed from {self.total} to {total} during the listing "
                "(entities were added or removed meanwhile)"
            )
        self.total = total

    @abstractmethod
    def update_state(self, payload: Any) -> list[Any]:
        """Read one page; return its entities and decide whether there is a next one."""

    @abstractmethod
    def update_request(self, request: PageRequest) -> None:
        """Turn ``request`` into the request of the next page."""

    def check_complete(self) -> None:
        """After the last page: the entities seen must match the announced total."""
        if self.total is not None and self.collected != self.total:
            raise IncompleteListing(
                f"the pages announced {self.total} entities but held {self.collected} "
                "(entities went missing during the listing)"
            )


class SinglePagePaginator(BasePaginator):
    """A listing that answers everything at once (a bare array, or one keyed array)."""

    def __init__(self, *, entities_key: str | None = None, total_key: str | None = None) -> None:
        super().__init__(entities_key=entities_key, total_key=total_key)

    def update_state(self, payload: Any) -> list[Any]:
        """The one page."""
        entities = self.entities(payload)
        self.read_total(payload)
        self.collected += len(entities)
        self._has_next_page = False
        return entities

    def update_request(self, request: PageRequest) -> None:
        """Never called: there is no next page."""


class PageNumberPaginator(BasePaginator):
    """``page``/``per_page`` listings (Supervisely page mode, Label Studio task lists).

    Stops after ``pages_key`` pages when the answer has it, else once ``total`` entities were
    seen or a page comes back empty.
    """

    def __init__(
        self,
        *,
        per_page: int | None = None,
        first_page: int = 1,
        page_param: str = "page",
        per_page_param: str = "per_page",
        entities_key: str = "entities",
        total_key: str | None = "total",
        pages_key: str | None = "pagesCount",
        per_page_key: str | None = "perPage",
        in_body: bool = True,
    ) -> None:
        super().__init__(entities_key=entities_key, total_key=total_key)
        self.per_page = per_page
        self.page = first_page
        self.page_param = page_param
        self.per_page_param = per_page_param
        self.pages_key = pages_key
        self.per_page_key = per_page_key
        self.in_body = in_body
        self.pages_count: int | None = None

    def init_request(self, request: PageRequest) -> None:
        """Ask for the first page."""
        target = request.fields(self.in_body)
        target[self.page_param] = self.page
        if self.per_page is not None:
            target[self.per_page_param] = self.per_page

    def update_state(self, payload: Any) -> list[Any]:
        """Read a page; the next one exists while pages (or entities) remain."""
        entities = self.entities(payload)
        self.read_total(payload)
        if self.pages_key is not None:
            self.pages_count = int(_require(payload, self.pages_key, int, "the page count"))
        if self.per_page is None and self.per_page_key is not None and self.per_page_key in payload:
            self.per_page = int(_require(payload, self.per_page_key, int, "the page size"))
        self.collected += len(entities)
        self.pages += 1
        if self.pages_count is not None:
            self._has_next_page = self.page < self.pages_count
        elif self.total is not None:
            self._has_next_page = bool(entities) and self.collected < self.total
        else:
            self._has_next_page = bool(entities)
        if self._has_next_page and not entities:
            raise IncompleteListing(
                f"page {self.page} came back empty with {self.collected} of {self.total} "
                "entities seen (entities went missing during the listing)"
            )
        return entities

    def update_request(self, request: PageRequest) -> None:
        """Ask for the next page number."""
        self.page += 1
        target = request.fields(self.in_body)
        target[self.page_param] = self.page
        if self.per_page is not None:
            target[self.per_page_param] = self.per_page


class CursorPaginator(BasePaginator):
    """Cursor listings: the answer names the cursor of the next page, null at the end
    (Supervisely token mode: ``pagination_mode: "token"`` and ``after``)."""

    def __init__(
        self,
        *,
        cursor_key: str = "after",
        cursor_param: str = "after",
        per_page: int | None = None,
        per_page_param: str = "per_page",
        extra: Mapping[str, Any] | None = None,
        entities_key: str = "entities",
        total_key: str | None = "total",
        in_body: bool = True,
    ) -> None:
        super().__init__(entities_key=entities_key, total_key=total_key)
        self.cursor_key = cursor_key
        self.cursor_param = cursor_param
        self.per_page = per_page
        self.per_page_param = per_page_param
        self.extra = dict(extra or {})
        self.in_body = in_body
        self.cursor: Any = None

    def init_request(self, request: PageRequest) -> None:
        """Ask for the first page (no cursor)."""
        target = request.fields(self.in_body)
        target.update(self.extra)
        if self.per_page is not None:
            target[self.per_page_param] = self.per_page
        target.pop(self.cursor_param, None)

    def update_state(self, payload: Any) -> list[Any]:
        """Read a page and its next cursor."""
        entities = self.entities(payload)
        self.read_total(payload)
        if not isinstance(payload, Mapping) or self.cursor_key not in payload:
            raise MalformedPage(self.cursor_key, "the next cursor or null", payload)
        self.cursor = payload[self.cursor_key]
        self.collected += len(entities)
        self.pages += 1
        self._has_next_page = self.cursor not in (None, "")
        if self._has_next_page and not entities:
            raise IncompleteListing(
                f"page {self.pages} came back empty but named a next cursor "
                f"({self.collected} of {self.total} entities seen)"
            )
        return entities

    def update_request(self, request: PageRequest) -> None:
        """Pass the cursor on."""
        request.fields(self.in_body)[self.cursor_param] = self.cursor


class NextUrlPaginator(BasePaginator):
    """Listings whose answer holds the URL of the next page (``{"count","next","results"}``)."""

    def __init__(
        self,
        *,
        next_key: str = "next",
        entities_key: str = "results",
        total_key: str | None = "count",
    ) -> None:
        super().__init__(entities_key=entities_key, total_key=total_key)
        self.next_key = next_key
        self.next_url: str | None = None

    def update_state(self, payload: Any) -> list[Any]:
        """Read a page and the next page's URL."""
        entities = self.entities(payload)
        self.read_total(payload)
        if not isinstance(payload, Mapping) or self.next_key not in payload:
            raise MalformedPage(self.next_key, "the next page's URL or null", payload)
        nxt = payload[self.next_key]
        if nxt is not None and not isinstance(nxt, str):
            raise MalformedPage(self.next_key, "the next page's URL or null", nxt)
        self.next_url = nxt or None
        self.collected += len(entities)
        self.pages += 1
        self._has_next_page = self.next_url is not None
        return entities

    def update_request(self, request: PageRequest) -> None:
        """Follow the next URL (it carries its own query string)."""
        assert self.next_url is not None
        request.url = self.next_url
        request.params = {}


def paginate(
    api: ApiClient,
    request: PageRequest,
    paginator: BasePaginator,
    *,
    project: str | None = None,
    idempotent: bool = True,
) -> Iterator[Page]:
    """Yield the pages of one listing through ``api``.

    Raises :class:`~labelvault.errors.PaginationError` when the pages disagree with their
    totals and :class:`~labelvault.errors.RequestRejected` for a malformed page.
    """
    platform = api.platform
    paginator.init_request(request)
    number = 0
    while True:
        number += 1
        shown = api.redactor.url(request.url)
        payload = api.request_json(
            request.method,
            request.url,
            params=request.params or None,
            json=request.json,
            project=project,
            idempotent=idempotent,
        )
        try:
            entities = paginator.update_state(payload)
        except MalformedPage as exc:
            raise RequestRejected(
                f"{platform}: malformed page {number} of {request.method} {shown}: {exc}",
                platform=platform,
                project=project,
            ) from None
        except IncompleteListing as exc:
            raise PaginationError(
                f"{platform}: listing {request.method} {shown} is inconsistent: {exc}",
                platform=platform,
                project=project,
            ) from None
        snapshot = PageRequest(
            request.method,
            request.url,
            dict(request.params),
            dict(request.json) if request.json is not None else None,
        )
        yield Page(entities, number=number, total=paginator.total, request=snapshot)
        if not paginator.has_next_page:
            break
        paginator.update_request(request)
    try:
        paginator.check_complete()
    except IncompleteListing as exc:
        raise PaginationError(
            f"{platform}: listing {request.method} {api.redactor.url(request.url)} "
            f"is inconsistent: {exc}",
            platform=platform,
            project=project,
        ) from None
