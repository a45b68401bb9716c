"""A restore's journal: create-only records of finished steps on the object store.

It lives under ``<project prefix>/restores/<restore id>/``. Running the same restore again with
the same journal resumes after the last recorded step instead of creating anything twice.

Once a restore finished, its step records (``steps/…``, about 60 bytes per restored figure) are
removed by :meth:`StoreJournal.compact`; what resuming and provenance need stays:
``restore.json`` (what was restored, where to), ``target.json`` and ``project.json`` (the
project it made) and ``report.json`` (what it did). A journal whose restore never finished is
left for the next run to resume; :func:`collect_abandoned` removes the ones nobody resumed.

Retention should call ``collect_abandoned(store, project.prefix, older_than=…,
apply=not dry_run)`` once per project it expires (``labelvault expire``) and list what it
returns beside the expired versions: the restore ids, their objects and bytes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from labelvault.errors import AlreadyExists, ConfigurationError, ObjectNotFound
from labelvault.keys import join_key, safe_segment
from labelvault.platforms.streams import dump
from labelvault.storage.base import ObjectInfo, ObjectStore

__all__ = ["CollectedJournal", "StoreJournal", "collect_abandoned", "journal_prefix"]

#: What a finished restore keeps of its journal.
KEPT_AFTER_SUCCESS = ("restore.json", "target.json", "project.json", "report.json")


def journal_prefix(project_prefix: str, restore_id: str) -> str:
    """Where the journal of one restore lives: ``<project prefix>/restores/<restore id>``.

    Use a ``restore_id`` that stays the same when the restore is retried (a flow run id).
    """
    return join_key(project_prefix, "restores", safe_segment(restore_id))


class StoreJournal:
    """Create-only records of finished steps under one prefix of an object store."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self._prefix = prefix.rstrip("/")
        self._names: set[str] = set()

    @property
    def prefix(self) -> str:
        """Where the journal lives."""
        return self._prefix

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}"

    def read(self, name: str) -> dict[str, Any] | None:
        """The record ``name``, or None when it was never written."""
        try:
            data = self.store.get(self._key(name)).data
        except ObjectNotFound:
            return None
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ConfigurationError(f"restore journal {self._key(name)} is not a JSON object")
        return value

    def compact(self) -> int:
        """Remove the step records of a finished restore; returns the bytes freed.

        Only call it once ``report.json`` is recorded: a resume then answers from the report
        and never reads a step again.
        """
        return _delete_all(self.store, self.store.list(self._prefix + "/steps/"))

    def forget(self, *names: str) -> None:
        """Remove records (a resume that changes the target before anything was created)."""
        for name in names:
            with contextlib.suppress(ObjectNotFound):
                self.store.delete(self._key(name))
            self._names.discard(name)

    def load_names(self, under: str = "steps/") -> None:
        """Learn which step records under ``under`` exist (added to those learnt before)."""
        start = len(self._prefix) + 1
        self._names |= {info.key[start:] for info in self.store.list(self._key(under))}

    def has(self, name: str) -> bool:
        """True when ``name`` was recorded (as of the last :meth:`load_names`)."""
        return name in self._names

    def record(self, name: str, value: dict[str, Any]) -> None:
        """Write ``name`` once; the same value again is fine, another value is refused."""
        try:
            self.store.put_if_absent(self._key(name), dump(value))
        except AlreadyExists:
            # Another run of the same restore recorded it first; it must have done the same.
            if self.read(name) != json.loads(dump(value)):
                raise ConfigurationError(
                    f"restore journal {self._key(name)} was written by another run; "
                    "two restores must not share a journal"
                ) from None
        self._names.add(name)


def _delete_all(store: ObjectStore, objects: Iterator[ObjectInfo] | list[ObjectInfo]) -> int:
    freed = 0
    for info in list(objects):  # listed first: deleting while a listing pages is not portable
        try:
            store.delete(info.key)
        except ObjectNotFound:  # another run removed it first
            continue
        freed += info.size
    return freed


@dataclass(frozen=True)
class CollectedJournal:
    """One journal :func:`collect_abandoned` removed (or, without ``apply``, would remove)."""

    prefix: str
    finished: bool
    objects: int
    bytes: int
    modified: datetime | None


def _journals(store: ObjectStore, base: str) -> Iterator[tuple[str, list[ObjectInfo]]]:
    """The objects under ``base`` grouped by journal (listings come in key order)."""
    current: str | None = None
    group: list[ObjectInfo] = []
    for info in store.list(base):
        name = info.key[len(base) :].split("/", 1)[0]
        if name != current and current is not None:
            yield current, group
            group = []
        current = name
        group.append(info)
    if current is not None:
        yield current, group


def collect_abandoned(
    store: ObjectStore,
    project_prefix: str,
    older_than: timedelta,
    *,
    now: datetime | None = None,
    apply: bool = True,
) -> list[CollectedJournal]:
    """Remove what restore journals of one project no longer need; returns what it removed.

    - a journal without ``report.json`` (its restore never finished) whose newest record is
      older than ``older_than``: all of it (nobody is going to resume it);
    - a finished journal that still has step records (written before restores compacted
      their journal, or killed between the report and the compaction): its steps, whatever
      their age.

    Records whose age the store cannot tell are kept. ``apply=False`` only reports.
    """
    if older_than < timedelta(0):
        raise ConfigurationError(
            f"collect_abandoned: older_than is negative ({older_than}); pass a duration >= 0"
        )
    cutoff = (now or datetime.now(UTC)) - older_than
    base = join_key(project_prefix, "restores") + "/"
    collected: list[CollectedJournal] = []
    for name, objects in _journals(store, base):
        prefix = base + name
        finished = any(info.key == f"{prefix}/report.json" for info in objects)
        if finished:
            doomed = [info for info in objects if info.key.startswith(f"{prefix}/steps/")]
        else:
            stamps = [info.modified for info in objects]
            if any(stamp is None for stamp in stamps):
                continue
            newest = max(stamp for stamp in stamps if stamp is not None)
            if newest >= cutoff:
                continue
            doomed = objects
        if not doomed:
            continue
        dated = [info.modified for info in doomed if info.modified is not None]
        size = _delete_all(store, doomed) if apply else sum(info.size for info in doomed)
        collected.append(
            CollectedJournal(
                prefix=prefix,
                finished=finished,
                objects=len(doomed),
                bytes=size,
                modified=max(dated) if dated else None,
            )
        )
    return collected
