"""A restore driver for platforms whose projects are datasets of items with rows that hang off
them (Supervisely images: annotations and tags; videos: objects, figures and tags): a
:class:`KeyedTarget` says how to create each kind of row, :func:`restore_keyed` decides the
order, journals every step and resumes.

Order: the project (name ``"{name}, from ver. {N}"``, refused when the workspace has a project
of that name unless ``allow_duplicate_name``, then made unique; description as Supervisely
writes it), its definitions and settings, datasets parents first, then batch by batch of items:
the items, then each table of the target's :meth:`LayeredTarget.content_tables` in turn
(by default :data:`IMAGE_LAYOUT`: annotations, then the tags of both). Those rows are merged
into their item's batch by key, so memory holds one batch, not the project: their keys must
start with their item's key (as labelvault's adapters make them).

Every finished step is recorded in the journal. Running the same restore again resumes after
the last recorded step; a step that landed on the platform but not in the journal is found by
:meth:`KeyedTarget.already_restored`.

Writes that fail ambiguously (5xx, a timeout, a connection dropped after the request left, 429
after the HTTP retries: a :class:`~labelvault.errors.TransientError`) may have landed, so the
HTTP layer does not repeat them. This driver does, safely, within the same run: it asks the
target what landed (the same reconcile a resume uses: the project by name, a dataset by name
and parent, rows by content), then sends only what did not, up to
:attr:`KeyedTarget.write_retries` times per step.

- ``skip_missed_entities``: items whose media is gone (hash deleted, link dead) are skipped,
  with their annotations and tags, and listed in the report.
- ``allow_failures`` (as in Encord's ``CloudUploadSettings``): a batch that still fails after
  the HTTP retries is retried row by row; rows that fail again are listed as failures and their
  dependents skipped.
- Otherwise the first failure stops the restore with :class:`~labelvault.errors.RestoreError`,
  which names the created project and how far the restore got.
- A partial restore (:class:`~labelvault.platforms.base.Selection`) leaves out items of other
  datasets with everything that hangs off them, rows of other classes (annotations, objects,
  figures) with what hangs off those, and counts what it left out instead of listing the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from labelvault.errors import (
    AuthenticationError,
    ConfigurationError,
    LabelvaultError,
    PlatformError,
    PlatformNotFound,
    RestoreError,
    is_transient,
)
from labelvault.models import RESTORE_COUNTS, ProjectInfo, RestoreIssue, RestoreReport
from labelvault.platforms.base import (
    WHOLE_PARTITION,
    Partition,
    RangeReader,
    RestoreJournal,
    RestoreProgress,
    RestoreRequest,
    TableReader,
)
from labelvault.platforms.streams import (
    Peekable,
    Row,
    issues,
    issues_json,
    rows,
    source_row,
    whole_range,
)

__all__ = [
    "DATASETS_RECORD",
    "IMAGE_LAYOUT",
    "ChildTable",
    "KeyedTarget",
    "LayeredTarget",
    "begin_keyed",
    "restore_keyed",
    "restore_keyed_partition",
]

logger = logging.getLogger("labelvault.platforms.keyed")

_T = TypeVar("_T")


@dataclass(frozen=True)
class ChildTable:
    """A table whose rows hang off the items of a batch and are restored after them.

    ``batch_column`` holds a key that starts with the row's item key (it places the row in its
    item's batch); ``owner_column`` names the row that must be restored first (an item, or a
    row of an earlier child table), whose new id the row's write needs.
    """

    table: str
    batch_column: str
    owner_column: str


#: Items with annotations, then the tags of both (Supervisely images, the default).
IMAGE_LAYOUT: tuple[ChildTable, ...] = (
    ChildTable("annotations", "item_key", "item_key"),
    ChildTable("tags", "owner_key", "owner_key"),
)


class KeyedTarget(Protocol):
    """What :func:`restore_keyed` needs from a platform: one call per kind of row, each
    returning the new ids keyed by the source rows' keys."""

    name: str

    @property
    def instance(self) -> str:
        """The server (``host:port``)."""
        ...

    @property
    def write_retries(self) -> int:
        """How often one step's write is sent again after an ambiguous failure (the request
        settings' ``max_retries``); every retry first reconciles what landed."""
        ...

    def get_project(self, project_id: str) -> ProjectInfo:
        """Describe a project (one this restore created)."""
        ...

    def default_workspace(self, source: Row) -> str:
        """Where the source project lived (from its row)."""
        ...

    def free_project_name(self, workspace_id: str, wanted: str) -> str:
        """``wanted``, or a variant no project in the workspace has."""
        ...

    def find_project_by_name(self, workspace_id: str, name: str) -> ProjectInfo | None:
        """The project of that name in the workspace, if any."""
        ...

    def create_project(
        self, source: Row, *, workspace_id: str, name: str, description: str
    ) -> ProjectInfo:
        """Create the project from its source row."""
        ...

    def prepare_project(self, project_id: str, source: Row) -> None:
        """Definitions and settings that need the new project; safe to repeat."""
        ...

    def learn_project(self, project_id: str, source: Row) -> None:
        """Read back what :meth:`prepare_project` set up, writing nothing (a partition)."""
        ...

    def add_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str:
        """Create one dataset; its new id."""
        ...

    def find_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str | None:
        """The dataset an interrupted attempt created, if any."""
        ...

    def missing_items(self, project_id: str, rows: Sequence[Row]) -> dict[str, str]:
        """Items whose media is gone: key → reason."""
        ...

    def add_items(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        """Create items; key → new id."""
        ...

    def add_annotations(
        self,
        project_id: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        items: Mapping[str, str],
    ) -> dict[str, str]:
        """Create annotations of restored items; key → new id."""
        ...

    def add_tags(
        self, project_id: str, rows: Sequence[Row], owners: Mapping[str, str]
    ) -> dict[str, str]:
        """Create tags of restored items and annotations; key → new id."""
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


class LayeredTarget(KeyedTarget, Protocol):
    """A target whose items carry other tables than annotations and tags (videos …)."""

    def content_tables(self, source: Row) -> Sequence[ChildTable]:
        """The tables restored after each batch of items, in order (:data:`IMAGE_LAYOUT` …)."""
        ...

    def add_rows(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """Create rows of a child table; ``owners`` maps every key restored so far in the
        batch (items and earlier child tables) to its new id. Returns key → new id."""
        ...


def _layout(target: KeyedTarget, source: Row) -> Sequence[ChildTable]:
    """The target's child tables: its own (a :class:`LayeredTarget`) or :data:`IMAGE_LAYOUT`."""
    content_tables = getattr(target, "content_tables", None)
    return IMAGE_LAYOUT if content_tables is None else tuple(content_tables(source))


def _restore_turn(target: KeyedTarget) -> Callable[[], AbstractContextManager[object]]:
    """The target's turn to restore a run's items: its ``restore_turn``, when it has one
    (partitions restored side by side then restore no more at once than it allows), else any
    time."""
    turn: Callable[[], AbstractContextManager[object]] | None = getattr(
        target, "restore_turn", None
    )
    return nullcontext if turn is None else turn


def _add_rows(
    target: KeyedTarget,
    project_id: str,
    table: str,
    dataset_id: str | None,
    rows: Sequence[Row],
    *,
    owners: Mapping[str, str],
) -> dict[str, str]:
    """Create the rows of one child table through the target's writer for it."""
    if table == "annotations":
        return target.add_annotations(project_id, dataset_id, rows, owners)
    if table == "tags":
        return target.add_tags(project_id, rows, owners)
    add = getattr(target, "add_rows", None)
    if add is None:
        raise ConfigurationError(f"{target.name}: no restore for rows of table {table!r}")
    found: dict[str, str] = add(project_id, table, dataset_id, rows, owners)
    return found


def _item_batches(
    items: Iterator[Row], size: int
) -> Iterator[tuple[int, str | None, list[Row], str | None]]:
    """Consecutive items of one dataset, ``size`` at a time, with the next batch's first key."""
    source = Peekable(items)
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


class _Run:
    """One execution of a restore (a fresh one or a resumed one)."""

    def __init__(
        self,
        target: KeyedTarget,
        read_table: TableReader,
        journal: RestoreJournal,
        request: RestoreRequest,
        progress: RestoreProgress | None,
        *,
        steps: str = "steps/",
    ) -> None:
        self.target = target
        #: Where this run's batch steps are recorded: its partition's part of the journal.
        self.steps = steps
        self.read_table = read_table
        self.journal = journal
        self.options = request.options
        self.origin = request.origin
        self.progress = progress
        self.selection = request.selection
        self.created: dict[str, int] = dict.fromkeys(RESTORE_COUNTS, 0)
        self.filtered_out: dict[str, int] = dict.fromkeys(RESTORE_COUNTS, 0)
        self.skipped: list[RestoreIssue] = []
        self.failures: list[RestoreIssue] = []
        self.resumed = False
        self.reconcile_next = False
        self.where = "the project"
        #: Which part of the restore this run is, as its errors say it.
        self.scope = ""

    # --- the project ------------------------------------------------------------------------

    def description(self, source: Row) -> str:
        options, origin = self.options, self.origin
        if options.project_description is not None:
            return options.project_description
        text = (
            f"Restored from version {origin.version_number}. "
            f"Source project ID: {origin.source_project_id}"
        )
        if origin.version_id:
            text += f", version ID: {origin.version_id}"
        original = source.get("description")
        return f"{text}\n\n{original}" if original else text

    def plan_target(self, source: Row) -> dict[str, Any]:
        """Where the project goes and its name, decided once and journaled."""
        planned = self.journal.read("target.json")
        if planned is not None:
            self.resumed = True
            return planned
        options = self.options
        workspace = options.workspace_id or self.target.default_workspace(source)
        wanted = options.project_name or (
            f"{source.get('name')}, from ver. {self.origin.version_number}"
        )
        if not options.allow_duplicate_name:
            clash = self.target.find_project_by_name(workspace, wanted)
            if clash is not None:
                raise ConfigurationError(
                    f"{self.target.name} workspace {workspace} already has a project named "
                    f"{wanted!r} (id {clash.project_id}); pass another --name, or "
                    "--allow-duplicate-name to restore under a name made unique"
                )
        planned = {
            "workspace_id": workspace,
            "name": self.target.free_project_name(workspace, wanted),
            "description": self.description(source),
        }
        self.journal.record("target.json", planned)
        return planned

    def open_project(self, source: Row) -> ProjectInfo:
        """Create the project, or find the one an earlier attempt of this restore created."""
        planned = self.plan_target(source)
        made = self.journal.read("project.json")
        if made is not None:
            try:
                return self.target.get_project(str(made["project_id"]))
            except PlatformNotFound:
                raise RestoreError(
                    f"project {made['project_id']}, which this restore created earlier, is "
                    f"gone; start a new restore (not {self.journal.prefix})",
                    project=self.origin.source_project_id,
                    created_project=str(made["project_id"]),
                ) from None
        workspace, name = str(planned["workspace_id"]), str(planned["name"])

        def attempt(retry: int) -> ProjectInfo:
            # After an interruption or an ambiguous failure it may exist already.
            found = (
                self.target.find_project_by_name(workspace, name) if retry or self.resumed else None
            )
            return found or self.target.create_project(
                source,
                workspace_id=workspace,
                name=name,
                description=str(planned["description"]),
            )

        info = self.retrying("creating the project", attempt)
        self.journal.record("project.json", {"project_id": info.project_id})
        return info

    def retrying(self, what: str, attempt: Callable[[int], _T]) -> _T:
        """``attempt(0)``, then after an ambiguous failure (a transient error: the write may
        have landed) ``attempt(1)``, ``attempt(2)`` … up to the target's ``write_retries``.
        An attempt after the first must reconcile what the earlier ones landed."""
        budget = max(0, self.target.write_retries)
        retry = 0
        while True:
            try:
                return attempt(retry)
            except AuthenticationError:
                raise
            except PlatformError as exc:
                if not is_transient(exc) or retry >= budget:
                    raise
                retry += 1
                logger.warning(
                    "%s failed (%s); checking what landed, then retry %d of %d",
                    what,
                    exc.message,
                    retry,
                    budget,
                )

    # --- datasets ---------------------------------------------------------------------------

    def datasets(self, project_id: str) -> dict[str, str]:
        """Create the datasets, parents first; returns key → new id."""
        self.where = "datasets"
        ids: dict[str, str] = {}
        pending: dict[str, tuple[int, Row]] = {}
        create = self.selection.create
        for index, row in enumerate(rows(self.read_table("datasets"))):
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
            self.failures += issues(record.get("failures", []))
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

        def attempt(retry: int) -> str:
            found = (
                self.target.find_dataset(project_id, row, parent) if retry or self.resumed else None
            )
            return found or self.target.add_dataset(project_id, row, parent)

        try:
            new_id = self.retrying(f"dataset {key}", attempt)
        except AuthenticationError:
            raise
        except PlatformError as exc:
            if not self.options.allow_failures:
                raise
            issue = RestoreIssue("datasets", key, exc.message)
            record["failures"] += issues_json([issue])
            self.failures.append(issue)
        else:
            record["id"] = ids[key] = new_id
            self.created["datasets"] += 1
        self.journal.record(f"steps/a{index:06d}-dataset.json", record)
        self.report_progress()

    # --- items, annotations, tags -----------------------------------------------------------

    def content(
        self, project_id: str, dataset_ids: Mapping[str, str], layout: Sequence[ChildTable]
    ) -> None:
        """Batch by batch of items: the items, then the rows of each child table."""
        for spec in layout:
            self.created.setdefault(spec.table, 0)
            self.filtered_out.setdefault(spec.table, 0)
        children = [(spec, Peekable(rows(self.read_table(spec.table)))) for spec in layout]
        items = rows(self.read_table("items"))
        kept = self.selection.items_of
        # Partitions restored side by side take turns: one holds its readers and its batch's
        # rows only while it restores.
        with _restore_turn(self.target)():
            for index, dataset_key, item_rows, bound in _item_batches(
                items, self.options.batch_size
            ):
                if kept is not None and dataset_key not in kept:  # left out: no step, no journal
                    self.filtered_out["items"] += len(item_rows)
                    for spec, stream in children:
                        in_batch = partial(_before, column=spec.batch_column, bound=bound)
                        self.filtered_out[spec.table] += stream.drop_while(in_batch)
                    continue
                self.where = f"batch {index} (items {item_rows[0]['key']} … {item_rows[-1]['key']})"
                groups = [
                    stream.take_while(partial(_before, column=spec.batch_column, bound=bound))
                    for spec, stream in children
                ]
                dataset_id = dataset_ids.get(dataset_key) if dataset_key is not None else None
                batch = list(zip(layout, self.by_class(layout, groups), strict=True))
                self.batch(
                    project_id,
                    index,
                    dataset_key=dataset_key,
                    dataset_id=dataset_id,
                    item_rows=item_rows,
                    children=batch,
                )
            for spec, rest in children:
                for row in rest:
                    self.skipped.append(
                        RestoreIssue(spec.table, row["key"], "its owner is not in the version")
                    )

    def by_class(self, layout: Sequence[ChildTable], groups: list[list[Row]]) -> list[list[Row]]:
        """Leave out rows of classes not selected, and the rows that hang off them."""
        classes = self.selection.classes
        if classes is None:
            return groups
        dropped: set[str] = set()
        kept_groups = []
        for spec, group in zip(layout, groups, strict=True):
            kept = []
            for row in group:
                if ("class_name" in row and row["class_name"] not in classes) or row[
                    spec.owner_column
                ] in dropped:
                    dropped.add(row["key"])
                else:
                    kept.append(row)
            self.filtered_out[spec.table] += len(group) - len(kept)
            kept_groups.append(kept)
        return kept_groups

    def batch(
        self,
        project_id: str,
        index: int,
        *,
        dataset_key: str | None,
        dataset_id: str | None,
        item_rows: list[Row],
        children: list[tuple[ChildTable, list[Row]]],
    ) -> None:
        """The journaled steps of one batch: its items, then each child table."""
        target = self.target
        item_ids = self.phase(
            f"{self.steps}b{index:08d}-1-items.json",
            "items",
            item_rows,
            select=lambda todo: self.select_items(project_id, dataset_key, dataset_id, todo),
            create=lambda todo: target.add_items(project_id, dataset_id, todo),
            reconcile=lambda todo: target.already_restored(
                project_id, "items", dataset_id, todo, {}
            ),
        )
        owners = dict(item_ids)
        for number, (spec, group) in enumerate(children, start=2):
            table, column = spec.table, spec.owner_column
            ids = self.phase(
                f"{self.steps}b{index:08d}-{number}-{table}.json",
                table,
                group,
                select=partial(self.owned, table=table, column=column, owners=owners),
                create=partial(_add_rows, target, project_id, table, dataset_id, owners=owners),
                reconcile=partial(
                    target.already_restored, project_id, table, dataset_id, owners=owners
                ),
            )
            owners.update(ids)

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
        rows: list[Row], *, table: str, column: str, owners: Mapping[str, str]
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
            self.skipped += issues(record.get("skipped", []))
            self.failures += issues(record.get("failures", []))
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
                "skipped": issues_json(skipped),
                "failures": issues_json(failures),
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
        """Create rows in one call (retried after ambiguous failures, see :meth:`retrying`);
        with ``allow_failures`` fall back to one row at a time."""
        ids: dict[str, str] = {}
        try:
            ids.update(self.retrying(table, partial(self.attempt, rows, ids, create, reconcile)))
            return ids, []
        except AuthenticationError:
            raise
        except PlatformError as exc:
            if not self.options.allow_failures:
                raise
            logger.warning(
                "%s: a batch of %d failed (%s); trying them one by one", table, len(rows), exc
            )
        ids.update(reconcile([row for row in rows if row["key"] not in ids]))
        failures = []
        for row in rows:
            if row["key"] in ids:
                continue
            try:
                one = partial(self.attempt, [row], ids, create, reconcile)
                ids.update(self.retrying(table, one))
            except AuthenticationError:
                raise
            except PlatformError as exc:
                failures.append(RestoreIssue(table, row["key"], exc.message))
        return ids, failures

    @staticmethod
    def attempt(
        rows: list[Row],
        ids: dict[str, str],
        create: Callable[[list[Row]], dict[str, str]],
        reconcile: Callable[[list[Row]], dict[str, str]],
        retry: int,
    ) -> dict[str, str]:
        """One attempt at creating ``rows``; a retry first adds to ``ids`` what landed and
        sends only the rest."""
        todo = [row for row in rows if row["key"] not in ids]
        if retry and todo:
            ids.update(reconcile(todo))
            todo = [row for row in todo if row["key"] not in ids]
        return create(todo) if todo else {}

    def report_progress(self) -> None:
        if self.progress is not None:
            self.progress(dict(self.created))


#: The journal record of the datasets' new ids, which every partition reads.
DATASETS_RECORD = "steps/datasets.json"


def _stopped(
    run: _Run,
    project: ProjectInfo,
    exc: LabelvaultError,
    journal: RestoreJournal,
    before: Mapping[str, int] | None = None,
) -> RestoreError:
    """The error of a restore that stopped after creating its project (``before``: what
    earlier steps of this run created)."""
    origin = run.origin
    counts = dict(before or {})
    for table, count in run.created.items():
        counts[table] = counts.get(table, 0) + count
    done = ", ".join(f"{table} {count}" for table, count in counts.items() if count)
    return RestoreError(
        f"restore of {run.target.name} project {origin.source_project_id} version "
        f"{origin.version_number} stopped at {run.where}: {exc.message}. It created "
        f"project {project.project_id} ({project.name!r}) in workspace "
        f"{project.workspace_id}; restored so far{run.scope}: {done or 'nothing'}. Run it "
        f"again with the same restore id (journal {journal.prefix}) to resume.",
        project=origin.source_project_id,
        created_project=project.project_id,
        progress=counts,
        transient=is_transient(exc),
    )


def _report(run: _Run, project: ProjectInfo, journal: RestoreJournal) -> RestoreReport:
    for issue in run.failures:
        logger.warning("not restored: %s %s: %s", issue.table, issue.key, issue.reason)
    return RestoreReport(
        project=project,
        journal=journal.prefix,
        created=dict(run.created),
        skipped=tuple(run.skipped),
        failures=tuple(run.failures),
        resumed=run.resumed,
        filtered_out=dict(run.filtered_out),
    )


def begin_keyed(
    target: KeyedTarget, tables: TableReader, request: RestoreRequest, journal: RestoreJournal
) -> RestoreReport:
    """Create the project, its definitions and its datasets (or find them in the journal),
    and record the datasets' new ids for the partitions; the report of that much."""
    origin = request.origin
    source = source_row(tables)
    run = _Run(target, tables, journal, request, None)
    try:
        project = run.open_project(source)
    except PlatformError as exc:
        raise RestoreError(
            f"restore of {target.name} project {origin.source_project_id} version "
            f"{origin.version_number} could not create its project: {exc.message}. "
            "Nothing was restored.",
            project=origin.source_project_id,
        ) from exc
    journal.load_names("steps/a")
    try:
        run.where = "the project's definitions and settings"
        target.prepare_project(project.project_id, source)
        journal.record(DATASETS_RECORD, {"ids": run.datasets(project.project_id)})
    except LabelvaultError as exc:
        raise _stopped(run, project, exc, journal) from exc
    return _report(run, project, journal)


def restore_keyed_partition(
    target: KeyedTarget,
    tables: RangeReader,
    request: RestoreRequest,
    journal: RestoreJournal,
    *,
    begun: RestoreReport,
    partition: Partition,
    progress: RestoreProgress | None = None,
) -> RestoreReport:
    """Restore one partition of :func:`begin_keyed`'s project: the items whose keys are in
    ``partition.spec``'s ``[start, stop)``, batch by batch with what hangs off them, recorded
    under ``steps/<partition key>/`` (the whole version: under ``steps/``); its report."""
    start, stop = partition.spec.get("start"), partition.spec.get("stop")
    whole = partition.key == WHOLE_PARTITION
    steps = "steps/" if whole else f"steps/{partition.key}/"
    source = source_row(lambda table: tables(table, None, None))
    run = _Run(
        target,
        lambda table: tables(table, start, stop),
        journal,
        request,
        progress,
        steps=steps,
    )
    run.scope = "" if whole else f" in partition {partition.label}"
    project = begun.project
    recorded = journal.read(DATASETS_RECORD)
    if recorded is None:
        raise ConfigurationError(
            f"restore journal {journal.prefix} has no datasets yet; begin the restore before "
            "its partitions"
        )
    journal.load_names(steps)
    run.resumed = begun.resumed
    # After an interruption, the first step missing from the journal may have landed anyway.
    run.reconcile_next = begun.resumed
    if not whole:
        marker = f"{steps}started.json"
        run.reconcile_next = run.reconcile_next or journal.has(marker)
        journal.record(marker, {})
    try:
        if not whole:  # a partition may run in a process of its own: learn the definitions
            run.where = "the project's definitions"
            target.learn_project(project.project_id, source)
        run.content(project.project_id, dict(recorded["ids"]), _layout(target, source))
    except LabelvaultError as exc:
        raise _stopped(run, project, exc, journal, begun.created if whole else None) from exc
    return _report(run, project, journal)


def restore_keyed(
    target: KeyedTarget,
    tables: TableReader,
    request: RestoreRequest,
    journal: RestoreJournal,
    progress: RestoreProgress | None = None,
) -> RestoreReport:
    """Restore a version's tables through ``target`` in one run; see the module docstring."""
    begun = begin_keyed(target, tables, request, journal)

    def report_all(created: Mapping[str, int]) -> None:
        if progress is not None:
            progress({**created, "datasets": begun.created.get("datasets", 0)})

    part = restore_keyed_partition(
        target,
        whole_range(tables),
        request,
        journal,
        begun=begun,
        partition=Partition(key=WHOLE_PARTITION, label="the whole version"),
        progress=report_all,
    )
    return begun.joined(part)
