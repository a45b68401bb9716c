"""What the pipeline needs from an annotation platform, and the registry of platforms by name.

A platform adapter turns a project into record batches of the tables in
:mod:`labelvault.snapshot.schema` (capture) and writes such tables back as a new project
(restore). It never holds a whole project in memory: :meth:`Platform.iter_pages` is a generator
of bounded batches, and restore consumes readers that stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from labelvault.errors import ConfigurationError
from labelvault.models import (
    ProjectInfo,
    RestoreOptions,
    RestoreReport,
    VersionOrigin,
    instance_from_url,
)

__all__ = [
    "HEAD_PARTITION",
    "PLATFORMS",
    "WHOLE_PARTITION",
    "Partition",
    "PartitionedPlatform",
    "PartitionedRestore",
    "Platform",
    "ProjectInfo",
    "RangeReader",
    "RestoreJournal",
    "RestoreProgress",
    "RestoreRequest",
    "Selection",
    "TablePage",
    "TableReader",
    "get_platform_factory",
    "instance_from_url",
    "register_platform",
]

#: Table name → that table's record batches in key order (an empty iterator for no rows).
TableReader = Callable[[str], Iterator[pa.RecordBatch]]
#: ``(table, start, stop)`` → the table's batches of rows whose key is in ``[start, stop)``
#: (``None``: unbounded), in key order: the part of a version one restore partition reads.
RangeReader = Callable[[str, str | None, str | None], Iterator[pa.RecordBatch]]
#: Hears the rows created so far, per table (:data:`labelvault.models.RESTORE_COUNTS`).
RestoreProgress = Callable[[Mapping[str, int]], None]


@dataclass(frozen=True)
class TablePage:
    """One bounded batch of rows of one table, in key order."""

    table: str
    batch: pa.RecordBatch


#: The key of the partition that holds a project's own rows (project, datasets …).
HEAD_PARTITION = "head"
#: The key of a partition that is the whole project, read as :meth:`Platform.iter_pages` reads it.
WHOLE_PARTITION = "whole"


@dataclass(frozen=True)
class Partition:
    """A part of a project captured on its own (see :class:`PartitionedPlatform`)."""

    #: Stable within a plan; :data:`HEAD_PARTITION` for the project's own rows.
    key: str
    #: What a person calls it (a dataset's path).
    label: str
    #: Items it holds, as far as the platform says (for progress and scheduling).
    weight: int = 0
    #: Plain values the platform needs to read it again (JSON-able, no client, no secret).
    spec: Mapping[str, Any] = field(default_factory=dict)
    #: ``(start, stop)``: the partition holds, of every table but the head's and the shared
    #: ones, exactly the rows whose key is in ``[start, stop)`` (``""``, ``None``: unbounded).
    #: The ranges of a plan follow one another and cover every key; with them, each
    #: partition stores a delta against the latest version. ``None``: no range.
    key_range: tuple[str, str | None] | None = None


@dataclass(frozen=True)
class Selection:
    """The part of a version a restore brings back (``None``: no restriction).

    ``roots``: the datasets the user named (without those inside another named one);
    ``items_of``: datasets whose items are restored (the named ones and their subtrees);
    ``create``: datasets created (``items_of`` and their ancestors); ``classes``: annotation
    classes restored, with their tags.
    """

    roots: frozenset[str] | None = None
    items_of: frozenset[str] | None = None
    create: frozenset[str] | None = None
    classes: frozenset[str] | None = None

    def identity(self) -> dict[str, list[str] | None]:
        """The filters, as recorded in a restore's journal."""
        return {
            "datasets": sorted(self.roots) if self.roots is not None else None,
            "classes": sorted(self.classes) if self.classes is not None else None,
        }

    @property
    def restricts(self) -> bool:
        """True when some datasets or classes are left out."""
        return self.roots is not None or self.classes is not None


@dataclass(frozen=True)
class RestoreRequest:
    """Everything a platform needs to restore a version, beside its tables and journal."""

    origin: VersionOrigin
    options: RestoreOptions
    selection: Selection = Selection()


class RestoreJournal(Protocol):
    """Create-only records of a restore's finished steps, kept by the restore engine (in the
    store, beside the version); a platform's restore reads them to resume."""

    @property
    def prefix(self) -> str:
        """Where the journal lives (named in messages, so a user can find it)."""
        ...

    def read(self, name: str) -> dict[str, Any] | None:
        """The record ``name``, or None when it was never written."""
        ...

    def has(self, name: str) -> bool:
        """True when ``name`` was recorded (as of the last :meth:`load_names`)."""
        ...

    def load_names(self, under: str = "steps/") -> None:
        """Learn which step records under ``under`` exist (once, before resuming)."""
        ...

    def record(self, name: str, value: dict[str, Any]) -> None:
        """Write ``name`` once; writing the same value again is not an error."""
        ...


