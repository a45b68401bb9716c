"""Restore journals: new target options before anything was created, compaction after
success, and collecting the journals nobody resumed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from labelvault.errors import ConfigurationError, RestoreError
from labelvault.models import RestoreOptions, RestoreReport, VersionOrigin
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.restore import journal_prefix, restore_version
from labelvault.restore.journal import KEPT_AFTER_SUCCESS, collect_abandoned
from labelvault.storage.memory import MemoryStore
from tests.fakes.supervisely import (
    FakeSupervisely,
    RichProject,
    capture_tables,
    generate_rich_project,
    table_reader,
)

PROJECT = "supervisely/sly.test%3A80/1"
Tables = dict[str, list[Any]]


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=6)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichProject:
    return generate_rich_project(fake, images_per_dataset=2)


@pytest.fixture
def platform(fake: FakeSupervisely) -> SuperviselyPlatform:
    return fake.platform()


@pytest.fixture
def source(platform: SuperviselyPlatform, rich: RichProject) -> Tables:
    return capture_tables(platform, str(rich.project_id))


def restore(
    platform: SuperviselyPlatform,
    source: Tables,
    rich: RichProject,
    store: MemoryStore,
    restore_id: str = "r1",
    **options: Any,
) -> RestoreReport:
    return restore_version(
        platform,
        table_reader(source),
        store=store,
        journal=journal_prefix(PROJECT, restore_id),
        origin=VersionOrigin(source_project_id=str(rich.project_id), version_number=1),
        options=RestoreOptions(batch_size=4, **options),
    )


def names(store: MemoryStore, restore_id: str = "r1") -> list[str]:
    prefix = journal_prefix(PROJECT, restore_id) + "/"
    return sorted(info.key[len(prefix) :] for info in store.list(prefix))


def test_a_resume_may_change_the_target_before_a_project_exists(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    with pytest.raises(RestoreError, match="Nothing was restored"):
        restore(platform, source, rich, store, workspace_id="999999")
    assert "project.json" not in names(store)
    workspace = fake.add_workspace("Elsewhere")
    report = restore(platform, source, rich, store, workspace_id=str(workspace))
    assert report.project.workspace_id == str(workspace)
    assert fake.projects[int(report.project.project_id)]["workspaceId"] == workspace


def test_a_resume_cannot_move_a_created_project(
    fake: FakeSupervisely, platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    fake.fail_next("images.bulk.add", 400)
    with pytest.raises(RestoreError) as info:
        restore(platform, source, rich, store)
    created = info.value.created_project
    workspace = fake.add_workspace("Elsewhere")
    with pytest.raises(ConfigurationError) as refused:
        restore(platform, source, rich, store, workspace_id=str(workspace))
    message = refused.value.message
    assert f"already created project {created}" in message
    assert f"--workspace unset, not '{workspace}'" in message
    assert "start a new restore" in message
    report = restore(platform, source, rich, store)  # the options it was started with
    assert report.project.project_id == created


def test_a_finished_journal_keeps_only_what_resuming_needs(
    platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    first = restore(platform, source, rich, store)
    assert names(store) == sorted(KEPT_AFTER_SUCCESS)
    again = restore(platform, source, rich, store)
    assert again.project == first.project
    assert again.created == first.created


def test_collect_abandoned(
    platform: SuperviselyPlatform, rich: RichProject, source: Tables
) -> None:
    store = MemoryStore()
    restore(platform, source, rich, store, "done")
    # an old finished journal that still holds steps (written before journals were compacted)
    store.put(journal_prefix(PROJECT, "done") + "/steps/b00000000-1-items.json", b"{}")
    # an abandoned one: its project could not be created and nobody came back
    with pytest.raises(RestoreError):
        restore(platform, source, rich, store, "gone", workspace_id="999999")
    # another project's journal is not this project's business
    other = journal_prefix("supervisely/sly.test%3A80/2", "x") + "/restore.json"
    store.put(other, b"{}")
    later = datetime.now(UTC) + timedelta(days=30)

    planned = collect_abandoned(store, PROJECT, timedelta(days=7), now=later, apply=False)
    assert [(c.prefix.rsplit("/", 1)[1], c.finished, c.objects) for c in planned] == [
        ("done", True, 1),
        ("gone", False, len(names(store, "gone"))),
    ]
    assert names(store, "gone")  # a dry run removes nothing

    assert collect_abandoned(store, PROJECT, timedelta(days=60), now=later) == [planned[0]]
    assert names(store, "gone")  # younger than the cutoff: kept for a resume
    assert names(store, "done") == sorted(KEPT_AFTER_SUCCESS)

    removed = collect_abandoned(store, PROJECT, timedelta(days=7), now=later)
    assert [c.prefix for c in removed] == [planned[1].prefix]
    assert removed[0].bytes > 0
    assert names(store, "gone") == []
    assert names(store, "done") == sorted(KEPT_AFTER_SUCCESS)
    assert store.exists(other)

    with pytest.raises(ConfigurationError, match="negative"):
        collect_abandoned(store, PROJECT, timedelta(days=-1))
