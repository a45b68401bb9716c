"""The default object store: a folder on a local (or mounted) filesystem.

Layout: the object under key ``a/b/c`` is the file ``<root>/a/b/c``, so pyarrow and DuckDB can
scan Parquet files in place. The store's own bookkeeping lives in ``<root>/.labelvault/``
(``tmp/`` for files being written, ``locks/`` for lock files); keys whose first segment is
``.labelvault`` are refused and nothing under it is ever listed.

How writes stay atomic and conditional:

- Every write goes to a temp file in ``.labelvault/tmp/``, is fsynced, and is then published
  in one step, so a reader sees the old file or the new one, never a partial one.
- Create-only writes publish with :func:`os.link`, which fails when the target exists: exactly
  one of many racing writers (threads or processes) wins, without any lock.
- Overwrites, compare-and-swap and deletes publish with :func:`os.replace` /
  :func:`os.unlink` while holding an exclusive :func:`fcntl.flock` on the key's lock file, so
  they are atomic across threads and processes. Lock files are striped (a fixed number of
  them, chosen by a hash of the key), which bounds their count.

Etags: ``<inode>.<mtime_ns>.<size>`` of the published file, read with ``fstat`` on the same
descriptor that reads the data, so ``get`` returns bytes and etag that belong together. The
etag changes on *every* write, even one that stores identical bytes: each write publishes a
new inode (distinct from the one it replaces, since both exist at the moment of the rename) and
stamps it with a modification time strictly later than that of the file it replaces. So a
key's etag never returns to an earlier value while the key exists, and a compare-and-swap can
never succeed against a file written after the etag was read. ``head`` and ``list`` cost one
``stat`` per object, never a read.

Limitation of a filesystem: a key cannot also be a "folder" of other keys (``a`` and ``a/b``
cannot both exist); such a write raises :class:`~labelvault.errors.InvalidKey`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from labelvault.errors import (
    AlreadyExists,
    ConfigurationError,
    InvalidKey,
    ObjectNotFound,
    PreconditionFailed,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)
from labelvault.storage.base import ObjectInfo, ObjectStore, StoredObject
from labelvault.storage.keys import validate_key, validate_prefix

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["INTERNAL_DIR", "LocalStore"]

#: The folder inside the root that holds temp and lock files; never a key, never listed.
INTERNAL_DIR = ".labelvault"
_LOCK_STRIPES = 256
_PUBLISH_ATTEMPTS = 5
_T = TypeVar("_T")


class LocalStore(ObjectStore):
    """Objects as files under ``root``. Nothing is created before the first write, so a
    store on a read-only or missing folder can still be read (or listed as empty)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.name = f"local:{self.root}"
        self._internal = self.root / INTERNAL_DIR
        self._tmp = self._internal / "tmp"
        self._locks = self._internal / "locks"
        if self.root.exists() and not self.root.is_dir():
            raise ConfigurationError(f"the local store root {self.root} is a file, not a folder")

    # --- keys and paths ---------------------------------------------------------------------

    def _key(self, key: str) -> str:
        validate_key(key, store=self.name)
        if key.split("/", 1)[0] == INTERNAL_DIR:
            raise InvalidKey(
                f"invalid object key {key!r}: {INTERNAL_DIR!r} is reserved for the local "
                "store's temp and lock files",
                store=self.name,
                key=key,
            )
        return key

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _os_error(self, exc: OSError, key: str | None, what: str) -> StorageError:
        """Translate an unexpected filesystem error into labelvault's hierarchy."""
        detail = f"{what}: {exc.strerror or exc}"
        if isinstance(exc, PermissionError):
            return StorageAccessDenied(
                f"{detail}; check that this user may read and write {self.root}",
                store=self.name,
                key=key,
            )
        if exc.errno == errno.ENAMETOOLONG:
            return InvalidKey(
                f"{detail}; the key has a segment too long for this filesystem",
                store=self.name,
                key=key,
            )
        if exc.errno in (errno.ENOTDIR, errno.EISDIR):
            return InvalidKey(
                f"{detail}; a local store cannot hold both a key and keys below it "
                "(like 'a' and 'a/b')",
                store=self.name,
                key=key,
            )
        if exc.errno in (errno.EIO, errno.EAGAIN, errno.ENOSPC, errno.EDQUOT, errno.ESTALE):
            return StorageUnavailable(detail, store=self.name, key=key)
        return StorageError(detail, store=self.name, key=key)

    def _guard(self, key: str | None, what: str, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except StorageError:
            raise
        except OSError as exc:
            raise self._os_error(exc, key, what) from exc

    # --- etags, locks, temp files -----------------------------------------------------------

    @staticmethod
    def _etag(info: os.stat_result) -> str:
        return f"{info.st_ino:x}.{info.st_mtime_ns:x}.{info.st_size:x}"

    def _info(self, key: str, info: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=info.st_size,
            etag=self._etag(info),
            modified=datetime.fromtimestamp(info.st_mtime_ns / 1e9, tz=UTC),
        )

    def _stat_file(self, key: str) -> os.stat_result | None:
        """The published file's stat, or ``None`` when no object is stored under ``key``."""
        try:
            info = os.stat(self._path(key), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info if stat.S_ISREG(info.st_mode) else None

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold the key's lock: exclusive across threads (each call opens its own file
        description) and across processes."""
        stripe = hashlib.sha256(key.encode("utf-8")).digest()[0] % _LOCK_STRIPES
        path = self._locks / f"{stripe:03d}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            self._locks.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _new_temp(self) -> tuple[Path, IO[bytes]]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        path = self._tmp / f"{secrets.token_hex(12)}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        return path, os.fdopen(fd, "wb")

    def _write_temp(self, data: bytes) -> Path:
        path, handle = self._new_temp()
        try:
            with handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    @staticmethod
    def _stamp(temp: Path, after_ns: int | None) -> None:
        """Set the temp file's mtime to now, and strictly after ``after_ns`` when given, even
        on filesystems that store coarser timestamps."""
        wanted = time.time_ns()
        step = 1
        while True:
            if after_ns is not None and wanted <= after_ns:
                wanted = after_ns + step
            os.utime(temp, ns=(wanted, wanted))
            stored = os.stat(temp).st_mtime_ns
            if after_ns is None or stored > after_ns:
                return
            # ns → µs → ms → s, then doubling: whatever resolution the filesystem keeps.
            step = step * 1000 if step < 1_000_000_000 else step * 2

    def _fsync_dir(self, directory: Path) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _publish(self, key: str, temp: Path, *, create_only: bool) -> str:
        """Move ``temp`` to the key's path and return the new etag; the temp is gone after.
        Overwrites must hold the key's lock."""
        target = self._path(key)
        try:
            for attempt in range(_PUBLISH_ATTEMPTS):
                # A concurrent delete may prune the parent folder between these two steps.
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                except (FileExistsError, NotADirectoryError):
                    raise InvalidKey(
                        f"invalid object key {key!r}: a shorter key is stored where it needs a "
                        "folder, and a local store cannot hold both a key and keys below it",
                        store=self.name,
                        key=key,
                    ) from None
                try:
                    etag = (
                        self._link_new(key, temp, target)
                        if create_only
                        else self._replace(key, temp, target)
                    )
                except FileNotFoundError:
                    if attempt + 1 == _PUBLISH_ATTEMPTS:
                        raise
                    continue
                self._fsync_dir(target.parent)
                return etag
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            temp.unlink(missing_ok=True)

    def _not_a_folder(self, key: str) -> InvalidKey:
        return InvalidKey(
            f"invalid object key {key!r}: other keys are stored below it, and a local store "
            "cannot hold both a key and keys below it",
            store=self.name,
            key=key,
        )

    def _link_new(self, key: str, temp: Path, target: Path) -> str:
        self._stamp(temp, None)
        etag = self._etag(os.stat(temp))  # linking keeps the inode and the mtime
        try:
            os.link(temp, target)
        except FileExistsError:
            if target.is_dir() and not target.is_symlink():
                raise self._not_a_folder(key) from None
            raise AlreadyExists(f"{key!r} already exists", store=self.name, key=key) from None
        return etag

    def _replace(self, key: str, temp: Path, target: Path) -> str:
        if target.is_dir() and not target.is_symlink():
            raise self._not_a_folder(key)
        current = self._stat_file(key)
        self._stamp(temp, current.st_mtime_ns if current else None)
        etag = self._etag(os.stat(temp))  # renaming keeps the inode and the mtime
        os.replace(temp, target)
        return etag

    def _prune(self, directory: Path) -> None:
        """Remove now-empty folders from ``directory`` up to (not including) the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # --- the ObjectStore interface ----------------------------------------------------------

    def put(self, key: str, data: bytes) -> str:
        """Create or overwrite ``key`` atomically; return the new etag."""
        key = self._key(key)

        def action() -> str:
            temp = self._write_temp(data)
            try:
                with self._locked(key):
                    return self._publish(key, temp, create_only=False)
            finally:
                temp.unlink(missing_ok=True)

        return self._guard(key, f"cannot write {key!r}", action)

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create ``key`` only if nothing is there; raise ``AlreadyExists`` otherwise."""
        key = self._key(key)

        def action() -> str:
            if self._stat_file(key) is not None:  # cheap early exit; the link decides
                raise AlreadyExists(f"{key!r} already exists", store=self.name, key=key)
            temp = self._write_temp(data)
            return self._publish(key, temp, create_only=True)

        return self._guard(key, f"cannot create {key!r}", action)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace ``key`` only if its etag is still ``etag``; raise ``PreconditionFailed``."""
        key = self._key(key)

        def action() -> str:
            temp = self._write_temp(data)
            try:
                with self._locked(key):
                    self._check_etag(key, etag)
                    return self._publish(key, temp, create_only=False)
            finally:
                temp.unlink(missing_ok=True)

        return self._guard(key, f"cannot write {key!r}", action)

    def _check_etag(self, key: str, etag: str) -> None:
        current = self._stat_file(key)
        if current is None:
            raise PreconditionFailed(
                f"{key!r} no longer exists (expected etag {etag!r})", store=self.name, key=key
            )
        if self._etag(current) != etag:
            raise PreconditionFailed(
                f"{key!r} changed since it was read (etag mismatch)", store=self.name, key=key
            )

    def _open_file(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - returned to the caller
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r}", store=self.name, key=key) from None
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            handle.close()
            raise ObjectNotFound(f"no object {key!r}", store=self.name, key=key)
        return handle

    def get(self, key: str) -> StoredObject:
        """Read a whole object with the etag of exactly the bytes read."""
        key = self._key(key)

        def action() -> StoredObject:
            with self._open_file(key) as handle:
                etag = self._etag(os.fstat(handle.fileno()))
                return StoredObject(data=handle.read(), etag=etag)

        return self._guard(key, f"cannot read {key!r}", action)

    def head(self, key: str) -> ObjectInfo:
        """Describe ``key`` with one ``stat``."""
        key = self._key(key)

        def action() -> ObjectInfo:
            info = self._stat_file(key)
            if info is None:
                raise ObjectNotFound(f"no object {key!r}", store=self.name, key=key)
            return self._info(key, info)

        return self._guard(key, f"cannot stat {key!r}", action)

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        """Stream a file; it stays whole even if the key is overwritten meanwhile."""
        key = self._key(key)
        handle = self._guard(key, f"cannot read {key!r}", lambda: self._open_file(key))
        with handle:
            yield handle

    @contextlib.contextmanager
    def open_write(self, key: str, *, if_absent: bool = False) -> Iterator[IO[bytes]]:
        """Stream into a temp file; publish it on a clean exit, remove it on an exception."""
        key = self._key(key)
        temp, handle = self._guard(key, f"cannot write {key!r}", self._new_temp)
        try:
            with handle:
                yield handle
            self._guard(key, f"cannot write {key!r}", lambda: _fsync_path(temp))
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

        def publish() -> str:
            if if_absent:
                return self._publish(key, temp, create_only=True)
            with self._locked(key):
                return self._publish(key, temp, create_only=False)

        try:
            self._guard(key, f"cannot write {key!r}", publish)
        finally:
            temp.unlink(missing_ok=True)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Walk the folder tree under the prefix lazily, folder by folder in name order."""
        validate_prefix(prefix, store=self.name)
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if prefix.split("/", 1)[0] == INTERNAL_DIR:
            return iter(())
        head, _, _ = prefix.rpartition("/")
        start = self._path(head) if head else self.root
        return self._walk(start, head, prefix)

    def _walk(self, directory: Path, dir_key: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._os_error(exc, dir_key or None, f"cannot list {directory}") from exc
        for entry in entries:
            if not dir_key and entry.name == INTERNAL_DIR:
                continue
            key = f"{dir_key}/{entry.name}" if dir_key else entry.name
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix) or prefix.startswith(f"{key}/"):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while we walked
                    continue
                yield self._info(key, info)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key`` (missing is fine); with ``if_match``, only while the etag holds."""
        key = self._key(key)

        def action() -> None:
            path = self._path(key)
            if self._stat_file(key) is None:  # nothing to delete: no need to lock (or create)
                if if_match is not None:
                    self._check_etag(key, if_match)
                return
            with self._locked(key):
                if if_match is not None:
                    self._check_etag(key, if_match)
                elif self._stat_file(key) is None:
                    return
                try:
                    path.unlink()
                except FileNotFoundError:
                    return
                self._fsync_dir(path.parent)
            self._prune(path.parent)

        self._guard(key, f"cannot delete {key!r}", action)

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """``pyarrow.fs.LocalFileSystem`` and the root folder."""
        import pyarrow.fs  # noqa: PLC0415 - pyarrow is heavy; only scans need it

        return pyarrow.fs.LocalFileSystem(), str(self.root)


def _fsync_path(path: Path) -> None:
    """Flush a closed file's data to disk (fsync works through any descriptor of the file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
