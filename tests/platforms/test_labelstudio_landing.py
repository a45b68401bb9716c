"""Offline: how a Label Studio restore recognises what landed, and who owns a capture's
temporary views and exports."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest

from labelvault.errors import RequestRejected
from labelvault.platforms.labelstudio.exports import STALE_AFTER, Owner
from labelvault.platforms.labelstudio.reconcile import match_landed, task_content
from labelvault.platforms.labelstudio.rows import project_row, task_rows
from tests.platforms.test_labelstudio_offline import _task, _users


@dataclass
class _Sent:
    key: str
    content: str


def _sent(n: int, meta: dict[str, object] | None = None) -> _Sent:
    return _Sent(f"{n:012d}", task_content({"n": n, "f": -0.0}, meta))


def _landed(task_id: int, n: int, meta: dict[str, object] | None = None) -> dict[str, object]:
    return {"id": task_id, "data": {"n": n, "f": -0.0}, "meta": meta or {}}


def test_landed_tasks_match_the_head_of_the_batch_by_order_and_content() -> None:
    batch = [_sent(1), _sent(2), _sent(2), _sent(3)]  # a duplicate task is matched in order
    assert match_landed([], batch) == []
    assert match_landed([_landed(40, 1), _landed(41, 2)], batch) == [40, 41]
    assert match_landed([_landed(7, n) for n in (1, 2, 2, 3)], batch) == [7, 7, 7, 7]


@pytest.mark.parametrize(
    "landed",
    [
        [{"id": 5, "data": {"n": 2, "f": -0.0}, "meta": {}}],  # not the batch's first task
        [{"id": 5, "data": {"n": 1, "f": 0.0}, "meta": {}}],  # -0.0 is content
        [{"id": 5, "data": {"n": 1, "f": -0.0}, "meta": {"x": 1}}],  # so is meta
        [_landed(5, 1), _landed(6, 2), _landed(7, 3)],  # more than the batch
    ],
)
def test_a_task_the_restore_did_not_send_is_refused(landed: list[dict[str, object]]) -> None:
    with pytest.raises(RequestRejected, match="someone else added tasks"):
        match_landed(landed, [_sent(1), _sent(2)])


def test_owner_titles_round_trip_and_only_dead_or_old_owners_are_abandoned() -> None:
    me = Owner.current()
    assert Owner.of(me.title(" 1..5")) == me
    assert Owner.of("labelvault capture") is None
    assert Owner.of("my own view") is None
    now = time.time()
    assert not me.abandoned(me, now)
    # Another live process on this host (the parent of this one) is never abandoned.
    alive = Owner(me.host, os.getppid(), me.start)
    assert not alive.abandoned(me, now)
    dead = Owner(me.host, 2**22 + 12345, me.start)  # above any pid_max in use here
    assert dead.abandoned(me, now)
    elsewhere = Owner("other-host", os.getpid(), me.start)
    assert not elsewhere.abandoned(me, now)
    assert elsewhere.abandoned(me, now + STALE_AFTER + 1)


def test_raw_json_leaves_out_what_the_clock_derives() -> None:
    task = _task(3, 100, "2026-01-01T00:00:00Z")
    for prediction in task["predictions"]:
        prediction["created_ago"] = "3 minutes"
    task["annotations"][0]["created_ago"] = "1 hour"
    _, rows = task_rows(task, _users())
    task["predictions"][0]["created_ago"] = "4 minutes"
    task["annotations"][0]["created_ago"] = "2 hours"
    _, again = task_rows(task, _users())
    assert [r["raw"] for r in rows] == [r["raw"] for r in again]
    assert all("created_ago" not in r["raw"] for r in rows)


def test_project_fingerprint_leaves_out_title_and_description() -> None:
    project = {"id": 1, "title": "cats", "description": "d", "label_config": "<View/>"}
    renamed = {**project, "title": "cats, from ver. 3", "description": "other"}
    row, other = project_row(project), project_row(renamed)
    assert row["fingerprint"] == other["fingerprint"]
    assert (row["name"], row["description"]) == ("cats", "d")
    assert (
        project_row({**project, "label_config": "<View></View>"})["fingerprint"]
        != (row["fingerprint"])
    )
    assert project_row({**project, "color": "#fff"})["fingerprint"] != row["fingerprint"]
