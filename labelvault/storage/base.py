"""The object store seam: one small interface, several backends.

Everything labelvault persists (chunks, manifests, catalog records, leases, journals) goes
through :class:`ObjectStore`. The catalog's correctness rests on two conditional writes that
every backend implements atomically:

- :meth:`ObjectStore.put_if_absent` — create-only; exactly one of many racing writers wins.
- :meth:`ObjectStore.put_if_match` — compare-and-swap on the etag returned by ``get``/``head``.

Backends: :class:`~labelvault.storage.local.LocalStore` (a folder, the default),
:class:`~labelvault.storage.s3.S3Store` (boto3) and :class:`~labelvault.storage.memory.MemoryStore`.
All of them pass ``tests/storage/conformance.py``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING

from labelvault.errors import ObjectNotFound

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["ObjectInfo", "ObjectStore", "StoredObject"]


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` and ``list`` say about one object."""

    key: str
    size: int
    etag: str
    modified: datetime | None = None


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes together with the etag to compare-and-swap against."""

    data: bytes
    etag: str


class ObjectStore(ABC):
    """A flat namespace of immutable-by-convention objects under ``/``-separated keys.

    Keys are validated by every method (see :mod:`labelvault.storage.keys`). Etags are opaque
    strings: compare them for equality, never parse them.
    """

    #: A human-readable name for errors and logs (``local:/data``, ``s3://bucket/prefix``),
    #: never containing credentials.
    name: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Create or overwrite ``key`` atomically; return the new etag."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create ``key`` only if nothing is there; raise ``AlreadyExists`` otherwise."""

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace ``key`` only if its etag is still ``etag``; raise ``PreconditionFailed``."""

    @abstractmethod
    def get(self, key: str) -> StoredObject:
        """Read a whole (small) object; raise ``ObjectNotFound`` if missing."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Describe ``key`` without reading it; raise ``ObjectNotFound`` if missing."""

    @abstractmethod
    def open_read(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Stream a (large) object; raise ``ObjectNotFound`` if missing."""

    @abstractmethod
    def open_write(
        self, key: str, *, if_absent: bool = False
    ) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Stream a (large) object in; it becomes visible, whole, only when the block exits
        without an exception. With ``if_absent`` the final publish is create-only."""

    @abstractmethod
    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, fetching ``page_size`` at a
        time. Order is backend-specific; callers that need an order sort what they keep."""

    @abstractmethod
    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key``; a missing key is not an error. With ``if_match``, delete only while
        the etag is unchanged, else raise ``PreconditionFailed``."""

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str] | None:
        """A pyarrow filesystem and the root path that keys are relative to, when the backend
        has one (so DuckDB/pyarrow can scan Parquet in place); ``None`` otherwise."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections or other resources."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
