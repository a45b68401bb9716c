"""Printing for the command line: consoles, sizes, dates, row tables, progress bars, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from labelvault.catalog import VersionInfo
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.schema import TABLES

__all__ = [
    "Bar",
    "Column",
    "cell",
    "console",
    "count",
    "keyed_table",
    "plural",
    "print_json",
    "rows_table",
    "size",
    "tags",
    "version_json",
    "version_rows",
    "versions_phrase",
    "when",
]


def console(*, stderr: bool = False) -> Console:
    """A console that prints text verbatim (no markup, highlighting or emoji codes)."""
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False)


def size(count: float) -> str:
    """``count`` bytes for humans: ``512 B``, ``1.5 KiB`` … ``2.0 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def when(moment: datetime | None) -> str:
    """``2024-05-01 12:00:00``, or nothing."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def version_rows(version: VersionInfo) -> dict[str, int]:
    """Rows per table, from the catalog record."""
    return {
        name.removeprefix("rows."): count
        for name, count in version.stats.items()
        if name.startswith("rows.")
    }


def rows_table(rows: dict[str, int], manifest: Manifest | None = None) -> Table:
    """Rows per table (and chunks and bytes, given the manifest), in the snapshot's order."""
    table = Table(box=None, padding=(0, 2), show_edge=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    if manifest is not None:
        table.add_column("chunks", justify="right")
        table.add_column("bytes", justify="right")
    ordered = [name for name in TABLES if name in rows] + sorted(set(rows) - set(TABLES))
    for name in ordered:
        cells = [name, f"{rows[name]:,}"]
        if manifest is not None and name in manifest.tables:
            entry = manifest.tables[name]
            cells += [f"{len(entry.chunks):,}", size(entry.bytes)]
        table.add_row(*cells)
    return table


@dataclass(frozen=True)
class Column:
    """A column of :func:`keyed_table`.

    ``key``: never hidden; numbers are never cut, text keys wrap down to ``min_width``. The
    others give way first on a narrow console: ``shorten`` keeps that many characters and an
    ellipsis, the rest wrap down to ``min_width`` (4 when unset); on a console too narrow
    even then, they are left out, the rightmost first.
    """

    header: str
    key: bool = False
    justify: Literal["left", "right", "center"] = "left"
    min_width: int | None = None
    shorten: int | None = None

    def floor(self, natural: int) -> int:
        """The narrowest this column may get."""
        if self.key and self.justify == "right":
            return natural
        return min(natural, self.shorten or self.min_width or 4)


_CELL_PADDING = 3  # one space each side (padding (0, 1)) and the box's line


def keyed_table(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], *, width: int
) -> Table:
    """A table for a console ``width`` columns wide (pipes get 80) whose key columns always
    show; see :class:`Column` for how the others give way."""
    natural = [
        max([len(column.header), *(len(row[index]) for row in rows)])
        for index, column in enumerate(columns)
    ]
    widths = list(natural)
    shown = list(range(len(columns)))

    def total() -> int:
        return sum(widths[i] + _CELL_PADDING for i in shown) + 1  # and the two edges

    # Others first (in column order), then the text keys, down to their floors.
    for keys in (False, True):
        for i in shown:
            if total() <= width:
                break
            if columns[i].key == keys:
                widths[i] = max(columns[i].floor(natural[i]), widths[i] - (total() - width))
    for i in reversed(list(shown)):  # still too wide: leave out other columns
        if total() <= width:
            break
        if not columns[i].key:
            shown.remove(i)
    table = Table(title=title, title_justify="left", padding=(0, 1))
    for i in shown:
        column, fixed = columns[i], widths[i] if widths[i] < natural[i] else None
        if column.key and column.justify == "right":
            table.add_column(column.header, justify="right", no_wrap=True, min_width=natural[i])
        elif column.shorten is not None:
            table.add_column(
                column.header, no_wrap=True, overflow="ellipsis", width=fixed, min_width=fixed
            )
        else:
            table.add_column(column.header, justify=column.justify, overflow="fold", width=fixed)
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def plural(number: int, noun: str) -> str:
    """``1 object``, ``2 objects``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def versions_phrase(numbers: Sequence[int]) -> str:
    """``no versions``, ``version 3``, ``versions 1, 2``."""
    if not numbers:
        return "no versions"
    listed = ", ".join(str(number) for number in numbers)
    return f"version {listed}" if len(numbers) == 1 else f"versions {listed}"


def tags(names: Sequence[str]) -> str:
    """Tags as one cell."""
    return ", ".join(names)


def count(value: int, style: str) -> Text:
    """A count, coloured only when it is not zero."""
    return Text(f"{value:,}", style=style if value else "")


def cell(value: Any) -> str:
    """A query result value as text (``NULL``, ISO dates)."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- JSON ---------------------------------------------------------------------------------


def version_json(info: VersionInfo) -> dict[str, Any]:
    """A version record for :func:`print_json` (rows per table included)."""
    data = info.model_dump(exclude={"commit_token", "stats"})
    data["project"] = str(info.project)
    data["rows"] = version_rows(info)
    return data


def print_json(payload: Any) -> None:
    """Write ``payload`` to stdout as one JSON document (dates in ISO 8601)."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=cell) + "\n")
    sys.stdout.flush()


# --- progress ------------------------------------------------------------------------------


class Bar:
    """A progress bar on stderr that appears with its first update (so a command that has
    nothing to do prints none)."""

    def __init__(self, out: Console, description: str, unit: str = "items") -> None:
        self.console = out
        self.description = description
        self.unit = unit
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._parts: dict[str, TaskID] = {}

    def update(self, completed: int, total: int | None = None) -> None:
        """Show ``completed`` of ``total`` (``None``: unknown)."""
        self._start(total)
        assert self._progress is not None
        assert self._task is not None
        self._progress.update(self._task, completed=completed, total=total)

    def update_part(self, label: str, completed: int, total: int | None, done: bool) -> None:
        """Show one part's own bar below the overall one while it runs (hidden once done)."""
        self._start(None)
        assert self._progress is not None
        task = self._parts.get(label)
        if task is None:
            task = self._parts[label] = self._progress.add_task(f"  {label}", total=total)
        self._progress.update(task, completed=completed, total=total or None, visible=not done)

    def _start(self, total: int | None) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total)

    def finish(self, completed: int) -> None:
        """Show the final count (only if the bar is shown)."""
        if self._progress is not None and self._task is not None:
            total = self._progress.tasks[0].total
            self._progress.update(self._task, completed=completed, total=total or completed)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
