"""A read-only pyarrow filesystem over any :class:`ObjectStore`, verifying chunks as it opens them.

Paths are object keys. When the handler knows a path's :class:`ChunkRef`, it serves the size
from the manifest (no request) and checks size and sha256 before pyarrow sees a byte.

The handler never raises into Arrow: a Python exception crossing Arrow's dataset scanner can
deadlock it (the scanner's abort path formats the error, which needs the GIL, while it holds a
lock that the thread owning the GIL waits for). A chunk that is missing or fails verification is
served as an empty file instead, so Arrow fails with its own error naming the path, and the
:class:`IntegrityError` is kept in :attr:`StoreFileSystemHandler.errors` for the caller to
re-raise (:mod:`labelvault.query` does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import pyarrow as pa
import pyarrow.fs as pafs

from labelvault.errors import IntegrityError, ObjectNotFound
from labelvault.snapshot.manifest import ChunkRef
from labelvault.snapshot.reader import fetch_chunk
from labelvault.storage.base import ObjectStore

__all__ = ["StoreFileSystemHandler", "store_filesystem"]


class StoreFileSystemHandler(pafs.FileSystemHandler):  # type: ignore[misc]
    """pyarrow ``FileSystemHandler`` reading objects of ``store``; writes are refused."""

    def __init__(
        self, store: ObjectStore, chunks: Mapping[str, ChunkRef], *, verify: bool = True
    ) -> None:
        self.store = store
        self.chunks = dict(chunks)
        self.verify = verify
        #: What went wrong while serving files (verification failures, storage errors).
        self.errors: list[Exception] = []
        self._lock = threading.Lock()

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def get_type_name(self) -> str:
        return "labelvault-store"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: object) -> bool:
        return self is other

    def get_file_info(self, paths: Iterable[str]) -> list[Any]:
        infos = []
        for path in paths:
            chunk = self.chunks.get(path)
            if chunk is not None:
                infos.append(pafs.FileInfo(path, pafs.FileType.File, size=chunk.bytes))
                continue
            try:
                size = self.store.head(path).size
            except ObjectNotFound:
                infos.append(pafs.FileInfo(path, pafs.FileType.NotFound))
            else:
                infos.append(pafs.FileInfo(path, pafs.FileType.File, size=size))
        return infos

    def get_file_info_selector(self, selector: Any) -> list[Any]:
        base = selector.base_dir.rstrip("/")
        return [
            pafs.FileInfo(info.key, pafs.FileType.File, size=info.size)
            for info in self.store.list(f"{base}/" if base else "")
        ]

    def open_input_file(self, path: str) -> Any:
        return pa.BufferReader(self._read(path))

    def open_input_stream(self, path: str) -> Any:
        return pa.BufferReader(self._read(path))

    def _read(self, path: str) -> bytes:
        chunk = self.chunks.get(path)
        try:
            if chunk is not None and self.verify:
                return fetch_chunk(self.store, chunk)
            try:
                return self.store.get(path).data
            except ObjectNotFound:
                raise IntegrityError(f"chunk {path} is missing", key=path) from None
        except Exception as error:  # see the module docs: never raise into Arrow
            self._record(error)
        return b""

    def _record(self, error: Exception) -> None:
        with self._lock:  # without its traceback, which would hold this handler in a cycle
            self.errors.append(error.with_traceback(None))

    def _read_only(self, *args: object) -> NoReturn:
        raise OSError("the labelvault store filesystem is read-only")

    create_dir = _read_only
    delete_dir = _read_only
    delete_dir_contents = _read_only
    delete_root_dir_contents = _read_only
    delete_file = _read_only
    move = _read_only
    copy_file = _read_only
    open_output_stream = _read_only
    open_append_stream = _read_only


def store_filesystem(
    store: ObjectStore, chunks: Mapping[str, ChunkRef], *, verify: bool = True
) -> tuple[Any, StoreFileSystemHandler]:
    """A ``pyarrow.fs.PyFileSystem`` over ``store`` and the handler behind it."""
    handler = StoreFileSystemHandler(store, chunks, verify=verify)
    return pafs.PyFileSystem(handler), handler
