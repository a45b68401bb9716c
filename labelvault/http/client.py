"""The HTTP client of every platform adapter: one factory, one retrying caller.

:func:`build_client` makes the ``httpx.Client`` (base URL, auth headers, timeouts, pool limits,
an injectable transport). :class:`ApiClient` sends requests through the retry policy of
:mod:`labelvault.http.retrying` and translates what comes back at this one boundary:

========================================  =====================================
outcome                                   raised
========================================  =====================================
401, 403                                  :class:`~labelvault.errors.AuthenticationError`
404                                       :class:`~labelvault.errors.PlatformNotFound`
408, 429, 5xx (after retries)             :class:`~labelvault.errors.PlatformUnavailable`
transport errors (after retries)          :class:`~labelvault.errors.PlatformUnavailable`
other 3xx/4xx                             :class:`~labelvault.errors.RequestRejected`
========================================  =====================================

Every URL, header and body that reaches an error message or a log goes through a
:class:`~labelvault.http.redaction.Redactor` that knows the client's secrets.

Example::

    client = build_client("https://app.example.com", headers={"x-api-key": token})
    api = ApiClient(client, platform="supervisely", secrets=[token])
    info = api.request_json("POST", "/public/api/v3/projects.info", json={"id": 10})
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import tenacity
from tenacity import RetryCallState

from labelvault import jsonfast
from labelvault.errors import (
    AuthenticationError,
    PlatformError,
    PlatformNotFound,
    PlatformUnavailable,
    RequestRejected,
)
from labelvault.http.redaction import Redactor
from labelvault.http.retrying import RETRY_STATUSES, RetryableStatus, retry_policy
from labelvault.http.settings import RequestSettings

__all__ = [
    "ApiClient",
    "CallContext",
    "ErrorClassifier",
    "FileField",
    "build_client",
    "default_error",
]

logger = logging.getLogger("labelvault.http")

#: A multipart file field: ``(field name, (file name, bytes, content type))``. Bodies are bytes
#: so that every retry rebuilds the multipart body from scratch.
FileField = tuple[str, tuple[str, bytes, str]]

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_BODY_SNIPPET = 500


def build_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    settings: RequestSettings | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for one platform server.

    ``transport`` replaces the network (``httpx.MockTransport`` or an in-process app in tests);
    without it, the pool limits of ``settings`` apply.
    """
    settings = settings or RequestSettings()
    return httpx.Client(
        base_url=base_url,
        headers=dict(headers or {}),
        auth=auth,
        timeout=settings.timeout(),
        limits=settings.limits(),
        transport=transport,
        follow_redirects=False,
        trust_env=False,
    )


@dataclass(frozen=True)
class CallContext:
    """What an error classifier knows about the failed call (URL already redacted)."""

    platform: str
    method: str
    url: str
    project: str | None
    base_url: str


#: Turns a final non-2xx answer into a platform error, or returns None for the default mapping.
ErrorClassifier = Callable[[httpx.Response, CallContext, str], PlatformError | None]


def default_error(response: httpx.Response, context: CallContext, detail: str) -> PlatformError:
    """The default status → error mapping (see the module docstring)."""
    status = response.status_code
    where = f"{context.platform}: {context.method} {context.url}"
    kwargs: dict[str, Any] = {
        "platform": context.platform,
        "project": context.project,
        "status": status,
    }
    if status in (401, 403):
        return AuthenticationError(
            f"{where} answered {status}: the token was refused or lacks rights "
            f"(the token is not shown here): {detail}",
            **kwargs,
        )
    if status == 404:
        return PlatformNotFound(f"{where} answered 404 (not found): {detail}", **kwargs)
    if status in RETRY_STATUSES:
        return PlatformUnavailable(f"{where} answered {status}: {detail}", **kwargs)
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        return RequestRejected(
            f"{where} answered a redirect {status} to {location!r}; "
            f"is {context.base_url} the API address of the server?",
            **kwargs,
        )
    return RequestRejected(f"{where} answered {status}: {detail}", **kwargs)


