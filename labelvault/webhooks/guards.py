"""What the bridge refuses before it emits: credentials in query strings, foreign content
types, oversized fields, floods and repeats."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qsl, unquote_plus

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from labelvault.events import MAX_FIELD_CHARS
from labelvault.webhooks.limits import CREDENTIAL_NAME, MAX_ENTRIES, SECRET_HEADER

if TYPE_CHECKING:
    pass


class TokenBuckets:
    """A token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def take(self, key: tuple[str, str]) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        now = self.clock()
        tokens, then = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self.buckets[key] = (tokens, now)
        while len(self.buckets) > MAX_ENTRIES:
            self.buckets.popitem(last=False)
        return wait


@dataclass(frozen=True)
class Emitted:
    event_id: str
    resource: Mapping[str, Any]


_K = TypeVar("_K")
_V = TypeVar("_V")


class Expiring(Generic[_K, _V]):
    """A bounded map whose entries expire ``ttl`` seconds after they were put."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self.entries: OrderedDict[_K, tuple[float, _V]] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        found = self.entries.get(key)
        if found is None:
            return None
        if self.clock() >= found[0]:
            del self.entries[key]
            return None
        return found[1]

    def put(self, key: _K, value: _V) -> None:
        self.entries.pop(key, None)
        self.entries[key] = (self.clock() + self.ttl, value)
        while len(self.entries) > MAX_ENTRIES:
            self.entries.popitem(last=False)


# --- the application -------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message}, self.status, headers=self.headers)


def credential_in_query(query: bytes, secret: str) -> bool:
    """Whether the query string names a credential or carries the secret."""
    text = query.decode("latin-1")
    if secret in unquote_plus(text):
        return True
    return any(
        CREDENTIAL_NAME.search(name.lower()) for name, _ in parse_qsl(text, keep_blank_values=True)
    )


class RefuseQuerySecrets:
    """ASGI middleware: 400 for any request with a credential in its query string."""

    def __init__(self, app: ASGIApp, *, secret: str) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and credential_in_query(scope["query_string"], self.secret):
            response = JSONResponse(
                {
                    "error": "credentials do not belong in the query string; "
                    f"send the secret in the {SECRET_HEADER} header"
                },
                400,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, in UTF-8 if a charset is named."""
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    kind, _, subtype = media.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def bounded(what: str, value: str) -> str:
    if len(value) > MAX_FIELD_CHARS:
        raise Refused(
            422, f"the {what} is {len(value)} characters long; at most {MAX_FIELD_CHARS} allowed"
        )
    return value
