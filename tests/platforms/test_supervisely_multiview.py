"""Supervisely multiview video projects: objects shared by the videos of a dataset survive a
capture and a restore (the reference's §4.7 and §14.1)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from labelvault.errors import RestoreError
from labelvault.storage.memory import MemoryStore
from tests.fakes.supervisely import (
    FakeSupervisely,
    FaultPlan,
    capture_tables,
    fingerprint_multisets,
)
from tests.fakes.supervisely_video import MultiviewVideoProject, generate_multiview_video_project
from tests.platforms.test_supervisely_video import (
    manifest_of,
    platform_for,
    project_state,
    restore,
    rows,
)


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=3)


@pytest.fixture
def multiview(fake: FakeSupervisely) -> MultiviewVideoProject:
    return generate_multiview_video_project(fake)


def multiview_state(fake: FakeSupervisely, project_id: int) -> dict[str, Any]:
    """:func:`project_state`, each video's objects in content order: in id order, a restore
    cannot keep objects shared across batches of videos where the source had them."""
    state = project_state(fake, project_id)
    for video in state["videos"].values():
        video["objects"].sort(key=lambda obj: json.dumps(obj, sort_keys=True))
    return state


def sharing(fake: FakeSupervisely, project_id: int) -> Counter[tuple[Any, ...]]:
    """Each object of the project as the annotations list it: its class and the (dataset,
    video) names of the views that list it; plus how many objects the server holds."""
    with fake.lock:
        datasets = {
            d["id"]: d["name"] for d in fake.datasets.values() if d["projectId"] == project_id
        }
        videos = [v for v in fake.video.videos.values() if v["datasetId"] in datasets]
        classes = {c["id"]: c["title"] for c in fake.metas[project_id]["classes"]}
        held = sum(1 for o in fake.video.objects.values() if o["projectId"] == project_id)
    views: dict[int, list[tuple[str, str]]] = {}
    cls: dict[int, str] = {}
    for video in videos:
        answer = fake.handle(
            "videos.annotations.bulk.info",
            json.dumps({"videoIds": [video["id"]], "integerCoords": False}).encode(),
            {"x-api-key": fake.token},
        )
        for obj in json.loads(answer.body)[0]["objects"]:
            views.setdefault(obj["id"], []).append((datasets[video["datasetId"]], video["name"]))
            cls[obj["id"]] = classes[obj["classId"]]
    shape = Counter((cls[i], *sorted(v)) for i, v in views.items())
    shape[("objects held by the server",)] = held
    return shape


def test_the_fake_serves_multiview_objects(
    fake: FakeSupervisely, multiview: MultiviewVideoProject
) -> None:
    assert fake.projects[multiview.project_id]["settings"]["labelingInterface"] == "multi_view"
    assert len(multiview.shared) == 6
    shape = sharing(fake, multiview.project_id)
    assert sorted(len(k) - 1 for k in shape if len(k) > 2) == [2, 2, 2, 2, 3, 3]
    for object_id in multiview.shared:
        assert fake.video.objects[object_id]["entityId"] is None
    # Without multi_view, an object needs its video.
    settings = fake.projects[multiview.project_id]["settings"]
    dataset = fake.video.videos[multiview.video_ids[0]]["datasetId"]
    class_id = fake.metas[multiview.project_id]["classes"][0]["id"]
    body = json.dumps({"datasetId": dataset, "annotationObjects": [{"classId": class_id}]})
    for interface, status in (("default", 400), ("multi_view", 200)):
        settings["labelingInterface"] = interface
        reply = fake.handle("annotation-objects.bulk.add", body.encode(), {"x-api-key": fake.token})
        assert reply.status == status


def test_capture_keeps_which_videos_share_an_object(
    fake: FakeSupervisely, multiview: MultiviewVideoProject
) -> None:
    tables = capture_tables(platform_for(fake), str(multiview.project_id))
    by_source: dict[int, list[str]] = {}
    for row in rows(tables, "objects"):
        by_source.setdefault(json.loads(row["raw"])["id"], []).append(row["item_key"])
    for object_id, videos in multiview.shared.items():
        assert len(by_source[object_id]) == len(videos)  # one row per view, one source id


@pytest.mark.parametrize("parallel", [1, 3])
def test_multiview_round_trip_keeps_objects_shared(
    fake: FakeSupervisely, multiview: MultiviewVideoProject, parallel: int
) -> None:
    """In partitions too: a partition starts at a dataset, so the views of one dataset (which
    share their objects) are restored together."""
    platform = platform_for(fake)
    source = capture_tables(platform, str(multiview.project_id))
    restored_id = restore(platform, source, "multiview restored", parallel=parallel)
    again = capture_tables(platform, str(restored_id))
    assert manifest_of(again).content_hash == manifest_of(source).content_hash
    assert fingerprint_multisets(again) == fingerprint_multisets(source)
    assert multiview_state(fake, restored_id) == multiview_state(fake, multiview.project_id)
    assert sharing(fake, restored_id) == sharing(fake, multiview.project_id)
    assert fake.projects[restored_id]["settings"]["labelingInterface"] == "multi_view"
    for method, body in fake.calls:  # objects made as the platform's multiview upload makes them
        if method == "annotation-objects.bulk.add" and body["datasetId"] in {
            d["id"] for d in fake.datasets.values() if d["projectId"] == restored_id
        }:
            assert all("entityId" not in spec for spec in body["annotationObjects"])


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_resumed_multiview_restore_keeps_objects_shared(
    fake: FakeSupervisely, multiview: MultiviewVideoProject, parallel: int
) -> None:
    """The run that resumes is a new process: it learns from the journal (its partition's
    part, in partitions) which shared objects the first run made."""
    source = capture_tables(platform_for(fake), str(multiview.project_id))
    store = MemoryStore()
    fake.fail_next("annotation-objects.tags.bulk.add", 400, times=1)
    with pytest.raises(RestoreError, match="resume"):
        restore(
            platform_for(fake), source, "resumed", journal="j/mv", store=store, parallel=parallel
        )
    restored_id = restore(
        platform_for(fake), source, "resumed", journal="j/mv", store=store, parallel=parallel
    )
    assert multiview_state(fake, restored_id) == multiview_state(fake, multiview.project_id)
    assert sharing(fake, restored_id) == sharing(fake, multiview.project_id)


def test_multiview_round_trip_under_ten_percent_faults(
    fake: FakeSupervisely, multiview: MultiviewVideoProject
) -> None:
    """Under faults the annotations read the same and objects stay shared. An object whose
    creation landed unanswered is not listed by any video (it has no figure yet), so the
    server may hold such an empty object beside the ones restored."""
    platform = platform_for(fake)
    clean = fingerprint_multisets(capture_tables(platform, str(multiview.project_id)))
    expected = multiview_state(fake, multiview.project_id)
    expected_sharing = sharing(fake, multiview.project_id)
    del expected_sharing[("objects held by the server",)]
    for run in range(4):
        fake.faults = FaultPlan(rate=0.1, seed=200 + run, retry_after="1", landed=0.5)
        fake.fault_log.clear()
        source = capture_tables(platform, str(multiview.project_id))
        restored_id = restore(platform, source, f"faulty multiview {run}")
        again = capture_tables(platform, str(restored_id))
        assert fake.fault_log, run
        fake.faults = FaultPlan()
        assert fingerprint_multisets(source) == clean, run
        assert fingerprint_multisets(again) == clean, run
        assert multiview_state(fake, restored_id) == expected, run
        shape = sharing(fake, restored_id)
        held = shape.pop(("objects held by the server",))
        assert shape == expected_sharing, run
        assert held >= sum(expected_sharing.values()), run
