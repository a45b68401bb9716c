"""Scrub secrets from URLs, headers and bodies before they reach an error message or a log.

Three layers, applied together by :class:`Redactor`:

- the exact secret values the caller knows (its own token) are replaced wherever they occur;
- query parameters and JSON/form fields with a secret-looking name (``token``, ``api_key``,
  ``access_token`` …) have their values masked;
- ``Authorization``/``x-api-key``-style headers and ``Bearer``/``Token`` credentials are masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "SECRET_HEADERS",
    "SECRET_PARAMS",
    "Redactor",
    "redact_headers",
    "redact_text",
    "redact_url",
]

#: What a secret is replaced with.
MASK = "***"

#: Query parameter and field names whose values are secrets (compared case-insensitively).
SECRET_PARAMS: frozenset[str] = frozenset(
    {
        "token",
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "secret",
        "password",
        "passwd",
        "auth",
        "authorization",
        "key",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "sig",
        "commit_token",
        "committoken",
        "sessionid",
    }
)

#: Header names whose values are secrets (compared case-insensitively).
SECRET_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "x-auth-token",
        "cookie",
        "set-cookie",
        "x-csrftoken",
    }
)

_NAMES = "|".join(sorted((re.escape(name) for name in SECRET_PARAMS), key=len, reverse=True))
# "token": "value"  /  'token': 'value'  (JSON and Python reprs)
_JSON_FIELD = re.compile(
    rf"""(?P<head>(["'])(?:{_NAMES})\2\s*:\s*)(?P<quote>["'])(?P<value>(?:\\.|(?!(?P=quote)).)*)(?P=quote)""",
    re.IGNORECASE,
)
# token=value in query strings, form bodies and free text
_ASSIGNMENT = re.compile(rf"(?P<head>\b(?:{_NAMES})=)(?P<value>[^&\s\"'<>;,]+)", re.IGNORECASE)
# Authorization: Bearer xxx / Token xxx / Basic xxx, and header lines such as "x-api-key: xxx"
_SCHEME = re.compile(r"(?P<head>\b(?:Bearer|Token|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{4,})")
_HEADER_LINE = re.compile(
    r"(?P<head>\b(?:"
    + "|".join(re.escape(h) for h in SECRET_HEADERS)
    + r")\s*:\s*)(?P<value>(?:(?:Bearer|Token|Basic)\s+)?[^\s,;]+)",
    re.IGNORECASE,
)


def redact_url(url: str | object) -> str:
    """``url`` with secret query parameters and any userinfo password masked."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return redact_text(text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
        query = urlencode(masked, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """A copy of ``headers`` with secret-bearing headers masked."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: (MASK if name.lower() in SECRET_HEADERS else value) for name, value in items}


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known ``secrets`` and secret-looking fields, params and credentials masked."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _JSON_FIELD.sub(lambda m: f"{m['head']}{m['quote']}{MASK}{m['quote']}", text)
    text = _ASSIGNMENT.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _HEADER_LINE.sub(lambda m: f"{m['head']}{MASK}", text)
    return _SCHEME.sub(lambda m: f"{m['head']}{MASK}", text)


class Redactor:
    """Redacts the caller's own secrets plus anything that looks like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def with_secrets(self, *secrets: str) -> Redactor:
        """A redactor that also knows ``secrets``."""
        return Redactor((*self._secrets, *secrets))

    def text(self, text: str) -> str:
        """Redact free text (an error body, an exception message)."""
        return redact_text(text, self._secrets)

    def url(self, url: str | object) -> str:
        """Redact a URL."""
        return self.text(redact_url(url))

    def headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
        """Redact headers."""
        return {name: self.text(value) for name, value in redact_headers(headers).items()}

    def __call__(self, text: str) -> str:
        return self.text(text)
