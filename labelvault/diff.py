"""What changed between two versions: added, removed and changed rows per table.

Rows are paired by ``key`` and compared by ``fingerprint`` (content without platform ids and
rewritten timestamps), so a diff agrees with the content hash: equal content hashes and equal
keys mean an empty diff.

Chunks are content-addressed, so a chunk whose sha256 appears in both versions holds the same
rows in both, and no other row of either version has a key inside its range (chunks are runs of
a strictly increasing key stream). Such chunks are skipped without being read; the remaining
chunks of each side are merged on key in one streaming pass. The cost follows the size of the
change, not of the project.

Two versions whose table is the same base plus a delta (format 2) are diffed from their
deltas alone: the displaced-key records carry the base rows' fingerprints and classes, so the
base is never read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from labelvault.snapshot.manifest import ChunkRef, Manifest, TableManifest
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.schema import TABLES
from labelvault.storage.base import ObjectStore

__all__ = [
    "DEFAULT_KEY_LIMIT",
    "ChangeKind",
    "ChunkCounter",
    "ClassChanges",
    "DiffResult",
    "RowChange",
    "TableDiff",
    "diff",
    "iter_changes",
]

ChangeKind = Literal["added", "removed", "changed"]

#: Keys kept per table and kind in a :class:`DiffResult` (the counts are always complete).
DEFAULT_KEY_LIMIT: Final = 1000

_CLASS_TABLE: Final = "annotations"


class RowChange(NamedTuple):
    """One differing row. ``class_name`` is set for annotations: the new row's class, or the
    old row's for a removed one."""

    kind: ChangeKind
    key: str
    class_name: str | None = None


@dataclass
class ChunkCounter:
    """Chunks a diff read and skipped."""

    read: int = 0
    skipped: int = 0


@dataclass
class ClassChanges:
    """Annotation changes of one class."""

    added: int = 0
    removed: int = 0
    changed: int = 0


@dataclass
class TableDiff:
    """Changes in one table: complete counts, and the first ``key_limit`` keys of each kind."""

    table: str
    old_rows: int = 0
    new_rows: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    added_keys: list[str] = field(default_factory=list)
    removed_keys: list[str] = field(default_factory=list)
    changed_keys: list[str] = field(default_factory=list)
    chunks_read: int = 0
    chunks_skipped: int = 0

    @property
    def unchanged(self) -> int:
        """Rows present and equal in both versions."""
        return self.new_rows - self.added - self.changed

    @property
    def truncated(self) -> bool:
        """True when some keys were counted but not kept."""
        return (
            len(self.added_keys) < self.added
            or len(self.removed_keys) < self.removed
            or len(self.changed_keys) < self.changed
        )

    @property
    def is_empty(self) -> bool:
        """No added, removed or changed rows."""
        return not (self.added or self.removed or self.changed)


