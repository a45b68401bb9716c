"""Capture: catching up with a project that moves, and waiting for a quiet one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from labelvault.capture import capture_until_current, project_ref, wait_for_quiet
from labelvault.catalog import Catalog
from labelvault.platforms.base import ProjectInfo, TablePage
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.storage import MemoryStore
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project


class EditsWhileRead:
    """A Supervisely platform whose project gets a new box while the first capture reads it."""

    def __init__(
        self, fake: FakeSupervisely, project_id: int, edits: int = 1, at_page: int = 2
    ) -> None:
        self.fake = fake
        self.at_page = at_page
        self.project_id = project_id
        self.edits_left = edits
        self.inner = SuperviselyPlatform("http://sly.test", fake.token, transport=fake.transport())
        self.name = self.inner.name

    @property
    def instance(self) -> str:
        return self.inner.instance

    def get_project(self, project_id: str) -> ProjectInfo:
        return self.inner.get_project(project_id)

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        for number, page in enumerate(self.inner.iter_pages(project_id)):
            if number == self.at_page and self.edits_left:
                self.edits_left -= 1
                self.edit()
            yield page

    def edit(self) -> None:
        meta = self.fake.metas[self.project_id]
        [box] = [c for c in meta["classes"] if c["shape"] == "rectangle"]
        image = next(i for i in self.fake.images.values() if i["projectId"] == self.project_id)
        geometry = {"points": {"exterior": [[1.5, 2.5], [30.25, 40.75]], "interior": []}}
        self.fake.create_figure(image["id"], box["id"], "rectangle", geometry)
        self.fake.touch_project(self.project_id)

    def close(self) -> None:
        self.inner.close()


class TouchesWhileRead(EditsWhileRead):
    """Moves the project's updated_at while a capture reads it, without changing content."""

    def edit_now(self) -> None:
        EditsWhileRead.edit(self)

    def edit(self) -> None:
        self.fake.touch_project(self.project_id)


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(seed=3)


def test_a_project_that_moved_during_capture_is_captured_again(fake: FakeSupervisely) -> None:
    rich = generate_rich_project(fake, images_per_dataset=2)
    platform = EditsWhileRead(fake, rich.project_id)
    store = MemoryStore("capture-rounds")
    catalog = Catalog(store)
    result = capture_until_current(platform, str(rich.project_id), store=store, catalog=catalog)
    assert result.rounds == 2
    assert [v.number for v in catalog.list(project_ref(platform, str(rich.project_id)))] == [1, 2]
    boxes_now = sum(
        1
        for f in fake.figures.values()
        if fake.images[f["entityId"]]["projectId"] == rich.project_id
    )
    assert result.rows["annotations"] == boxes_now
    assert result.created is True
    assert result.versions_created == (1, 2)


def test_a_version_made_before_a_round_that_found_no_change_is_reported(
    fake: FakeSupervisely,
) -> None:
    """Round 1 commits version 2; the project's updated_at moves while it is read but its
    content does not, so the catch-up round finds the same content. The result still says
    version 2 was created."""
    rich = generate_rich_project(fake, images_per_dataset=2)
    store = MemoryStore("capture-created-early")
    catalog = Catalog(store)
    plain = SuperviselyPlatform("http://sly.test", fake.token, transport=fake.transport())
    first = capture_until_current(plain, str(rich.project_id), store=store, catalog=catalog)
    assert (first.created, first.version.number) == (True, 1)

    platform = TouchesWhileRead(fake, rich.project_id)
    platform.edit_now()
    result = capture_until_current(platform, str(rich.project_id), store=store, catalog=catalog)
    assert result.rounds == 2
    assert [v.number for v in catalog.list(project_ref(platform, str(rich.project_id)))] == [1, 2]
    assert result.created is True
    assert result.version.number == 2
    assert result.versions_created == (2,)
    assert result.reason.startswith("created version 2")
    summary = result.summary()
    assert (summary["created"], summary["version"], summary["versions_created"]) == (True, 2, [2])


def test_rounds_are_bounded(fake: FakeSupervisely) -> None:
    rich = generate_rich_project(fake, images_per_dataset=2)
    platform = EditsWhileRead(fake, rich.project_id, edits=5)
    store = MemoryStore("capture-bounded")
    result = capture_until_current(
        platform, str(rich.project_id), store=store, catalog=Catalog(store), max_rounds=2
    )
    assert result.rounds == 2
    with pytest.raises(ValueError, match="max_rounds"):
        capture_until_current(
            platform, str(rich.project_id), store=store, catalog=Catalog(store), max_rounds=0
        )


class Moving:
    """A project whose updated_at moves on the first ``moves`` looks, then rests."""

    name = "moving"
    instance = "moving:1"

    def __init__(self, moves: int) -> None:
        self.moves = moves
        self.looks = 0
        self.base = ProjectInfo("moving", "moving:1", "1", "p", "images")

    def get_project(self, project_id: str) -> ProjectInfo:
        self.looks += 1
        step = min(self.looks, self.moves + 1)
        return replace(self.base, updated_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(step))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_quiet_waits_for_the_last_edit_plus_the_quiet_time() -> None:
    project, clock = Moving(moves=4), Clock()
    info = wait_for_quiet(
        project,  # type: ignore[arg-type]
        "1",
        quiet_seconds=3,
        max_wait_seconds=60,
        clock=clock,
        sleep=clock.sleep,
    )
    # Moves seen on looks 2..5 (t = 1..4 s); quiet from t = 4 s, so done at t = 7 s.
    assert clock.now == 7
    assert info.updated_at == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(5)


def test_wait_for_quiet_gives_up_after_max_wait() -> None:
    project, clock = Moving(moves=1000), Clock()
    wait_for_quiet(
        project,  # type: ignore[arg-type]
        "1",
        quiet_seconds=3,
        max_wait_seconds=10,
        clock=clock,
        sleep=clock.sleep,
    )
    assert clock.now == 10
