"""50 restores and 50 captures under 10% injected faults, each finishing in one call.

Half of the 5xx, timeout and dropped-connection faults hit after the fake did the work, so a
restore meets writes that landed although their answer was lost; it must reconcile them and
send only the rest, and never create anything twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from labelvault.models import RestoreOptions, VersionOrigin
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.restore import restore_version
from labelvault.storage.memory import MemoryStore
from tests.fakes.supervisely import (
    FakeSupervisely,
    FaultPlan,
    RichProject,
    capture_tables,
    fingerprint_multisets,
    generate_rich_project,
    keys_in_order,
    table_reader,
)

RUNS = 50
Tables = dict[str, list[Any]]


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=5)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichProject:
    return generate_rich_project(fake, images_per_dataset=2)


def platform_for(fake: FakeSupervisely) -> SuperviselyPlatform:
    return fake.platform(batch_size=4, list_page_size=5)


def faults(seed: int) -> FaultPlan:
    return FaultPlan(rate=0.1, seed=seed, retry_after="1", landed=0.5)


def objects_of(fake: FakeSupervisely, project_id: int) -> Counter[str]:
    """What the fake holds for one project, counted."""
    with fake.lock:
        images = [i["id"] for i in fake.images.values() if i["projectId"] == project_id]
        figures = [f["id"] for f in fake.figures.values() if f["projectId"] == project_id]
        return Counter(
            {
                "datasets": sum(1 for d in fake.datasets.values() if d["projectId"] == project_id),
                "images": len(images),
                "figures": len(figures),
                "alpha geometries": sum(1 for f in figures if f in fake.alpha),
                "image tags": sum(len(fake.image_tags.get(i, [])) for i in images),
                "figure tags": sum(len(fake.figure_tags.get(f, [])) for f in figures),
                "projects named": sum(
                    1
                    for p in fake.projects.values()
                    if p["name"] == fake.projects[project_id]["name"]
                ),
            }
        )


def restore_as(platform: SuperviselyPlatform, source: Tables, rich: RichProject, name: str) -> int:
    report = restore_version(
        platform,
        table_reader(source),
        store=MemoryStore(),
        journal=f"supervisely/restores/{name}",
        origin=VersionOrigin(source_project_id=str(rich.project_id), version_number=1),
        options=RestoreOptions(batch_size=4, project_name=name),
    )
    assert report.failures == ()
    return int(report.project.project_id)


def test_restores_under_ten_percent_faults(fake: FakeSupervisely, rich: RichProject) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    clean_id = restore_as(platform, source, rich, "clean")
    clean = fingerprint_multisets(capture_tables(platform, str(clean_id)))
    clean_objects = objects_of(fake, clean_id)

    ambiguous = 0
    for run in range(RUNS):
        fake.faults = faults(run)
        fake.fault_log.clear()
        project_id = restore_as(platform, source, rich, f"run {run}")  # one call, no raise
        ambiguous += sum(1 for _, kind in fake.fault_log if kind.endswith("landed"))
        fake.faults = FaultPlan()
        assert objects_of(fake, project_id) == clean_objects, run  # nothing twice, nothing lost
        assert fingerprint_multisets(capture_tables(platform, str(project_id))) == clean, run
    # The runs met writes whose answer was lost after they landed, not only refusals.
    assert ambiguous >= RUNS


def test_captures_under_ten_percent_faults(fake: FakeSupervisely, rich: RichProject) -> None:
    platform = platform_for(fake)
    pid = str(rich.project_id)
    clean = capture_tables(platform, pid)
    injected = 0
    for run in range(RUNS):
        fake.faults = faults(1000 + run)
        fake.fault_log.clear()
        again = capture_tables(platform, pid)
        injected += len(fake.fault_log)
        assert set(again) == set(clean)
        for table in clean:
            assert keys_in_order(again, table) == keys_in_order(clean, table), (run, table)
        assert fingerprint_multisets(again) == fingerprint_multisets(clean), run
    assert injected >= 2 * RUNS
