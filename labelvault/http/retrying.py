"""The retry policy, composed from tenacity strategies.

Which calls are retried, and on what:

===========================  ==============================  ==============================
outcome                      idempotent call (reads)         other calls (writes)
===========================  ==============================  ==============================
408, 429, 5xx answer         retried (``max_retries``)       only 429 (the server refused
                                                             before doing anything)
transport error              retried (``connection_retries``) only when the request never
                                                             left (connect errors, pool full)
anything else                not retried                     not retried
===========================  ==============================  ==============================

The wait before retry ``n`` is the server's ``Retry-After`` (seconds or an HTTP date), clamped
to ``[retry_after_min, retry_after_max]``, or else ``backoff_factor * 2**(n-1)`` plus up to
``backoff_jitter`` seconds, capped at ``backoff_max``. A call gives up once its next sleep would
take it past ``max_elapsed`` seconds. ``sleep`` is injectable, so tests record the schedule
instead of waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity
from tenacity import RetryCallState
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from labelvault.http.settings import RequestSettings

__all__ = [
    "NOT_SENT_ERRORS",
    "RETRY_STATUSES",
    "RetryableStatus",
    "parse_retry_after",
    "retry_if_status",
    "retry_if_transport_error",
    "retry_policy",
    "stop_after_kind",
    "stop_before_idle",
    "wait_retry_after",
]

#: Statuses that mean "try again later".
RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504, 509, 598, 599})

#: Transport errors raised before any byte of the request reached the server.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

#: Transport errors that a retry cannot cure (bad URL scheme, a request httpx cannot send).
_PERMANENT_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)


class RetryableStatus(Exception):
    """An answer whose status asks to try again; carries the (already read) response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response

    @property
    def status(self) -> int:
        """The HTTP status of the answer."""
        return self.response.status_code


def parse_retry_after(
    value: str | None, *, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now() if now is not None else datetime.now(UTC)
        return max(0.0, (when - current).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _last_exception(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


class retry_if_status(retry_base):
    """Retry when the attempt ended with one of ``statuses``."""

    def __init__(self, statuses: Collection[int] = RETRY_STATUSES) -> None:
        self.statuses = frozenset(statuses)

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = _last_exception(retry_state)
        return isinstance(exc, RetryableStatus) and exc.status in self.statuses


class retry_if_transport_error(retry_base):
    """Retry when the attempt raised one of ``types`` (an httpx transport error)."""

    def __init__(self, types: tuple[type[BaseException], ...] = (httpx.TransportError,)) -> None:
        self.types = types

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = _last_exception(retry_state)
        return isinstance(exc, self.types) and not isinstance(exc, _PERMANENT_TRANSPORT_ERRORS)


class stop_after_kind(stop_base):
    """Stop after ``max_attempts`` attempts when the last one failed with one of ``types``."""

    def __init__(self, types: tuple[type[BaseException], ...], max_attempts: int) -> None:
        self.types = types
        self.max_attempts = max_attempts

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = _last_exception(retry_state)
        return isinstance(exc, self.types) and retry_state.attempt_number >= self.max_attempts


class stop_before_idle(stop_base):
    """Stop when the sleeps so far plus the next one would exceed ``budget`` seconds.

    Unlike ``stop_before_delay`` it counts only the planned sleeps, so it holds with an
    injected ``sleep`` too.
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.idle_for + retry_state.upcoming_sleep > self.budget


class wait_retry_after(wait_base):
    """Wait what the server's ``Retry-After`` asks, clamped to ``[floor, cap]``; otherwise
    defer to ``fallback``."""

    def __init__(
        self,
        fallback: wait_base,
        *,
        floor: float,
        cap: float,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.fallback = fallback
        self.floor = floor
        self.cap = max(cap, floor)
        self.now = now

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = _last_exception(retry_state)
        if isinstance(exc, RetryableStatus):
            asked = parse_retry_after(exc.response.headers.get("retry-after"), now=self.now)
            if asked is not None:
                return min(self.cap, max(self.floor, asked))
        return float(self.fallback(retry_state))


def retry_policy(
    settings: RequestSettings,
    *,
    idempotent: bool,
    sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    now: Callable[[], datetime] | None = None,
) -> tenacity.Retrying:
    """The tenacity policy for one call; see the module docstring for what it retries.

    The wrapped function raises :class:`RetryableStatus` for answers worth retrying and lets
    httpx transport errors propagate. The last outcome is re-raised when retries run out.
    """
    if idempotent:
        retry: retry_base = retry_if_status(RETRY_STATUSES) | retry_if_transport_error()
    else:
        retry = retry_if_status({429}) | retry_if_transport_error(NOT_SENT_ERRORS)
    backoff = tenacity.wait_exponential(
        multiplier=settings.backoff_factor, exp_base=2, max=settings.backoff_max
    ) + tenacity.wait_random(0, settings.backoff_jitter)
    wait = wait_retry_after(
        backoff, floor=settings.retry_after_min, cap=settings.retry_after_max, now=now
    )
    stop = (
        stop_after_kind((RetryableStatus,), settings.max_retries + 1)
        | stop_after_kind((httpx.TransportError,), settings.connection_retries + 1)
        | tenacity.stop_before_delay(settings.max_elapsed)
        | stop_before_idle(settings.max_elapsed)
    )
    kwargs: dict[str, Any] = {}
    if before_sleep is not None:
        kwargs["before_sleep"] = before_sleep
    return tenacity.Retrying(retry=retry, wait=wait, stop=stop, sleep=sleep, reraise=True, **kwargs)
