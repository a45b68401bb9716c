"""Checks of command-line input that the library would take too literally.

Each raises :class:`~labelvault.errors.ConfigurationError` (exit code 2) with one line that
names the flag, argument or variable and says what it should be.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from labelvault.errors import ConfigurationError
from labelvault.vault import VersionRef, parse_version_ref

__all__ = ["MAX_DAYS", "days", "server_url", "store_url", "version_ref"]

#: The longest age ``--keep-younger-than`` takes (about 1,000 years).
MAX_DAYS = 365_000
_VERSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MAX_PORT = 65535


def _shown(url: str) -> str:
    """``url`` with any ``user:password@`` masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def server_url(url: str, source: str) -> str:
    """``url`` if it is ``http(s)://host[:port][/path]``; ``source`` names where it came from."""
    shown = _shown(url)
    fix = f"set {source} to http(s)://host[:port], e.g. https://app.supervisely.com"
    if any(char.isspace() for char in url):
        raise ConfigurationError(f"{source} {shown!r} is not a URL (it has spaces); {fix}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            f"{source} {shown!r} has a bad port (a number from 1 to {_MAX_PORT}); {fix}"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigurationError(
            f"{source} {shown!r} does not start with http:// or https://; {fix}"
        )
    if not parts.hostname:
        raise ConfigurationError(f"{source} {shown!r} has no host; {fix}")
    if port is not None and not 1 <= port <= _MAX_PORT:
        raise ConfigurationError(
            f"{source} {shown!r} has a bad port (a number from 1 to {_MAX_PORT}); {fix}"
        )
    return url


def store_url(url: str, source: str) -> str:
    """``url`` unless it names an in-process memory store (which a command would forget)."""
    if url.strip().lower().startswith("memory://"):
        raise ConfigurationError(
            f"{source} {url!r} is an in-memory store, gone when the command ends (it is for "
            "tests); use a folder, file:///path or s3://bucket/prefix"
        )
    return url


def version_ref(text: str, name: str = "VERSION") -> VersionRef:
    """A VERSION argument: ``latest``, a version number (1, 2, …) or a version id."""
    ref = parse_version_ref(text)
    fix = "pass a version number (1, 2, …), a version id or 'latest'"
    if isinstance(ref, int) and ref < 1:
        raise ConfigurationError(f"{name} {text!r}: version numbers start at 1; {fix}")
    if isinstance(ref, str) and not _VERSION_ID.match(ref.lower()):
        raise ConfigurationError(f"{name} {text!r} is not a version; {fix}")
    return ref


def days(value: float, flag: str) -> float:
    """A positive, finite number of days that a date can be moved back by."""
    if not math.isfinite(value) or not 0 < value <= MAX_DAYS:
        raise ConfigurationError(
            f"{flag} takes a positive number of days up to {MAX_DAYS:,}, not {value!r}"
        )
    return value


def finite(value: float, flag: str) -> float:
    """``value`` when it is a finite number; one clear line otherwise."""
    if not math.isfinite(value):
        raise ConfigurationError(f"{flag} must be a finite number, not {value}")
    return value
