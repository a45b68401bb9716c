"""Supervisely restore: the keyed order of :mod:`labelvault.platforms.keyed` over the writes of
:mod:`.writes`, with :mod:`.reconcile` finding what landed unjournaled."""

from __future__ import annotations

from labelvault.models import RestoreReport
from labelvault.platforms.base import RestoreJournal, RestoreProgress, RestoreRequest, TableReader
from labelvault.platforms.keyed import restore_keyed
from labelvault.platforms.supervisely.reconcile import SuperviselyReconcile

__all__ = ["SuperviselyRestore"]


class SuperviselyRestore(SuperviselyReconcile):
    """Restores a version as a new project (the platform protocol's ``restore``)."""

    def restore(
        self,
        tables: TableReader,
        request: RestoreRequest,
        journal: RestoreJournal,
        progress: RestoreProgress | None = None,
    ) -> RestoreReport:
        """Restore the version's tables as a new project, or finish the journal's one."""
        return restore_keyed(self, tables, request, journal, progress)