class ApiClient:
    """Sends requests with retries and turns failures into :mod:`labelvault.errors`.

    ``secrets`` are the values that must never appear in a message or a log (the token);
    ``sleep`` and ``now`` are injectable so tests can assert the retry schedule without
    waiting; ``classify`` lets an adapter refine the status mapping (per-call overrides).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        platform: str,
        settings: RequestSettings | None = None,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
        classify: ErrorClassifier | None = None,
    ) -> None:
        self.client = client
        self.platform = platform
        self.settings = settings or RequestSettings()
        self.redactor = Redactor(secrets)
        self.sleep = sleep
        self.now = now
        self.classify = classify
        # No more requests in flight than the pool has connections: httpcore 1.0.9's sync pool
        # can close a connection it already gave to a queued request, which then waits out its
        # read timeout (encode/httpcore#1110); requests that never queue in the pool avoid it.
        self._slots = threading.BoundedSemaphore(self.settings.max_connections)

    # --- public ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        data: Mapping[str, Any] | None = None,
        files: Sequence[FileField] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        project: str | None = None,
    ) -> httpx.Response:
        """Send one request with retries; return a 2xx response or raise a platform error.

        ``idempotent`` defaults to True for GET/HEAD/OPTIONS/PUT/DELETE. Pass True for a
        write only when repeating it cannot duplicate anything (it sets values, or the
        caller checks whether an earlier attempt landed).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS

        def context() -> CallContext:  # only a retry or a failure needs the redacted URL
            return CallContext(
                platform=self.platform,
                method=method,
                url=self.redactor.url(self.client.build_request(method, url, params=params).url),
                project=project,
                base_url=self.redactor.url(self.client.base_url),
            )

        policy = retry_policy(
            self.settings,
            idempotent=idempotent,
            sleep=self.sleep,
            before_sleep=self._log_retry(context),
            now=self.now,
        )

        if json is not None:  # encoded once, in compiled code, for every attempt
            content = jsonfast.body(json)
            headers = dict(headers or {})
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"

        def attempt() -> httpx.Response:
            with self._slots:
                response = self.client.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    data=data,
                    files=list(files) if files is not None else None,
                    headers=headers,
                )
            if response.status_code in RETRY_STATUSES:
                raise RetryableStatus(response)
            return response

        try:
            response = policy(attempt)
        except RetryableStatus as exc:
            raise self._error(exc.response, context(), attempts=self._attempts(policy)) from None
        except httpx.TransportError as exc:
            raise self._transport_error(exc, context(), self._attempts(policy)) from None
        if not response.is_success:
            raise self._error(response, context(), attempts=self._attempts(policy))
        return response

    def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """:meth:`request`, then parse the body as JSON (an error says when it is not)."""
        response = self.request(method, url, **kwargs)
        return self.parse_json(response, project=kwargs.get("project"))

    def parse_json(self, response: httpx.Response, *, project: str | None = None) -> Any:
        """The JSON body of ``response``, or a :class:`RequestRejected` that names the URL."""
        try:
            return jsonfast.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            kind = response.headers.get("content-type", "no content type")
            raise RequestRejected(
                f"{self.platform}: {response.request.method} "
                f"{self.redactor.url(response.request.url)} answered {response.status_code} "
                f"with a body that is not JSON ({kind}); "
                f"is {self.redactor.url(self.client.base_url)} a {self.platform} server?",
                platform=self.platform,
                project=project,
                status=response.status_code,
            ) from None

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    # --- internals ------------------------------------------------------------------------

    @staticmethod
    def _attempts(policy: tenacity.Retrying) -> int:
        return int(policy.statistics.get("attempt_number", 1))

    def _detail(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except (UnicodeDecodeError, httpx.ResponseNotRead):
            text = ""
        try:
            body = jsonlib.loads(text) if text else None
        except ValueError:
            body = None
        if isinstance(body, dict) and ("error" in body or "details" in body or "detail" in body):
            parts = {k: body[k] for k in ("error", "details", "detail", "message") if k in body}
            text = jsonlib.dumps(parts, ensure_ascii=False, default=str)
        text = " ".join(text.split())
        if len(text) > _BODY_SNIPPET:
            text = text[:_BODY_SNIPPET] + " …"
        return self.redactor.text(text) or "(empty body)"

    def _error(
        self, response: httpx.Response, context: CallContext, *, attempts: int
    ) -> PlatformError:
        detail = self._detail(response)
        error = self.classify(response, context, detail) if self.classify else None
        if error is None:
            error = default_error(response, context, detail)
        if attempts > 1 and isinstance(error, PlatformUnavailable):
            error = PlatformUnavailable(
                f"{error.message} (gave up after {attempts} attempts)",
                platform=error.platform,
                project=error.project,
                status=error.status,
            )
        return error

    def _transport_error(
        self, exc: httpx.TransportError, context: CallContext, attempts: int
    ) -> PlatformError:
        reason = self.redactor.text(str(exc)) or "no detail"
        what = (
            f"{context.platform}: {context.method} {context.url} failed: "
            f"{type(exc).__name__}: {reason}"
        )
        tries = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            return RequestRejected(
                f"{what}; check the server URL {context.base_url}",
                platform=context.platform,
                project=context.project,
            )
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            what += f"; is {context.base_url} the right server URL and reachable?"
        return PlatformUnavailable(what + tries, platform=context.platform, project=context.project)

    def _log_retry(self, context_of: Callable[[], CallContext]) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            context = context_of()
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None and outcome.failed else None
            if isinstance(exc, RetryableStatus):
                reason = f"answered {exc.status}"
            else:
                reason = f"failed with {type(exc).__name__}: {self.redactor.text(str(exc))}"
            logger.warning(
                "%s: %s %s %s; retry %d in %.2f s",
                context.platform,
                context.method,
                context.url,
                reason,
                state.attempt_number,
                state.upcoming_sleep,
            )

        return log
