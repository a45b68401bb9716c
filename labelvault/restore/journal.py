"""A restore's journal: create-only records of finished steps on the object store.

It lives under ``<project prefix>/restores/<restore id>/``. Running the same restore again with
the same journal resumes after the last recorded step instead of creating anything twice.
"""

from __future__ import annotations

import json
from typing import Any

from labelvault.errors import AlreadyExists, ConfigurationError, ObjectNotFound
from labelvault.keys import join_key, safe_segment
from labelvault.platforms.streams import dump
from labelvault.storage.base import ObjectStore

__all__ = ["StoreJournal", "journal_prefix"]


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

    def load_names(self) -> None:
        """Learn which step records exist."""
        start = len(self._prefix) + 1
        self._names = {info.key[start:] for info in self.store.list(self._prefix + "/steps/")}

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
