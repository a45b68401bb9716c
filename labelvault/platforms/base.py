"""What the pipeline needs from an annotation platform, and the registry of platforms by name.

A platform adapter turns a project into record batches of the tables in
:mod:`labelvault.snapshot.schema` (capture) and writes such tables back as a new project
(restore). It never holds a whole project in memory: :meth:`Platform.iter_pages` is a generator
of bounded batches, and restore consumes readers that stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import pyarrow as pa

from labelvault.errors import ConfigurationError

__all__ = [
    "PLATFORMS",
    "Platform",
    "ProjectInfo",
    "TablePage",
    "get_platform_factory",
    "instance_from_url",
    "register_platform",
]


@dataclass(frozen=True)
class ProjectInfo:
    """A project as the platform describes it."""

    platform: str
    instance: str  # safe encoding of the server's host, see ``Platform.instance``
    project_id: str
    name: str
    kind: str
    updated_at: datetime | None = None
    workspace_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TablePage:
    """One bounded batch of rows of one table, in key order."""

    table: str
    batch: pa.RecordBatch


@runtime_checkable
class Platform(Protocol):
    """An annotation platform, as capture and restore see it."""

    #: Registry name: ``supervisely``, ``labelstudio`` …
    name: str

    @property
    def instance(self) -> str:
        """A safe, stable encoding of the server this adapter talks to (host and port), so two
        servers of one platform never share a history."""
        ...

    def get_project(self, project_id: str) -> ProjectInfo:
        """Describe a project; raises ``PlatformNotFound`` or ``UnsupportedProject``."""
        ...

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        """Stream the project's content, table by table and page by page, each table in
        strictly increasing key order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def instance_from_url(server_url: str) -> str:
    """The ``instance`` of a server: its host and port, lowercased (``app.example.com:443``).

    Scheme and path are left out, so ``https://h/`` and ``https://h/api`` share a history.
    """
    parts = urlsplit(server_url if "://" in server_url else f"https://{server_url}")
    if not parts.hostname:
        raise ConfigurationError(f"server URL {server_url!r} has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname.lower()}:{port}"


PlatformFactory = Callable[..., Platform]

#: Platform factories by name; use :func:`register_platform` to add one.
PLATFORMS: dict[str, PlatformFactory] = {}


def register_platform(name: str, factory: PlatformFactory) -> None:
    """Make a platform available by name (``labelvault --platform NAME``)."""
    PLATFORMS[name] = factory


def get_platform_factory(name: str) -> PlatformFactory:
    """The factory registered under ``name``; the error lists the valid names."""
    try:
        return PLATFORMS[name]
    except KeyError:
        valid = ", ".join(sorted(PLATFORMS)) or "(none registered)"
        raise ConfigurationError(f"unknown platform {name!r}; known platforms: {valid}") from None
