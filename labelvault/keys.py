"""Object keys: validation, and encoding of foreign names into safe key segments.

A key is a ``/``-separated relative path. It must not be able to escape a store's root on any
backend, so it may not be absolute, contain ``.`` or ``..`` segments, empty segments, a
backslash, or control characters. Names that come from platforms (project names, hosts) are
never used raw: :func:`safe_segment` encodes them reversibly into ``[A-Za-z0-9._~-]`` plus
``%XX`` escapes.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from labelvault.errors import InvalidKey

__all__ = ["MAX_KEY_BYTES", "join_key", "safe_segment", "unsafe_segment", "validate_key"]

MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_key(key: str, *, store: str = "?") -> str:
    """Return ``key`` unchanged if it is a safe relative key, else raise :class:`InvalidKey`."""
    problem = _key_problem(key)
    if problem:
        raise InvalidKey(f"invalid object key {key!r}: {problem}", store=store, key=key)
    return key


def _key_problem(key: str) -> str | None:
    if not key:
        return "the key is empty"
    if _CONTROL.search(key):
        return "it contains a control character (NUL, newline …)"
    if "\\" in key:
        return "it contains a backslash; use '/' to separate segments"
    if key.startswith("/"):
        return "it is absolute; keys are relative to the store's root"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"it is longer than {MAX_KEY_BYTES} bytes"
    segments = key.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "it contains a '.' or '..' segment"
    if any(segment == "" for segment in segments):
        return "it contains an empty segment ('//' or a trailing '/')"
    return None


def validate_prefix(prefix: str, *, store: str = "?") -> str:
    """Validate a listing prefix: empty, or a key that may end with ``/``."""
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix, store=store)
    return prefix


def join_key(*segments: str) -> str:
    """Join already-safe segments with ``/`` and validate the result."""
    return validate_key("/".join(segment.strip("/") for segment in segments if segment))


def safe_segment(name: str) -> str:
    """Encode any string (a project name, a host:port) into one safe, reversible key segment."""
    if not name:
        raise InvalidKey("cannot encode an empty name into a key segment", store="?", key=name)
    # quote() keeps "." as is; escape it too so no segment can read as "." or "..".
    return quote(name, safe="-_~").replace(".", "%2E")


def unsafe_segment(segment: str) -> str:
    """Invert :func:`safe_segment`."""
    return unquote(segment)