@dataclass
class DiffResult:
    """A diff between two versions of a project."""

    old_content_hash: str
    new_content_hash: str
    tables: dict[str, TableDiff]
    classes: dict[str, ClassChanges] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """No table changed."""
        return all(table.is_empty for table in self.tables.values())

    @property
    def chunks_read(self) -> int:
        """Chunks read from both versions, over all tables."""
        return sum(table.chunks_read for table in self.tables.values())

    @property
    def chunks_skipped(self) -> int:
        """Chunks present in both versions, skipped unread, over all tables."""
        return sum(table.chunks_skipped for table in self.tables.values())

    def summary(self) -> dict[str, dict[str, int]]:
        """Plain counts per table, for logs and flow results."""
        return {
            name: {
                "added": t.added,
                "removed": t.removed,
                "changed": t.changed,
                "unchanged": t.unchanged,
            }
            for name, t in self.tables.items()
        }

    def to_markdown(self, *, title: str = "Changes", max_keys: int = 10) -> str:
        """A markdown summary (for a Prefect artifact): counts per table and per class, and a
        few example keys."""
        lines = [f"## {title}", ""]
        if self.old_content_hash == self.new_content_hash:
            lines.append(f"Same content (hash `{self.new_content_hash[:12]}`).")
        else:
            lines.append(
                f"Content hash `{self.old_content_hash[:12]}` → `{self.new_content_hash[:12]}`."
            )
        lines += [
            "",
            "| table | added | removed | changed | unchanged | chunks read | chunks skipped |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, t in self.tables.items():
            lines.append(
                f"| {name} | {t.added} | {t.removed} | {t.changed} | {t.unchanged} | "
                f"{t.chunks_read} | {t.chunks_skipped} |"
            )
        if self.classes:
            lines += [
                "",
                "### Annotations by class",
                "",
                "| class | added | removed | changed |",
                "|---|---:|---:|---:|",
            ]
            for name, counts in sorted(self.classes.items()):
                lines.append(
                    f"| {_cell(name)} | {counts.added} | {counts.removed} | {counts.changed} |"
                )
        examples = [
            (name, kind, keys)
            for name, t in self.tables.items()
            for kind, keys in (
                ("added", t.added_keys),
                ("removed", t.removed_keys),
                ("changed", t.changed_keys),
            )
            if keys
        ]
        if examples:
            lines += ["", "### Examples", ""]
            for name, kind, keys in examples:
                shown = ", ".join(f"`{_cell(key)}`" for key in keys[:max_keys])
                more = len(keys) > max_keys or self.tables[name].truncated
                lines.append(f"- {name} {kind}: {shown}{' …' if more else ''}")
        return "\n".join(lines) + "\n"


def diff(
    store: ObjectStore,
    old: Manifest,
    new: Manifest,
    *,
    tables: Sequence[str] = TABLES,
    key_limit: int = DEFAULT_KEY_LIMIT,
    skip_identical_chunks: bool = True,
) -> DiffResult:
    """Diff ``old`` against ``new``, table by table, reading only chunks that differ.

    Counts are complete; at most ``key_limit`` keys of each kind are kept per table (use
    :func:`iter_changes` to stream them all). ``skip_identical_chunks=False`` compares every
    row (for checks and benchmarks).
    """
    result = DiffResult(
        old_content_hash=old.content_hash, new_content_hash=new.content_hash, tables={}
    )
    for table in tables:
        counter = ChunkCounter()
        table_diff = TableDiff(
            table=table, old_rows=old.table(table).rows, new_rows=new.table(table).rows
        )
        per_class: Counter[tuple[str, ChangeKind]] = Counter()
        for change in iter_changes(
            store, old, new, table, skip_identical_chunks=skip_identical_chunks, counter=counter
        ):
            _count(table_diff, change, key_limit)
            if table == _CLASS_TABLE:
                per_class[(change.class_name or "", change.kind)] += 1
        table_diff.chunks_read, table_diff.chunks_skipped = counter.read, counter.skipped
        result.tables[table] = table_diff
        for (class_name, kind), count in per_class.items():
            counts = result.classes.setdefault(class_name, ClassChanges())
            setattr(counts, kind, getattr(counts, kind) + count)
    return result


def iter_changes(
    store: ObjectStore,
    old: Manifest,
    new: Manifest,
    table: str,
    *,
    skip_identical_chunks: bool = True,
    counter: ChunkCounter | None = None,
) -> Iterator[RowChange]:
    """Stream the changes of ``table`` from ``old`` to ``new`` in key order."""
    counter = counter if counter is not None else ChunkCounter()
    old_entry, new_entry = old.table(table), new.table(table)
    columns = ["key", "fingerprint", "class_name"] if table == _CLASS_TABLE else None
    if old_entry.has_delta or new_entry.has_delta:
        if skip_identical_chunks and _same_base(old_entry, new_entry):
            counter.skipped += 2 * len(old_entry.chunks)
            yield from _delta_changes(
                _delta_entries(SnapshotReader(store, old), table, old_entry, columns, counter),
                _delta_entries(SnapshotReader(store, new), table, new_entry, columns, counter),
            )
            return
        old_rows = _merged_rows(SnapshotReader(store, old), table, old_entry, columns, counter)
        new_rows = _merged_rows(SnapshotReader(store, new), table, new_entry, columns, counter)
        yield from _merge(old_rows, new_rows)
        return
    old_chunks, new_chunks = old_entry.chunks, new_entry.chunks
    if skip_identical_chunks:
        shared = {c.sha256 for c in old_chunks} & {c.sha256 for c in new_chunks}
        old_chunks = tuple(c for c in old_chunks if c.sha256 not in shared)
        new_chunks = tuple(c for c in new_chunks if c.sha256 not in shared)
        counter.skipped += 2 * len(shared)
    old_rows = _rows(SnapshotReader(store, old), table, old_chunks, columns, counter)
    new_rows = _rows(SnapshotReader(store, new), table, new_chunks, columns, counter)
    yield from _merge(old_rows, new_rows)


# --- internals ------------------------------------------------------------------------------

_Row = tuple[str, str, str | None]


def _rows(
    reader: SnapshotReader,
    table: str,
    chunks: Iterable[ChunkRef],
    columns: list[str] | None,
    counter: ChunkCounter,
) -> Iterator[_Row]:
    """``(key, fingerprint, class_name)`` of every row of ``chunks``, in key order."""
    names = columns or ["key", "fingerprint"]
    for chunk in chunks:
        counter.read += 1
        for batch in reader.iter_chunks(table, [chunk], names):
            keys = batch.column(0).to_pylist()
            fingerprints = batch.column(1).to_pylist()
            classes = batch.column(2).to_pylist() if len(names) > 2 else [None] * len(keys)
            yield from zip(keys, fingerprints, classes, strict=True)


def _same_base(old: TableManifest, new: TableManifest) -> bool:
    return [c.sha256 for c in old.chunks] == [c.sha256 for c in new.chunks]


def _merged_rows(
    reader: SnapshotReader,
    table: str,
    entry: TableManifest,
    columns: list[str] | None,
    counter: ChunkCounter,
) -> Iterator[_Row]:
    """``(key, fingerprint, class_name)`` of every row of a table with a delta, in key order."""
    names = columns or ["key", "fingerprint"]
    counter.read += len(entry.all_chunks)
    for batch in reader.iter_entry(table, entry, names):
        keys = batch.column(0).to_pylist()
        fingerprints = batch.column(1).to_pylist()
        classes = batch.column(2).to_pylist() if len(names) > 2 else [None] * len(keys)
        yield from zip(keys, fingerprints, classes, strict=True)


class _Entry(NamedTuple):
    """What a delta says about one key: its row in the delta, its displaced base row."""

    key: str
    row: _Row | None
    base: _Row | None


def _delta_entries(
    reader: SnapshotReader,
    table: str,
    entry: TableManifest,
    columns: list[str] | None,
    counter: ChunkCounter,
) -> Iterator[_Entry]:
    """A delta's rows and displaced base rows, paired by key, in key order."""
    rows = _rows(reader, table, entry.delta, columns, counter)
    displaced = _displaced_rows(reader, table, entry, counter)
    row, gone = next(rows, None), next(displaced, None)
    while row is not None or gone is not None:
        if gone is None or (row is not None and row[0] < gone[0]):
            assert row is not None  # for mypy: both None ends the loop
            yield _Entry(row[0], row, None)
            row = next(rows, None)
        elif row is None or gone[0] < row[0]:
            yield _Entry(gone[0], None, gone)
            gone = next(displaced, None)
        else:
            yield _Entry(row[0], row, gone)
            row, gone = next(rows, None), next(displaced, None)


def _displaced_rows(
    reader: SnapshotReader, table: str, entry: TableManifest, counter: ChunkCounter
) -> Iterator[_Row]:
    for chunk in entry.displaced:
        counter.read += 1
        for batch in reader.iter_displaced(table, [chunk]):
            keys = batch.column(0).to_pylist()
            fingerprints = batch.column(1).to_pylist()
            yield from zip(keys, fingerprints, batch.column(2).to_pylist(), strict=True)


def _delta_changes(old: Iterator[_Entry], new: Iterator[_Entry]) -> Iterator[RowChange]:
    """The changes between two versions on the same base, from their deltas alone.

    A key no delta mentions holds the base row on both sides. For a key one delta mentions, the
    other side's row is its own delta row; else absent if it displaced the base row; else the
    base row, known from the displaced record of either side (and known absent when a delta
    adds the key without displacing one: every delta key that is a base key is displaced).
    """
    old_entry, new_entry = next(old, None), next(new, None)
    while old_entry is not None or new_entry is not None:
        if old_entry is None or (new_entry is not None and new_entry.key < old_entry.key):
            assert new_entry is not None  # for mypy: both None ends the loop
            pair: tuple[_Entry | None, _Entry | None] = (None, new_entry)
            new_entry = next(new, None)
        elif new_entry is None or old_entry.key < new_entry.key:
            pair = (old_entry, None)
            old_entry = next(old, None)
        else:
            pair = (old_entry, new_entry)
            old_entry, new_entry = next(old, None), next(new, None)
        base = next((e.base for e in pair if e is not None and e.base is not None), None)
        before, after = (_side_row(entry, base) for entry in pair)
        change = _change(before, after)
        if change is not None:
            yield change


def _side_row(entry: _Entry | None, base: _Row | None) -> _Row | None:
    """One side's row for a key: its delta row, nothing if displaced, else the base row."""
    if entry is None:
        return base
    if entry.row is not None:
        return entry.row
    return None


def _change(before: _Row | None, after: _Row | None) -> RowChange | None:
    if before is None and after is None:
        return None
    if before is None:
        assert after is not None
        return RowChange("added", after[0], after[2])
    if after is None:
        return RowChange("removed", before[0], before[2])
    if before[1] != after[1]:
        return RowChange("changed", after[0], after[2])
    return None


def _merge(old_rows: Iterator[_Row], new_rows: Iterator[_Row]) -> Iterator[RowChange]:
    """A merge join of two key-sorted row streams."""
    old_row, new_row = next(old_rows, None), next(new_rows, None)
    while old_row is not None or new_row is not None:
        if old_row is None or (new_row is not None and new_row[0] < old_row[0]):
            assert new_row is not None  # for mypy: both None ends the loop
            yield RowChange("added", new_row[0], new_row[2])
            new_row = next(new_rows, None)
        elif new_row is None or old_row[0] < new_row[0]:
            yield RowChange("removed", old_row[0], old_row[2])
            old_row = next(old_rows, None)
        else:
            if old_row[1] != new_row[1]:
                yield RowChange("changed", new_row[0], new_row[2])
            old_row, new_row = next(old_rows, None), next(new_rows, None)


def _count(table_diff: TableDiff, change: RowChange, key_limit: int) -> None:
    if change.kind == "added":
        table_diff.added += 1
        keys = table_diff.added_keys
    elif change.kind == "removed":
        table_diff.removed += 1
        keys = table_diff.removed_keys
    else:
        table_diff.changed += 1
        keys = table_diff.changed_keys
    if len(keys) < key_limit:
        keys.append(change.key)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell or code span."""
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ") or "∅"
