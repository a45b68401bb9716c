"""Supervisely restore: the keyed order of :mod:`labelvault.platforms.keyed` over the writes of
:mod:`.writes` (images), :mod:`.video` (videos) and :mod:`.volume` (volumes), with
:mod:`.reconcile` finding what landed unjournaled."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from labelvault.errors import ConfigurationError
from labelvault.models import RestoreReport
from labelvault.platforms.base import (
    Partition,
    RangeReader,
    RestoreJournal,
    RestoreProgress,
    RestoreRequest,
    TableReader,
)
from labelvault.platforms.keyed import (
    IMAGE_LAYOUT,
    ChildTable,
    begin_keyed,
    restore_keyed,
    restore_keyed_partition,
)
from labelvault.platforms.streams import Row
from labelvault.platforms.supervisely.video import VIDEO_LAYOUT, is_multiview
from labelvault.platforms.supervisely.volume import VolumeRestore

__all__ = ["SuperviselyRestore"]


class SuperviselyRestore(VolumeRestore):
    """Restores a version as a new project (the platform protocol's ``restore``)."""

    def restore(
        self,
        tables: TableReader,
        request: RestoreRequest,
        journal: RestoreJournal,
        progress: RestoreProgress | None = None,
    ) -> RestoreReport:
        """Restore the version's tables as a new project, or finish the journal's one."""
        self.forget_shared()  # source ids map to this restore's project only
        return restore_keyed(self, tables, request, _SharingJournal(journal, self), progress)

    def restore_cut(self, source: Mapping[str, Any], key: str) -> str:
        """Any item may start a partition, but in a multiview project the views of a dataset
        share their objects: a partition starts at the dataset of ``key`` (item keys are
        ``<dataset key>#<id>``, and ``<dataset key>#`` sorts before them and after the items
        of every dataset before it)."""
        if is_multiview(dict(source)):
            return key[: key.index("#") + 1] if "#" in key else key
        return key

    def begin_restore(
        self, tables: TableReader, request: RestoreRequest, journal: RestoreJournal
    ) -> RestoreReport:
        """Create the project and its datasets (or find them); the report of that much."""
        self.forget_shared()  # source ids map to this restore's project only
        return begin_keyed(self, tables, request, _SharingJournal(journal, self))

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
        """Restore one partition's items and what hangs off them; its report."""
        return restore_keyed_partition(
            self,
            tables,
            request,
            _SharingJournal(journal, self),
            begun=begun,
            partition=partition,
            progress=progress,
        )

    def restore_turn(self) -> AbstractContextManager[bool]:
        """A slot of ``concurrency`` for a run's items: partitions restored side by side
        restore no more at once than one restore sends requests, and hold no more in memory
        (each batch is one request at a time, so more at once would only wait)."""
        return self._write_slots

    def content_tables(self, source: Row) -> Sequence[ChildTable]:
        """What follows each batch of items: figures and tags (images), or objects, figures
        and tags (videos, volumes)."""
        return VIDEO_LAYOUT if source.get("kind") in ("videos", "volumes") else IMAGE_LAYOUT

    def add_items(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        """Images, videos or volumes (by the rows' kind), by hash or link; key → new id."""
        if rows and rows[0].get("kind") == "video":
            return self.add_videos(project_id, dataset_id, rows)
        if rows and rows[0].get("kind") == "volume":
            return self.add_volumes(project_id, dataset_id, rows)
        return super().add_items(project_id, dataset_id, rows)

    def add_rows(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """Create the rows of one child table of a video or volume batch; key → new id."""
        if table == "objects":
            return self.add_objects(project_id, dataset_id, rows, owners)
        if table == "figures":
            return self.add_figures(project_id, rows, owners)
        if table == "video_tags":
            return self.add_video_tags(project_id, rows, owners)
        raise ConfigurationError(f"supervisely: no restore for rows of table {table!r}")


#: A batch step's record name: ``steps/[<partition>/]b<batch>-<n>-<table>.json``.
_STEP = re.compile(r"steps/(?:p\d+/)?b\d+-\d+-(?P<table>\w+)\.json$")


class _SharingJournal:
    """The restore's journal, telling the target each finished objects or tags step (read on
    resume or just recorded), so multiview objects stay shared across batches and runs."""

    def __init__(self, inner: RestoreJournal, target: SuperviselyRestore) -> None:
        self._inner = inner
        self._target = target

    @property
    def prefix(self) -> str:
        return self._inner.prefix

    def _learn(self, name: str, value: Mapping[str, Any] | None) -> None:
        step = _STEP.search(name)
        if step is not None and value is not None:
            ids = value.get("ids")
            if isinstance(ids, dict):
                self._target.remember_restored(step["table"], ids)

    def read(self, name: str) -> dict[str, Any] | None:
        value = self._inner.read(name)
        self._learn(name, value)
        return value

    def has(self, name: str) -> bool:
        return self._inner.has(name)

    def load_names(self, under: str = "steps/") -> None:
        self._inner.load_names(under)

    def record(self, name: str, value: dict[str, Any]) -> None:
        self._inner.record(name, value)
        self._learn(name, value)
