"""Restore a version as a new project: one engine for every platform, journaled, resumable.

- :mod:`~labelvault.restore.engine`: :func:`restore_version`, the one entry;
- :mod:`~labelvault.restore.journal`: the journal of finished steps on the object store;
- :mod:`~labelvault.restore.selection`: partial restores by datasets and classes;
- :mod:`~labelvault.restore.report`: the finished report, as kept in the journal.

What a platform does to restore (and what it records to resume) is its own module:
``labelvault.platforms.<name>.restore``.
"""

from __future__ import annotations

from labelvault.models import RestoreIssue, RestoreOptions, RestoreReport, VersionOrigin
from labelvault.restore.engine import restore_version
from labelvault.restore.journal import StoreJournal, journal_prefix

__all__ = [
    "RestoreIssue",
    "RestoreOptions",
    "RestoreReport",
    "StoreJournal",
    "VersionOrigin",
    "journal_prefix",
    "restore_version",
]
