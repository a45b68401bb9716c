"""Label Studio authentication: legacy tokens, and personal access tokens (JWTs) exchanged
for short-lived access tokens."""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Generator
from typing import Any

import httpx

from labelvault.errors import (
    AuthenticationError,
    PlatformUnavailable,
    RequestRejected,
)
from labelvault.http.client import build_client
from labelvault.http.retrying import RETRY_STATUSES
from labelvault.http.settings import RequestSettings
from labelvault.platforms.labelstudio.rows import PLATFORM


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, or None when ``token`` is not one (no signature check)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        decoded = [
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        ]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    header, claims = decoded
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    return claims


def is_personal_access_token(token: str) -> bool:
    """True for a personal access token (a JWT refresh token), False for a legacy token."""
    return jwt_claims(token) is not None


class PersonalAccessTokenAuth(httpx.Auth):
    """Bearer auth with short-lived access tokens from ``POST /api/token/refresh/``.

    Refreshes before the access token expires (it lasts five minutes) and once more on a 401.
    """

    def __init__(
        self,
        refresh_token: str,
        *,
        base_url: str,
        settings: RequestSettings,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._refresh_token = refresh_token
        self._client = build_client(base_url, settings=settings, transport=transport)
        self._base_url = base_url
        self._lock = threading.Lock()
        self._access: str | None = None
        self._expires = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Attach a fresh access token; refresh and resend once on 401."""
        access = self._current(force=False)
        request.headers["Authorization"] = f"Bearer {access}"
        response = yield request
        if response.status_code == 401:
            access = self._current(force=True, stale=access)
            request.headers["Authorization"] = f"Bearer {access}"
            yield request

    def _current(self, *, force: bool, stale: str | None = None) -> str:
        with self._lock:
            fresh = self._access is not None and time.time() < self._expires - 30
            if self._access is not None and fresh and not (force and self._access == stale):
                return self._access
            self._access, self._expires = self._refresh()
            return self._access

    def _refresh(self) -> tuple[str, float]:
        response = self._client.post("/api/token/refresh/", json={"refresh": self._refresh_token})
        if response.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"{PLATFORM}: {self._base_url} refused the personal access token "
                f"(HTTP {response.status_code}); it is wrong, revoked or of another server "
                "(the token is not shown here)",
                platform=PLATFORM,
                status=response.status_code,
            )
        if response.status_code in RETRY_STATUSES:
            raise PlatformUnavailable(
                f"{PLATFORM}: {self._base_url} could not refresh the access token "
                f"(HTTP {response.status_code})",
                platform=PLATFORM,
                status=response.status_code,
            )
        try:
            access = str(response.json()["access"])
        except (ValueError, KeyError, TypeError):
            raise RequestRejected(
                f"{PLATFORM}: {self._base_url} answered the token refresh with "
                f"HTTP {response.status_code} and no access token; is it a Label Studio server?",
                platform=PLATFORM,
                status=response.status_code,
            ) from None
        claims = jwt_claims(access) or {}
        expires = float(claims.get("exp", time.time() + 240))
        return access, expires

    def close(self) -> None:
        """Close the refresh client."""
        self._client.close()
