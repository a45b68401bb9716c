"""A finished restore's report, as kept in its journal (``report.json``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from labelvault.models import RESTORE_COUNTS, ProjectInfo, RestoreReport
from labelvault.platforms.streams import issues, issues_json

__all__ = ["report_from_json", "report_to_json"]

#: Count keys of reports written before every platform reported per table.
_OLD_COUNT_KEYS = {"users_created": "users", "tasks": "items"}


def report_to_json(report: RestoreReport) -> dict[str, Any]:
    """Plain JSON values of a report."""
    project = asdict(report.project)
    updated = report.project.updated_at
    project["updated_at"] = updated.isoformat() if updated else None
    return {
        "project": project,
        "journal": report.journal,
        "created": report.created,
        "skipped": issues_json(report.skipped),
        "failures": issues_json(report.failures),
        "filtered_out": report.filtered_out,
        "warnings": list(report.warnings),
    }


def _counts(values: dict[str, int]) -> dict[str, int]:
    counts = dict.fromkeys(RESTORE_COUNTS, 0)
    for name, value in values.items():
        table = _OLD_COUNT_KEYS.get(name, name)
        if table in counts or value:  # tables of one modality (objects, figures …) too
            counts[table] = counts.get(table, 0) + int(value)
    return counts


def report_from_json(data: dict[str, Any]) -> RestoreReport:
    """The report :func:`report_to_json` wrote (``resumed``: it is read back, not redone)."""
    project = dict(data["project"])
    if project.get("updated_at"):
        project["updated_at"] = datetime.fromisoformat(project["updated_at"])
    return RestoreReport(
        project=ProjectInfo(**project),
        journal=data["journal"],
        created=_counts(data.get("created", {})),
        skipped=tuple(issues(data.get("skipped", []))),
        failures=tuple(issues(data.get("failures", []))),
        resumed=True,
        filtered_out=_counts(data.get("filtered_out", {})),
        warnings=tuple(data.get("warnings", [])),
    )
