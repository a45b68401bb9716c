"""Reading a version's tables as rows, in key order and in step with each other.

Restores of every platform consume the tables this way: one row dict at a time, one table
looking ahead of another, so memory holds a batch and never the project.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pyarrow as pa

from labelvault.errors import ConfigurationError
from labelvault.models import RestoreIssue
from labelvault.platforms.base import RangeReader, TableReader
from labelvault.snapshot.delta import key_range_slice

__all__ = [
    "Peekable",
    "Row",
    "dump",
    "issues",
    "issues_json",
    "listing",
    "rows",
    "source_row",
    "whole_range",
]

#: One row of a table, as a dict of column → value.
Row = dict[str, Any]
_T = TypeVar("_T")


#: Rows turned into Python objects at a time: a reader's batches hold thousands of rows, and
#: each stream a restore reads (items, annotations, tags …, in every partition side by side)
#: would otherwise hold a whole batch of them as dicts.
ROWS_AT_A_TIME = 512


def rows(batches: Iterable[pa.RecordBatch]) -> Iterator[Row]:
    """The rows of record batches, one dict at a time."""
    for batch in batches:
        for start in range(0, batch.num_rows, ROWS_AT_A_TIME):
            yield from batch.slice(start, ROWS_AT_A_TIME).to_pylist()


def source_row(read_table: TableReader) -> Row:
    """The version's one ``project`` row."""
    found = list(rows(read_table("project")))
    if len(found) != 1:
        raise ConfigurationError(
            f"a version has exactly one project row; this one has {len(found)}"
        )
    return found[0]


class Peekable(Iterator[_T]):
    """An iterator that can look one element ahead."""

    def __init__(self, items: Iterator[_T]) -> None:
        self._items = items
        self._head: list[_T] = []

    def __next__(self) -> _T:
        if self._head:
            return self._head.pop()
        return next(self._items)

    def peek(self) -> _T | None:
        """The next element without taking it; None at the end."""
        if not self._head:
            try:
                self._head.append(next(self._items))
            except StopIteration:
                return None
        return self._head[0]

    def take_while(self, keep: Callable[[_T], bool]) -> list[_T]:
        """Take elements while ``keep`` holds."""
        taken = []
        while (head := self.peek()) is not None and keep(head):
            taken.append(next(self))
        return taken

    def drop_while(self, drop: Callable[[_T], bool]) -> int:
        """Discard elements while ``drop`` holds; returns how many."""
        count = 0
        while (head := self.peek()) is not None and drop(head):
            next(self)
            count += 1
        return count


def issues(entries: Iterable[Mapping[str, str]]) -> list[RestoreIssue]:
    """Restore issues from their journal form."""
    return [RestoreIssue(e["table"], e["key"], e["reason"]) for e in entries]


def issues_json(found: Iterable[RestoreIssue]) -> list[dict[str, str]]:
    """Restore issues in their journal form."""
    return [{"table": i.table, "key": i.key, "reason": i.reason} for i in found]


def listing(names: Iterable[str], limit: int = 50) -> str:
    """Sorted, quoted names for an error message, cut after ``limit``."""
    ordered = sorted(set(names))
    shown = ", ".join(repr(name) for name in ordered[:limit])
    more = len(ordered) - limit
    return f"{shown} … and {more} more" if more > 0 else (shown or "none")


def dump(value: Any) -> bytes:
    """Canonical JSON bytes of a journal record."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")


def whole_range(tables: TableReader) -> RangeReader:
    """A range reader over a reader of whole tables: it reads every table through and keeps
    the rows in range (for readers that cannot seek, such as tables held in memory)."""

    def read(table: str, start: str | None, stop: str | None) -> Iterator[pa.RecordBatch]:
        for batch in tables(table):
            inside = key_range_slice(batch, start, stop)
            if inside.num_rows:
                yield inside

    return read
