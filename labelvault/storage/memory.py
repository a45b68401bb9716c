"""An in-process object store for fast tests and dry runs."""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

from labelvault.errors import AlreadyExists, ObjectNotFound, PreconditionFailed
from labelvault.storage.base import ObjectInfo, ObjectStore, StoredObject
from labelvault.storage.keys import validate_key, validate_prefix

__all__ = ["MemoryStore"]


class MemoryStore(ObjectStore):
    """Objects in a dict guarded by one lock; etags are content hashes plus a generation."""

    def __init__(self, name: str = "memory") -> None:
        self.name = f"memory:{name}"
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, str, datetime]] = {}
        self._generation = 0

    def _key(self, key: str) -> str:
        return validate_key(key, store=self.name)

    def _store(self, key: str, data: bytes) -> str:
        self._generation += 1
        etag = f"{hashlib.md5(data, usedforsecurity=False).hexdigest()}-{self._generation}"
        self._objects[key] = (bytes(data), etag, datetime.now(UTC))
        return etag

    def put(self, key: str, data: bytes) -> str:
        key = self._key(key)
        with self._lock:
            return self._store(key, data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        key = self._key(key)
        with self._lock:
            if key in self._objects:
                raise AlreadyExists(f"{key!r} already exists", store=self.name, key=key)
            return self._store(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        key = self._key(key)
        with self._lock:
            current = self._objects.get(key)
            if current is None or current[1] != etag:
                raise PreconditionFailed(
                    f"{key!r} changed since it was read (etag mismatch)", store=self.name, key=key
                )
            return self._store(key, data)

    def get(self, key: str) -> StoredObject:
        key = self._key(key)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise ObjectNotFound(f"no object {key!r}", store=self.name, key=key)
        return StoredObject(data=found[0], etag=found[1])

    def head(self, key: str) -> ObjectInfo:
        key = self._key(key)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise ObjectNotFound(f"no object {key!r}", store=self.name, key=key)
        return ObjectInfo(key=key, size=len(found[0]), etag=found[1], modified=found[2])

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        yield io.BytesIO(self.get(key).data)

    @contextlib.contextmanager
    def open_write(self, key: str, *, if_absent: bool = False) -> Iterator[IO[bytes]]:
        key = self._key(key)
        buffer = _Buffer()
        yield buffer
        if if_absent:
            self.put_if_absent(key, buffer.data())
        else:
            self.put(key, buffer.data())

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        validate_prefix(prefix, store=self.name)
        with self._lock:
            snapshot = sorted(
                (key, len(value[0]), value[1], value[2])
                for key, value in self._objects.items()
                if key.startswith(prefix)
            )
        for key, size, etag, modified in snapshot:
            yield ObjectInfo(key=key, size=size, etag=etag, modified=modified)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        key = self._key(key)
        with self._lock:
            current = self._objects.get(key)
            if if_match is not None and (current is None or current[1] != if_match):
                raise PreconditionFailed(
                    f"{key!r} changed since it was read (etag mismatch)", store=self.name, key=key
                )
            self._objects.pop(key, None)


class _Buffer(io.BytesIO):
    """A BytesIO that keeps its bytes when the caller closes it inside ``open_write``."""

    _closed_value: bytes | None = None

    def close(self) -> None:
        if not self.closed:
            self._closed_value = self.getvalue()
        super().close()

    def data(self) -> bytes:
        """Everything written, whether or not the buffer was closed."""
        if self.closed:
            return self._closed_value or b""
        return self.getvalue()