@runtime_checkable
class Platform(Protocol):
    """An annotation platform, as capture and restore see it."""

    #: Registry name: ``supervisely``, ``labelstudio`` …
    name: str
    #: :class:`~labelvault.models.RestoreOptions` fields this platform cannot honour; a
    #: restore that sets one is refused before anything is created.
    restore_ignores: tuple[str, ...]

    @property
    def instance(self) -> str:
        """A safe, stable encoding of the server this adapter talks to (host and port), so two
        servers of one platform never share a history."""
        ...

    def get_project(self, project_id: str) -> ProjectInfo:
        """Describe a project; raises ``PlatformNotFound`` or ``UnsupportedProject``."""
        ...

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        """Stream the project's content, table by table and page by page, each table in
        strictly increasing key order."""
        ...

    def restore(
        self,
        tables: TableReader,
        request: RestoreRequest,
        journal: RestoreJournal,
        progress: RestoreProgress | None = None,
    ) -> RestoreReport:
        """Restore a version's tables as a new project, or finish the one the journal names.

        Every new id is paired with its source row's key; every finished step is recorded in
        ``journal`` first, so running again with the same journal creates nothing twice.
        Raises ``RestoreError`` naming the created project and how far it got.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def delete_project(self, project_id: str) -> None:
        """Delete a project (a preview being replaced or expired); one that is already gone
        counts as deleted."""
        ...


@runtime_checkable
class PartitionedPlatform(Platform, Protocol):
    """A platform that splits a capture into partitions read on their own, side by side.

    The partitions of a plan come in key order: in every table, the rows of one partition
    sort after those of the partitions before it, except in :attr:`shared_tables`, whose rows
    several partitions may hold (the same row under the same key).
    """

    shared_tables: frozenset[str]
    #: Tables the head partition holds whole (the others are cut by key range).
    head_tables: frozenset[str]

    def capture_plan(self, project_id: str) -> list[Partition]:
        """The project's partitions, in key order."""
        ...

    def iter_partition(self, project_id: str, partition: Partition) -> Iterator[TablePage]:
        """One partition's pages, each table in strictly increasing key order."""
        ...


@runtime_checkable
class PartitionedRestore(Platform, Protocol):
    """A platform that restores a version in partitions side by side: first the project and
    its datasets (:meth:`begin_restore`), then each partition, a range of item keys with what
    hangs off those items, on its own (:meth:`restore_partition`), each recording its steps
    in its own part of the journal (``steps/<partition key>/``)."""

    def restore_cut(self, source: Mapping[str, Any], key: str) -> str:
        """Where a partition may start at or before the item key ``key`` (items that must
        be restored together, such as the views of a multiview dataset, stay together)."""
        ...

    def begin_restore(
        self, tables: TableReader, request: RestoreRequest, journal: RestoreJournal
    ) -> RestoreReport:
        """Create the project and its datasets, or find what the journal says was created;
        the report of that much."""
        ...

    def restore_partition(
        self,
        tables: RangeReader,
        request: RestoreRequest,
        journal: RestoreJournal,
        *,
        begun: RestoreReport,
        partition: Partition,
        progress: RestoreProgress | None = None,
    ) -> RestoreReport:
        """Restore the items whose keys are in ``partition.spec``'s ``[start, stop)`` and what
        hangs off them into ``begun``'s project; the report of that partition alone."""
        ...


PlatformFactory = Callable[..., Platform]

#: Platform factories by name; use :func:`register_platform` to add one.
PLATFORMS: dict[str, PlatformFactory] = {}


def register_platform(name: str, factory: PlatformFactory) -> None:
    """Make a platform available by name (``labelvault --platform NAME``)."""
    PLATFORMS[name] = factory


def get_platform_factory(name: str) -> PlatformFactory:
    """The factory registered under ``name``; the error lists the valid names."""
    try:
        return PLATFORMS[name]
    except KeyError:
        valid = ", ".join(sorted(PLATFORMS)) or "(none registered)"
        raise ConfigurationError(f"unknown platform {name!r}; known platforms: {valid}") from None
