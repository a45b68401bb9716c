"""The restore engine: one entry for every platform, journaled and resumable.

:func:`restore_version` checks the options against the version (a partial restore's datasets
and classes), claims the journal for this restore (a journal written by another restore, of
another version or filters is refused; another target only while the journal created no
project yet), returns the stored report of a restore that already finished, and otherwise
hands the version's tables to the platform's
:meth:`~labelvault.platforms.base.Platform.restore`, which records every finished step in the
journal. Its report is stored last, so asking again returns it; then the step records are
removed (see :mod:`labelvault.restore.journal`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelvault.errors import ConfigurationError
from labelvault.models import RestoreOptions, RestoreReport, VersionOrigin
from labelvault.platforms.base import Platform, RestoreProgress, RestoreRequest, TableReader
from labelvault.platforms.streams import source_row
from labelvault.restore.journal import StoreJournal
from labelvault.restore.report import report_from_json, report_to_json
from labelvault.restore.selection import select
from labelvault.storage.base import ObjectStore

__all__ = ["restore_version"]

_JOURNAL_FORMAT = 2
#: What makes two runs the same restore; a journal of another restore is refused.
_IDENTITY = ("platform", "instance", "source_project_id", "version_number", "filters", "target")
#: How the target options are spelled on the command line.
_OPTION_NAMES = {"workspace_id": "--workspace", "project_name": "--name"}


def _identity(
    target: Platform, origin: VersionOrigin, options: RestoreOptions, filters: Any
) -> dict[str, Any]:
    return {
        "format": _JOURNAL_FORMAT,
        "platform": target.name,
        "instance": target.instance,
        "source_project_id": origin.source_project_id,
        "version_number": origin.version_number,
        "version_id": origin.version_id,
        "filters": filters,
        "target": {
            "workspace_id": options.workspace_id,
            "project_name": options.project_name,
        },
    }


def _check_identity(
    book: StoreJournal, stored: Mapping[str, Any], expected: Mapping[str, Any]
) -> bool:
    """Refuse a journal written by another restore; name every difference. A target option
    left unset on a resume takes the journal's value. New target options are taken while the
    journal has created no project yet (returns True: the caller re-claims the journal)."""
    prefix = book.prefix
    differ = [
        f"{name} {stored[name]!r}, not {expected[name]!r}"
        for name in _IDENTITY
        if name in stored and name != "target" and stored[name] != expected[name]
    ]
    if differ:
        raise ConfigurationError(
            f"restore journal {prefix} belongs to another restore ({'; '.join(differ)}); "
            "run it again with the options it was started with, or start a new restore "
            "(another restore id)"
        )
    journaled = stored.get("target") or {}
    retarget = [
        f"{_OPTION_NAMES.get(name, name)} "
        f"{'unset' if journaled.get(name) is None else repr(journaled.get(name))}, not {value!r}"
        for name, value in expected["target"].items()
        if value is not None and journaled.get(name) != value
    ]
    if not retarget:
        return False
    made = book.read("project.json")
    if made is None:
        return True
    raise ConfigurationError(
        f"restore journal {prefix} already created project {made.get('project_id')} with "
        f"other target options ({'; '.join(retarget)}); a resume cannot move it: run it again "
        "with the options it was started with, or start a new restore (another restore id)"
    )


def restore_version(
    target: Platform,
    read_table: TableReader,
    *,
    store: ObjectStore,
    journal: str,
    origin: VersionOrigin,
    options: RestoreOptions,
    progress: RestoreProgress | None = None,
) -> RestoreReport:
    """Restore a version's tables into a new project on ``target``; see the module docstring.

    ``journal`` is the object-store prefix of this restore's journal (see
    :func:`~labelvault.restore.journal.journal_prefix`); calling again with the same journal
    resumes, or returns the report of a restore that already finished.

    Raises:
        RestoreError: the restore stopped; it names the created project and the progress.
        ConfigurationError: the journal belongs to another restore, a dataset or class to
            restore is not in the version, or the version is invalid.
    """
    given = [
        name.replace("_id", "").replace("_", " ")
        for name in target.restore_ignores
        if getattr(options, name) not in (None, False, ())
    ]
    if given:
        raise ConfigurationError(
            f"a {target.name} restore takes no {', '.join(given)}: it restores the whole "
            "version as one new project"
        )
    book = StoreJournal(store, journal)
    source = source_row(read_table)
    selection = select(read_table, source, options)
    expected = _identity(target, origin, options, selection.identity())
    claimed = book.read("restore.json")
    if claimed is None:
        book.record("restore.json", expected)
    elif _check_identity(book, claimed, expected):
        # Nothing was created under the old target (a workspace that did not exist, a name
        # that was taken): this run's target replaces it.
        book.forget("target.json", "restore.json")
        book.record("restore.json", expected)
    finished = book.read("report.json")
    if finished is not None:
        book.compact()  # a run killed between its report and its compaction
        return report_from_json(finished)
    request = RestoreRequest(origin=origin, options=options, selection=selection)
    report = target.restore(read_table, request, book, progress)
    book.record("report.json", report_to_json(report))
    book.compact()
    return report
