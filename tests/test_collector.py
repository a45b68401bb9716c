"""Captures and restores run with fewer cyclic collections, and leave the process as it was."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from labelvault.capture import project_ref
from labelvault.collector import YOUNG_THRESHOLD, fewer_collections
from labelvault.platforms.base import TablePage
from labelvault.storage import MemoryStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project


@pytest.fixture
def default_threshold() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_the_threshold_is_raised_inside_and_put_back_after(
    default_threshold: tuple[int, int, int],
) -> None:
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold() == default_threshold


def test_the_last_block_to_leave_puts_the_threshold_back(
    default_threshold: tuple[int, int, int],
) -> None:
    entered, leave = threading.Barrier(2), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def other() -> None:
        with fewer_collections():
            entered.wait()
            leave.wait()

    thread = threading.Thread(target=other)
    thread.start()
    with fewer_collections():
        entered.wait()
    seen.append(gc.get_threshold())  # the other block still runs
    leave.set()
    thread.join()
    assert seen == [(YOUNG_THRESHOLD, 10, 10)]
    assert gc.get_threshold() == default_threshold


def test_a_higher_or_zero_threshold_is_kept() -> None:
    before = gc.get_threshold()
    try:
        for young in (0, YOUNG_THRESHOLD * 3):
            gc.set_threshold(young, 10, 10)
            with fewer_collections():
                assert gc.get_threshold() == (young, 10, 10)
            assert gc.get_threshold() == (young, 10, 10)
    finally:
        gc.set_threshold(*before)


class Watched:
    """A platform that notes the collector's threshold whenever capture or restore calls it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        for page in self.inner.iter_pages(project_id):
            self.seen.append(gc.get_threshold()[0])
            yield page

    def restore(self, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(gc.get_threshold()[0])
        return self.inner.restore(*args, **kwargs)


def test_capture_and_restore_run_with_fewer_collections(
    default_threshold: tuple[int, int, int],
) -> None:
    fake = FakeSupervisely(seed=5)
    rich = generate_rich_project(fake, images_per_dataset=2)
    platform = Watched(fake.platform())
    with Vault(MemoryStore()) as vault:
        vault.capture(platform, str(rich.project_id))
        captured = list(platform.seen)
        platform.seen.clear()
        vault.restore(platform, project_ref(platform, str(rich.project_id)), None, restore_id="r1")
    assert captured
    assert set(captured) == {YOUNG_THRESHOLD}
    assert platform.seen == [YOUNG_THRESHOLD]
    assert gc.get_threshold() == default_threshold
