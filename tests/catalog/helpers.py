"""Test doubles for the catalog suites: a fake clock, a store wrapper that injects faults."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from labelvault.catalog import Catalog, Reservation, ReserveWait
from labelvault.models import CommitResult, ProjectRef
from labelvault.storage.base import ObjectInfo, ObjectStore, StoredObject

_projects = itertools.count(1)


def new_project(platform: str = "supervisely") -> ProjectRef:
    """A project nobody else in the session uses."""
    return ProjectRef(
        platform=platform, instance="app.example.test", project_id=str(next(_projects))
    )


class FakeClock:
    """A clock that moves only when told to; ``sleep`` records the delay and moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)
        self.sleeps: list[float] = []
        #: Called after every sleep (with the delay): lets a test act "while the caller waits".
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


def fake_catalog(
    store: ObjectStore,
    clock: FakeClock,
    *,
    lease_seconds: float = 60.0,
    max_wait: float = 30.0,
    **wait: float,
) -> Catalog:
    """A catalog on ``clock`` whose waiting is instantaneous (the clock's ``sleep``)."""
    return Catalog(
        store,
        lease_seconds=lease_seconds,
        wait=ReserveWait(max_wait=max_wait, **wait),
        clock=clock,
        sleep=clock.sleep,
    )


def reserve(catalog: Catalog, project: ProjectRef, **options: Any) -> Reservation:
    """``catalog.reserve`` where the test expects a reservation, not "use existing"."""
    reserved = catalog.reserve(project, **options)
    assert isinstance(reserved, Reservation), f"expected a reservation, got {reserved!r}"
    return reserved


def commit(catalog: Catalog, reservation: Reservation, content: str, **fields: Any) -> CommitResult:
    """Commit with a manifest key and content hash derived from ``content``."""
    return catalog.commit(
        reservation,
        manifest_key=f"{reservation.project.prefix}/manifests/{content}.json",
        content_hash=f"hash-{content}",
        **fields,
    )


def add_version(catalog: Catalog, project: ProjectRef, content: str, **fields: Any) -> CommitResult:
    """Reserve and commit one version."""
    return commit(catalog, reserve(catalog, project), content, **fields)


Hook = Callable[[str, str], None]


class WrappedStore(ObjectStore):
    """Delegates to ``inner``; ``after`` is called with ``(operation, key)`` after each
    successful write or delete and may raise (a response lost after the write landed);
    ``before`` is called before each ``put``, ``put_if_absent`` and ``put_if_match``;
    ``modified`` overrides the
    modification time that ``list``/``head`` report."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.name = f"wrapped:{inner.name}"
        self.after: Hook | None = None
        self.before: Hook | None = None
        self.modified: dict[str, datetime] = {}

    def _before(self, operation: str, key: str) -> None:
        if self.before is not None:
            self.before(operation, key)

    def _after(self, operation: str, key: str) -> None:
        if self.after is not None:
            self.after(operation, key)

    def _aged(self, info: ObjectInfo) -> ObjectInfo:
        when = self.modified.get(info.key)
        if when is None:
            return info
        return ObjectInfo(key=info.key, size=info.size, etag=info.etag, modified=when)

    def put(self, key: str, data: bytes) -> str:
        self._before("put", key)
        etag = self.inner.put(key, data)
        self._after("put", key)
        return etag

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._before("put_if_absent", key)
        etag = self.inner.put_if_absent(key, data)
        self._after("put_if_absent", key)
        return etag

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self._before("put_if_match", key)
        new = self.inner.put_if_match(key, data, etag)
        self._after("put_if_match", key)
        return new

    def get(self, key: str) -> StoredObject:
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo:
        return self._aged(self.inner.head(key))

    def open_read(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self.inner.open_read(key)

    def open_write(
        self, key: str, *, if_absent: bool = False
    ) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self.inner.open_write(key, if_absent=if_absent)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        for info in self.inner.list(prefix, page_size=page_size):
            yield self._aged(info)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self.inner.delete(key, if_match=if_match)
        self._after("delete", key)


class LostResponse(ConnectionError):
    """What a test raises to pretend a response never arrived."""


def lose_response_once(store: WrappedStore, operation: str, key_part: str) -> list[str]:
    """Make the first ``operation`` on a key containing ``key_part`` land, then raise
    :class:`LostResponse`. Returns the list the hook appends the affected key to."""
    hit: list[str] = []

    def after(op: str, key: str) -> None:
        if op == operation and key_part in key and not hit:
            hit.append(key)
            raise LostResponse(f"connection reset after {op} {key}")

    store.after = after
    return hit
