"""Restore a version as a new project: resumable, keyed, and honest about what it skipped.

The driver is platform-agnostic. It reads a version's tables as streams (``read_table(name)``
yields record batches in key order, from the snapshot reader or from pages in memory) and asks a
:class:`RestoreTarget` (a platform adapter) to create things, pairing every new id with the
source row's **key**, never with a position.

Order: the project (name ``"{name}, from ver. {N}"`` made unique, description as Supervisely
writes it), its definitions and settings, datasets parents first, then batch by batch of items:
the items, their annotations, then the tags of both. Annotations and tags are merged into their
item's batch by key, so memory holds one batch, not the project. This needs the keys of
annotations and tags to sort after their item's key and before the next item's (keys that start
with the owner's key, as labelvault's adapters make them).

Every finished step is recorded in a **journal** on the object store (create-only writes under
one prefix). Running the same restore again with the same journal resumes after the last
recorded step instead of creating anything twice; a step that landed on the platform but not in
the journal is recognised through :meth:`RestoreTarget.already_restored`. A finished restore
stores its report, and asking again returns it.

- ``skip_missed_entities``: items whose media is gone (hash deleted, link dead) are skipped,
  with their annotations and tags, and listed in the report.
- ``allow_failures`` (as in Encord's ``CloudUploadSettings``): a batch that still fails after
  the HTTP retries is retried row by row; rows that fail again are listed as failures and their
  dependents skipped.
- Otherwise the first failure stops the restore with :class:`~labelvault.errors.RestoreError`,
  which names the created project and how far the restore got.

A **partial restore** names datasets (``RestoreOptions.datasets``: names or ``/``-joined paths)
and/or classes (``RestoreOptions.classes``). A selected dataset brings its whole subtree; its
ancestors are created so the tree stays valid, but their own items are left out. Items of other
datasets are left out with their annotations and tags, annotations of other classes with their
tags. The filter streams like the rest and is part of the journal's identity; the report counts
what it left out (``RestoreReport.filtered_out``) instead of listing those rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar, runtime_checkable

import pyarrow as pa

from labelvault.errors import (
    AlreadyExists,
    AuthenticationError,
    ConfigurationError,
    LabelvaultError,
    ObjectNotFound,
    PlatformError,
    PlatformNotFound,
    RestoreError,
)
from labelvault.platforms.base import ProjectInfo
from labelvault.storage.base import ObjectStore
from labelvault.storage.keys import join_key, safe_segment

__all__ = [
    "RestoreIssue",
    "RestoreOptions",
    "RestoreReport",
    "RestoreTarget",
    "Row",
    "SelfRestoringPlatform",
    "TableReader",
    "journal_prefix",
    "restore_by_platform",
    "restore_version",
]

logger = logging.getLogger("labelvault.restore")

#: One row of a table, as a dict of column → value.
Row = dict[str, Any]
#: Table name → the table's record batches in key order (an empty iterator for no rows).
TableReader = Callable[[str], Iterator[pa.RecordBatch]]

_JOURNAL_FORMAT = 1
_T = TypeVar("_T")


class RestoreTarget(Protocol):
    """What the restore driver needs from a platform adapter."""

    name: str

    @property
    def instance(self) -> str:
        """The server, as in ``Platform.instance``."""
        ...

    def get_project(self, project_id: str) -> ProjectInfo:
        """Describe a project (finds the project an interrupted restore created)."""
        ...

    def default_workspace(self, source: Row) -> str:
        """The workspace of the source project (the default target)."""
        ...

    def free_project_name(self, workspace_id: str, wanted: str) -> str:
        """``wanted``, or a variant of it that no project in the workspace uses."""
        ...

    def find_project_by_name(self, workspace_id: str, name: str) -> ProjectInfo | None:
        """The project called ``name`` in the workspace, if any."""
        ...

    def create_project(
        self, source: Row, *, workspace_id: str, name: str, description: str
    ) -> ProjectInfo:
        """Create the project from the version's ``project`` row."""
        ...

    def prepare_project(self, project_id: str, source: Row) -> None:
        """Definitions (classes, tags …) and settings; must be safe to repeat."""
        ...

    def add_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str:
        """Create one dataset; returns its new id."""
        ...

    def find_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str | None:
        """The dataset an interrupted attempt already created, if any."""
        ...

    def missing_items(self, project_id: str, rows: Sequence[Row]) -> dict[str, str]:
        """Items whose media no longer exists: key → reason."""
        ...

    def add_items(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        """Create items; returns key → new id."""
        ...

    def add_annotations(
        self,
        project_id: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        items: Mapping[str, str],
    ) -> dict[str, str]:
        """Create annotations on the new items (``items``: item key → new id)."""
        ...

    def add_tags(
        self, project_id: str, rows: Sequence[Row], owners: Mapping[str, str]
    ) -> dict[str, str]:
        """Create tag assignments (``owners``: owner key → new id)."""
        ...

    def already_restored(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """Rows of ``table`` that already exist on the platform: key → id."""
        ...


@dataclass(frozen=True)
class RestoreOptions:
    """Which version is restored (for names and descriptions), where, and how strictly."""

    version_number: int
    source_project_id: str
    version_id: str | None = None
    workspace_id: str | None = None
    project_name: str | None = None
    project_description: str | None = None
    skip_missed_entities: bool = False
    allow_failures: bool = False
    batch_size: int = 200
    #: Restore only these datasets (names or paths) with their subtrees; None: all of them.
    datasets: tuple[str, ...] | None = None
    #: Restore only annotations of these classes (and their tags); None: all of them.
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RestoreIssue:
    """One row that was not restored, and why."""

    table: str
    key: str
    reason: str


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did: the new project, counts, and every row it skipped or failed."""

    project: ProjectInfo
    journal: str
    created: dict[str, int] = field(default_factory=dict)
    skipped: tuple[RestoreIssue, ...] = ()
    failures: tuple[RestoreIssue, ...] = ()
    resumed: bool = False
    #: Rows left out by ``RestoreOptions.datasets`` / ``classes``, per table.
    filtered_out: dict[str, int] = field(default_factory=dict)
    #: What the platform could not bring back as it was (e.g. a draft's author).
    warnings: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Plain values for logs, artifacts and flow results."""
        return {
            "project_id": self.project.project_id,
            "project_name": self.project.name,
            "workspace_id": self.project.workspace_id,
            "created": dict(self.created),
            "skipped": len(self.skipped),
            "failures": len(self.failures),
            "filtered_out": dict(self.filtered_out),
            "resumed": self.resumed,
            "journal": self.journal,
            "warnings": list(self.warnings),
        }


class SelfRestoredProject(Protocol):
    """What a self-restoring platform reports."""

    @property
    def project(self) -> ProjectInfo: ...

    @property
    def resumed(self) -> bool: ...

    @property
    def counts(self) -> Mapping[str, int]: ...

    @property
    def warnings(self) -> tuple[str, ...]: ...


@runtime_checkable
class SelfRestoringPlatform(Protocol):
    """A platform that restores a whole version in its own bulk calls (Label Studio's import)
    and can finish an interrupted restore of a project it created."""

    def restore(
        self,
        tables: TableReader,
        *,
        title: str | None = None,
        description: str | None = None,
        resume_project_id: str | None = None,
        on_project_created: Callable[[str], None] | None = None,
    ) -> SelfRestoredProject:
        """Restore the tables as a new project, or finish ``resume_project_id``."""
        ...


def restore_by_platform(
    target: SelfRestoringPlatform,
    read_table: TableReader,
    *,
    store: ObjectStore,
    journal: str,
    name: str | None = None,
    description: str | None = None,
) -> RestoreReport:
    """Restore through a :class:`SelfRestoringPlatform`, journaled like :func:`restore_version`.

    The journal records the new project's id the moment the platform creates it, so running
    again with the same journal finishes that project instead of creating another.
    """
    book = _Journal(store, journal)
    started = book.read("project.json")
    resume = str(started["project_id"]) if started else None

    def remember(project_id: str) -> None:
        book.record("project.json", {"project_id": project_id})

    result = target.restore(
        read_table,
        title=name,
        description=description,
        resume_project_id=resume,
        on_project_created=remember,
    )
    return RestoreReport(
        project=result.project,
        journal=book.prefix,
        created=dict(result.counts),
        resumed=result.resumed,
        warnings=tuple(result.warnings),
    )


def journal_prefix(project_prefix: str, restore_id: str) -> str:
    """Where the journal of one restore lives: ``<project prefix>/restores/<restore id>``.

    Use a ``restore_id`` that stays the same when the restore is retried (a flow run id).
    """
    return join_key(project_prefix, "restores", safe_segment(restore_id))


def _rows(batches: Iterable[pa.RecordBatch]) -> Iterator[Row]:
    for batch in batches:
        yield from batch.to_pylist()


class _Peekable(Iterator[_T]):
    """An iterator that can look one element ahead."""

    def __init__(self, items: Iterator[_T]) -> None:
        self._items = items
        self._head: list[_T] = []

    def __next__(self) -> _T:
        if self._head:
            return self._head.pop()
        return next(self._items)

    def peek(self) -> _T | None:
        if not self._head:
            try:
                self._head.append(next(self._items))
            except StopIteration:
                return None
        return self._head[0]

    def take_while(self, keep: Callable[[_T], bool]) -> list[_T]:
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


def _item_batches(
    items: Iterator[Row], size: int
) -> Iterator[tuple[int, str | None, list[Row], str | None]]:
    """Consecutive items of one dataset, ``size`` at a time, with the next batch's first key."""
    source = _Peekable(items)
    index = 0
    while (head := source.peek()) is not None:
        dataset = head.get("dataset_key")
        batch: list[Row] = []
        while len(batch) < size and (row := source.peek()) is not None:
            if row.get("dataset_key") != dataset:
                break
            batch.append(next(source))
        following = source.peek()
        yield index, dataset, batch, following["key"] if following is not None else None
        index += 1


def _before(row: Row, *, column: str, bound: str | None) -> bool:
    """Whether ``row`` sorts before ``bound``, the first item key of the next batch."""
    return bound is None or str(row[column]) < bound


def _dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")


def _issues(entries: Iterable[Mapping[str, str]]) -> list[RestoreIssue]:
    return [RestoreIssue(e["table"], e["key"], e["reason"]) for e in entries]


def _listing(names: Iterable[str], limit: int = 50) -> str:
    """Sorted, quoted names for an error message, cut after ``limit``."""
    ordered = sorted(set(names))
    shown = ", ".join(repr(name) for name in ordered[:limit])
    more = len(ordered) - limit
    return f"{shown} … and {more} more" if more > 0 else (shown or "none")


@dataclass(frozen=True)
class _Selection:
    """What a partial restore keeps (None: everything)."""

    #: Datasets the user named, without those inside another named one (the journal's identity).
    roots: frozenset[str] | None = None
    #: Datasets whose items are restored: the named ones and their subtrees.
    items_of: frozenset[str] | None = None
    #: Datasets created: ``items_of`` and their ancestors.
    create: frozenset[str] | None = None
    classes: frozenset[str] | None = None

    def identity(self) -> dict[str, list[str] | None]:
        """The filter as journal state."""
        return {
            "datasets": sorted(self.roots) if self.roots is not None else None,
            "classes": sorted(self.classes) if self.classes is not None else None,
        }


def _named_datasets(
    read_table: TableReader, wanted: tuple[str, ...]
) -> tuple[dict[str, str | None], set[str]]:
    """The dataset tree (key → parent key) and the keys ``wanted`` names (paths win)."""
    parents: dict[str, str | None] = {}
    by_path: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for batch in read_table("datasets"):
        columns = [batch.column(name).to_pylist() for name in ("key", "parent_key", "name", "path")]
        for key, parent, name, path in zip(*columns, strict=True):
            parents[key] = parent
            by_path.setdefault(path if path is not None else str(name), []).append(key)
            by_name.setdefault(str(name), []).append(key)
    named: set[str] = set()
    unknown: list[str] = []
    for selector in wanted:
        keys = by_path.get(selector) or by_name.get(selector) or []
        if len(keys) > 1 and selector not in by_path:
            paths = [path for path, found in by_path.items() if set(found) & set(keys)]
            raise ConfigurationError(
                f"restore: dataset name {selector!r} is ambiguous; name one of the paths "
                f"{_listing(paths)}"
            )
        if not keys:
            unknown.append(selector)
        named.update(keys)
    if unknown:
        raise ConfigurationError(
            f"restore: the version has no dataset {_listing(unknown)}; its datasets (by path) "
            f"are {_listing(by_path)}"
        )
    return parents, named


def _ancestors(parents: Mapping[str, str | None], key: str) -> Iterator[str]:
    """The keys above ``key`` that are in the tree, nearest first."""
    parent = parents.get(key)
    seen = {key}
    while parent is not None and parent in parents and parent not in seen:
        seen.add(parent)
        yield parent
        parent = parents[parent]


def _select_datasets(read_table: TableReader, wanted: tuple[str, ...]) -> _Selection:
    """Resolve dataset names or paths to the named roots, their subtrees, and their ancestors."""
    parents, named = _named_datasets(read_table, wanted)
    children: dict[str, list[str]] = {}
    for key, parent in parents.items():
        if parent is not None and parent in parents:
            children.setdefault(parent, []).append(key)
    subtree: set[str] = set()
    todo = list(named)
    while todo:
        key = todo.pop()
        if key not in subtree:
            subtree.add(key)
            todo += children.get(key, [])
    create = set(subtree)
    for key in subtree:
        create.update(_ancestors(parents, key))
    roots = {key for key in named if named.isdisjoint(_ancestors(parents, key))}
    return _Selection(roots=frozenset(roots), items_of=frozenset(subtree), create=frozenset(create))


def _defined_classes(source: Row) -> set[str]:
    """Class names in the project row's definitions (``classes``: titles or names)."""
    try:
        definitions = json.loads(source.get("definitions") or "{}")
    except ValueError:
        definitions = None
    entries = definitions.get("classes") if isinstance(definitions, dict) else None
    if not isinstance(entries, list):
        raise ConfigurationError(
            "restore: this version's definitions list no classes, so it cannot be filtered by "
            "class; leave classes unset"
        )
    names = set()
    for entry in entries:
        name = entry.get("title", entry.get("name")) if isinstance(entry, dict) else entry
        if isinstance(name, str):
            names.add(name)
    return names


def _selection(read_table: TableReader, source: Row, options: RestoreOptions) -> _Selection:
    """Check the partial-restore options against the version and resolve them."""
    for what, value in (("datasets", options.datasets), ("classes", options.classes)):
        if value is not None and not value:
            raise ConfigurationError(
                f"restore: {what} is empty; name at least one, or leave it unset to restore all"
            )
    selection = _Selection()
    if options.datasets is not None:
        selection = _select_datasets(read_table, tuple(options.datasets))
    if options.classes is not None:
        defined = _defined_classes(source)
        unknown = [name for name in options.classes if name not in defined]
        if unknown:
            raise ConfigurationError(
                f"restore: the version has no class {_listing(unknown)}; its classes are "
                f"{_listing(defined)}"
            )
        selection = replace(selection, classes=frozenset(options.classes))
    return selection


class _Journal:
    """Create-only records of finished steps under one prefix, plus a state record."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")
        self._names: set[str] = set()

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            data = self.store.get(self._key(name)).data
        except ObjectNotFound:
            return None
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ConfigurationError(f"restore journal {self._key(name)} is not a JSON object")
        return value

    def read_state(self) -> tuple[dict[str, Any], str] | None:
        try:
            stored = self.store.get(self._key("restore.json"))
        except ObjectNotFound:
            return None
        return json.loads(stored.data), stored.etag

    def create_state(self, state: dict[str, Any]) -> str:
        return self.store.put_if_absent(self._key("restore.json"), _dump(state))

    def update_state(self, state: dict[str, Any], etag: str) -> str:
        return self.store.put_if_match(self._key("restore.json"), _dump(state), etag)

    def load_names(self) -> None:
        start = len(self.prefix) + 1
        self._names = {info.key[start:] for info in self.store.list(self.prefix + "/steps/")}

    def has(self, name: str) -> bool:
        return name in self._names

    def record(self, name: str, value: dict[str, Any]) -> None:
        try:
            self.store.put_if_absent(self._key(name), _dump(value))
        except AlreadyExists:
            # Another run of the same restore recorded it first; it must have done the same.
            if self.read(name) != json.loads(_dump(value)):
                raise ConfigurationError(
                    f"restore journal {self._key(name)} was written by another run; "
                    "two restores must not share a journal"
                ) from None
        self._names.add(name)


def _source_row(read_table: TableReader) -> Row:
    """The version's one ``project`` row."""
    rows = list(_rows(read_table("project")))
    if len(rows) != 1:
        raise ConfigurationError(f"a version has exactly one project row; this one has {len(rows)}")
    return rows[0]


class _Run:
    """One execution of a restore (a fresh one or a resumed one)."""

    def __init__(
        self,
        target: RestoreTarget,
        read_table: TableReader,
        journal: _Journal,
        options: RestoreOptions,
        progress: Callable[[dict[str, int]], None] | None,
        *,
        selection: _Selection,
    ) -> None:
        self.target = target
        self.read_table = read_table
        self.journal = journal
        self.options = options
        self.progress = progress
        self.selection = selection
        self.created: dict[str, int] = {"datasets": 0, "items": 0, "annotations": 0, "tags": 0}
        self.filtered_out: dict[str, int] = dict.fromkeys(self.created, 0)
        self.skipped: list[RestoreIssue] = []
        self.failures: list[RestoreIssue] = []
        self.resumed = False
        self.reconcile_next = False
        self.where = "the project"

    # --- the project ------------------------------------------------------------------------

    def description(self, source: Row) -> str:
        options = self.options
        if options.project_description is not None:
            return options.project_description
        text = (
            f"Restored from version {options.version_number}. "
            f"Source project ID: {options.source_project_id}"
        )
        if options.version_id:
            text += f", version ID: {options.version_id}"
        original = source.get("description")
        return f"{text}\n\n{original}" if original else text

    def new_state(self, source: Row) -> dict[str, Any]:
        options = self.options
        workspace = options.workspace_id or self.target.default_workspace(source)
        wanted = options.project_name or f"{source.get('name')}, from ver. {options.version_number}"
        return {
            "format": _JOURNAL_FORMAT,
            "platform": self.target.name,
            "instance": self.target.instance,
            "source_project_id": options.source_project_id,
            "version_number": options.version_number,
            "version_id": options.version_id,
            "workspace_id": workspace,
            "name": self.target.free_project_name(workspace, wanted),
            "description": self.description(source),
            "filters": self.selection.identity(),
            "project_id": None,
        }

    def check_identity(self, state: Mapping[str, Any]) -> None:
        """Refuse a journal written by another restore (other version or other filters)."""
        options = self.options
        expected = {
            "platform": self.target.name,
            "source_project_id": options.source_project_id,
            "version_number": options.version_number,
            "filters": self.selection.identity(),
        }
        found = {name: state.get(name) for name in expected}
        found["filters"] = found["filters"] or _Selection().identity()
        differ = [
            f"{name} {found[name]!r}, not {value!r}"
            for name, value in expected.items()
            if found[name] != value
        ]
        if differ:
            raise ConfigurationError(
                f"restore journal {self.journal.prefix} belongs to another restore "
                f"({'; '.join(differ)}); use another journal for another restore"
            )

    def open_project(self, source: Row) -> ProjectInfo:
        """Create the project, or find the one an earlier attempt of this restore created."""
        options = self.options
        stored = self.journal.read_state()
        if stored is None:
            state = self.new_state(source)
            try:
                etag = self.journal.create_state(state)
            except AlreadyExists:
                return self.open_project(source)
        else:
            state, etag = stored
            self.resumed = True
            self.check_identity(state)
        if state["project_id"] is not None:
            try:
                return self.target.get_project(str(state["project_id"]))
            except PlatformNotFound:
                raise RestoreError(
                    f"project {state['project_id']}, which this restore created earlier, is "
                    f"gone; start a new restore with a new journal (not {self.journal.prefix})",
                    project=options.source_project_id,
                    created_project=str(state["project_id"]),
                ) from None
        info = None
        if self.resumed:  # it may exist although the journal never heard back
            info = self.target.find_project_by_name(state["workspace_id"], state["name"])
        if info is None:
            info = self.target.create_project(
                source,
                workspace_id=str(state["workspace_id"]),
                name=str(state["name"]),
                description=str(state["description"]),
            )
        state["project_id"] = info.project_id
        self.journal.update_state(state, etag)
        return info

    # --- datasets ---------------------------------------------------------------------------

    def datasets(self, project_id: str) -> dict[str, str]:
        """Create the datasets, parents first; returns key → new id."""
        self.where = "datasets"
        ids: dict[str, str] = {}
        pending: dict[str, tuple[int, Row]] = {}
        create = self.selection.create
        for index, row in enumerate(_rows(self.read_table("datasets"))):
            if create is not None and row["key"] not in create:
                self.filtered_out["datasets"] += 1
                continue
            name = f"steps/a{index:06d}-dataset.json"
            record = self.journal.read(name) if self.journal.has(name) else None
            if record is None:
                pending[row["key"]] = (index, row)
                continue
            if record.get("id") is not None:
                ids[row["key"]] = record["id"]
                self.created["datasets"] += 1
            self.failures += _issues(record.get("failures", []))
        while pending:
            ready = [
                (key, index, row)
                for key, (index, row) in pending.items()
                if row.get("parent_key") is None or row["parent_key"] not in pending
            ]
            if not ready:  # a cycle of parents: put what is left at the root
                ready = [(key, index, row) for key, (index, row) in pending.items()]
            for key, index, row in sorted(ready, key=lambda entry: entry[0]):
                del pending[key]
                self.dataset(project_id, index, row, ids)
        return ids

    def dataset(self, project_id: str, index: int, row: Row, ids: dict[str, str]) -> None:
        key = row["key"]
        parent_key = row.get("parent_key")
        parent = ids.get(parent_key) if parent_key is not None else None
        if parent_key is not None and parent is None:
            logger.warning(
                "dataset %s: parent %s was not restored; put at the root", key, parent_key
            )
        record: dict[str, Any] = {"key": key, "id": None, "failures": []}
        try:
            new_id = self.target.find_dataset(project_id, row, parent) if self.resumed else None
            if new_id is None:
                new_id = self.target.add_dataset(project_id, row, parent)
        except AuthenticationError:
            raise
        except PlatformError as exc:
            if not self.options.allow_failures:
                raise
            issue = RestoreIssue("datasets", key, exc.message)
            record["failures"].append(asdict(issue))
            self.failures.append(issue)
        else:
            record["id"] = ids[key] = new_id
            self.created["datasets"] += 1
        self.journal.record(f"steps/a{index:06d}-dataset.json", record)
        self.report_progress()

    # --- items, annotations, tags -----------------------------------------------------------

    def content(self, project_id: str, dataset_ids: Mapping[str, str]) -> None:
        """Batch by batch of items: the items, their annotations, the tags of both."""
        annotations = _Peekable(_rows(self.read_table("annotations")))
        tags = _Peekable(_rows(self.read_table("tags")))
        items = _rows(self.read_table("items"))
        kept = self.selection.items_of
        for index, dataset_key, item_rows, bound in _item_batches(items, self.options.batch_size):
            in_batch_annotations = partial(_before, column="item_key", bound=bound)
            in_batch_tags = partial(_before, column="owner_key", bound=bound)
            if kept is not None and dataset_key not in kept:  # left out: no step, no journal
                self.filtered_out["items"] += len(item_rows)
                self.filtered_out["annotations"] += annotations.drop_while(in_batch_annotations)
                self.filtered_out["tags"] += tags.drop_while(in_batch_tags)
                continue
            self.where = f"batch {index} (items {item_rows[0]['key']} … {item_rows[-1]['key']})"
            ann_rows, tag_rows = self.by_class(
                annotations.take_while(in_batch_annotations), tags.take_while(in_batch_tags)
            )
            dataset_id = dataset_ids.get(dataset_key) if dataset_key is not None else None
            self.batch(project_id, index, dataset_key, dataset_id, (item_rows, ann_rows, tag_rows))
        for table, rest in (("annotations", annotations), ("tags", tags)):
            for row in rest:
                self.skipped.append(
                    RestoreIssue(table, row["key"], "its owner is not in the version")
                )

    def by_class(self, ann_rows: list[Row], tag_rows: list[Row]) -> tuple[list[Row], list[Row]]:
        """Leave out annotations of classes not selected, and their tags."""
        classes = self.selection.classes
        if classes is None:
            return ann_rows, tag_rows
        dropped = {row["key"] for row in ann_rows if row.get("class_name") not in classes}
        if not dropped:
            return ann_rows, tag_rows
        kept_annotations = [row for row in ann_rows if row["key"] not in dropped]
        kept_tags = [row for row in tag_rows if row["owner_key"] not in dropped]
        self.filtered_out["annotations"] += len(ann_rows) - len(kept_annotations)
        self.filtered_out["tags"] += len(tag_rows) - len(kept_tags)
        return kept_annotations, kept_tags

    def batch(
        self,
        project_id: str,
        index: int,
        dataset_key: str | None,
        dataset_id: str | None,
        rows: tuple[list[Row], list[Row], list[Row]],
    ) -> None:
        """Three journaled steps of one batch."""
        item_rows, ann_rows, tag_rows = rows
        target = self.target
        item_ids = self.phase(
            f"steps/b{index:08d}-1-items.json",
            "items",
            item_rows,
            select=lambda todo: self.select_items(project_id, dataset_key, dataset_id, todo),
            create=lambda todo: target.add_items(project_id, dataset_id, todo),
            reconcile=lambda todo: target.already_restored(
                project_id, "items", dataset_id, todo, {}
            ),
        )
        ann_ids = self.phase(
            f"steps/b{index:08d}-2-annotations.json",
            "annotations",
            ann_rows,
            select=lambda todo: self.owned(todo, "annotations", "item_key", item_ids),
            create=lambda todo: target.add_annotations(project_id, dataset_id, todo, item_ids),
            reconcile=lambda todo: target.already_restored(
                project_id, "annotations", dataset_id, todo, item_ids
            ),
        )
        owners = {**item_ids, **ann_ids}
        self.phase(
            f"steps/b{index:08d}-3-tags.json",
            "tags",
            tag_rows,
            select=lambda todo: self.owned(todo, "tags", "owner_key", owners),
            create=lambda todo: target.add_tags(project_id, todo, owners),
            reconcile=lambda todo: target.already_restored(
                project_id, "tags", dataset_id, todo, owners
            ),
        )

    def select_items(
        self, project_id: str, dataset_key: str | None, dataset_id: str | None, rows: list[Row]
    ) -> tuple[list[Row], list[RestoreIssue]]:
        """Items to create: not those of a dataset that was not restored, and (with
        ``skip_missed_entities``) not those whose media is gone."""
        if dataset_key is not None and dataset_id is None:
            reason = f"its dataset {dataset_key} was not restored"
            return [], [RestoreIssue("items", row["key"], reason) for row in rows]
        if not self.options.skip_missed_entities:
            return rows, []
        missing = self.target.missing_items(project_id, rows)
        keep = [row for row in rows if row["key"] not in missing]
        return keep, [RestoreIssue("items", key, reason) for key, reason in missing.items()]

    @staticmethod
    def owned(
        rows: list[Row], table: str, column: str, owners: Mapping[str, str]
    ) -> tuple[list[Row], list[RestoreIssue]]:
        """Rows whose owner was restored; the others are skipped."""
        keep = [row for row in rows if row[column] in owners]
        skipped = [
            RestoreIssue(table, row["key"], f"its owner {row[column]} was not restored")
            for row in rows
            if row[column] not in owners
        ]
        return keep, skipped

    def phase(
        self,
        name: str,
        table: str,
        rows: list[Row],
        *,
        select: Callable[[list[Row]], tuple[list[Row], list[RestoreIssue]]],
        create: Callable[[list[Row]], dict[str, str]],
        reconcile: Callable[[list[Row]], dict[str, str]],
    ) -> dict[str, str]:
        """Run one step, or take its result from the journal."""
        if self.journal.has(name):
            record = self.journal.read(name) or {}
            self.skipped += _issues(record.get("skipped", []))
            self.failures += _issues(record.get("failures", []))
            done = dict(record.get("ids", {}))
            self.created[table] += len(done)
            return done
        todo, skipped = select(rows)
        ids: dict[str, str] = {}
        failures: list[RestoreIssue] = []
        if todo and self.reconcile_next:
            ids.update(reconcile(todo))
            todo = [row for row in todo if row["key"] not in ids]
        self.reconcile_next = False
        if todo:
            created, failures = self.create(table, todo, create, reconcile)
            ids.update(created)
        self.journal.record(
            name,
            {
                "ids": ids,
                "skipped": [asdict(issue) for issue in skipped],
                "failures": [asdict(issue) for issue in failures],
            },
        )
        self.skipped += skipped
        self.failures += failures
        self.created[table] += len(ids)
        self.report_progress()
        return ids

    def create(
        self,
        table: str,
        rows: list[Row],
        create: Callable[[list[Row]], dict[str, str]],
        reconcile: Callable[[list[Row]], dict[str, str]],
    ) -> tuple[dict[str, str], list[RestoreIssue]]:
        """Create rows in one call; with ``allow_failures`` fall back to one row at a time."""
        try:
            return create(rows), []
        except AuthenticationError:
            raise
        except PlatformError as exc:
            if not self.options.allow_failures:
                raise
            logger.warning(
                "%s: a batch of %d failed (%s); trying them one by one", table, len(rows), exc
            )
        ids = reconcile(rows)  # whatever part of the failed batch landed
        failures = []
        for row in rows:
            if row["key"] in ids:
                continue
            try:
                ids.update(create([row]))
            except AuthenticationError:
                raise
            except PlatformError as exc:
                failures.append(RestoreIssue(table, row["key"], exc.message))
        return ids, failures

    def report_progress(self) -> None:
        if self.progress is not None:
            self.progress(dict(self.created))


def restore_version(
    target: RestoreTarget,
    read_table: TableReader,
    *,
    store: ObjectStore,
    journal: str,
    options: RestoreOptions,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> RestoreReport:
    """Restore a version's tables into a new project on ``target``; see the module docstring.

    ``journal`` is the object-store prefix of this restore's journal (see
    :func:`journal_prefix`); calling again with the same journal resumes, or returns the
    report of a restore that already finished.

    Raises:
        RestoreError: the restore stopped; it names the created project and the progress.
        ConfigurationError: the journal belongs to another restore (another version or other
            filters), a dataset or class to restore is not in the version, or the version is
            invalid.
    """
    if options.batch_size < 1:
        raise ConfigurationError("restore batch_size must be at least 1")
    book = _Journal(store, journal)
    source = _source_row(read_table)
    selection = _selection(read_table, source, options)
    run = _Run(target, read_table, book, options, progress, selection=selection)
    finished = book.read("report.json")
    if finished is not None:
        stored = book.read_state()
        if stored is not None:
            run.check_identity(stored[0])
        return _report_from_json(finished)
    try:
        project = run.open_project(source)
    except PlatformError as exc:
        raise RestoreError(
            f"restore of {target.name} project {options.source_project_id} version "
            f"{options.version_number} could not create its project: {exc.message}. "
            "Nothing was restored.",
            project=options.source_project_id,
        ) from exc
    book.load_names()
    # After an interruption, the first step missing from the journal may have landed anyway.
    run.reconcile_next = run.resumed
    try:
        run.where = "the project's definitions and settings"
        target.prepare_project(project.project_id, source)
        dataset_ids = run.datasets(project.project_id)
        run.content(project.project_id, dataset_ids)
    except LabelvaultError as exc:
        done = ", ".join(f"{table} {count}" for table, count in run.created.items())
        raise RestoreError(
            f"restore of {target.name} project {options.source_project_id} version "
            f"{options.version_number} stopped at {run.where}: {exc.message}. It created "
            f"project {project.project_id} ({project.name!r}) in workspace "
            f"{project.workspace_id}; restored so far: {done}. Run it again with the same "
            f"journal ({book.prefix}) to resume.",
            project=options.source_project_id,
            created_project=project.project_id,
            progress=run.created,
        ) from exc
    report = RestoreReport(
        project=project,
        journal=book.prefix,
        created=dict(run.created),
        skipped=tuple(run.skipped),
        failures=tuple(run.failures),
        resumed=run.resumed,
        filtered_out=dict(run.filtered_out),
    )
    for issue in report.failures:
        logger.warning("not restored: %s %s: %s", issue.table, issue.key, issue.reason)
    book.record("report.json", _report_to_json(report))
    return report


def _report_to_json(report: RestoreReport) -> dict[str, Any]:
    project = asdict(report.project)
    updated = report.project.updated_at
    project["updated_at"] = updated.isoformat() if updated else None
    return {
        "project": project,
        "journal": report.journal,
        "created": report.created,
        "skipped": [asdict(issue) for issue in report.skipped],
        "failures": [asdict(issue) for issue in report.failures],
        "filtered_out": report.filtered_out,
    }


def _report_from_json(data: dict[str, Any]) -> RestoreReport:
    project = dict(data["project"])
    if project.get("updated_at"):
        project["updated_at"] = datetime.fromisoformat(project["updated_at"])
    return RestoreReport(
        project=ProjectInfo(**project),
        journal=data["journal"],
        created=dict(data["created"]),
        skipped=tuple(_issues(data["skipped"])),
        failures=tuple(_issues(data["failures"])),
        resumed=True,
        filtered_out=dict(data.get("filtered_out", {})),
    )
