"""Supervisely video projects: capture, restore and the fake's video endpoints."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labelvault.errors import RestoreError
from labelvault.models import RestoreOptions, VersionOrigin
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.restore import restore_version
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.schema import OPTIONAL_TABLES, GeometryType
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.fakes.supervisely import (
    FakeSupervisely,
    FaultPlan,
    _round_geometry,
    capture_tables,
    fingerprint_multisets,
    generate_rich_project,
    keys_in_order,
    table_reader,
)
from tests.fakes.supervisely_video import (
    UNKNOWN_SHAPE,
    VIDEO_SHAPES,
    RichVideoProject,
    generate_rich_video_project,
)

Tables = dict[str, list[Any]]

#: Fields the server assigns (ids, timestamps, storage paths), left out when comparing projects.
SERVER_ASSIGNED = frozenset(
    {
        "id",
        "tagId",
        "entityId",
        "objectId",
        "classId",
        "datasetId",
        "projectId",
        "workspaceId",
        "teamId",
        "createdAt",
        "updatedAt",
        "createdBy",
        "pathOriginal",
        "processingPath",
    }
)


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=3)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichVideoProject:
    return generate_rich_video_project(fake)


def platform_for(fake: FakeSupervisely, **options: Any) -> SuperviselyPlatform:
    return fake.platform(batch_size=options.pop("batch_size", 2), list_page_size=3, **options)


def rows(tables: Tables, table: str) -> list[dict[str, Any]]:
    return [row for batch in tables.get(table, []) for row in batch.to_pylist()]


def manifest_of(tables: Tables) -> Manifest:
    writer = SnapshotWriter(
        MemoryStore(),
        "supervisely/sly.test/1",
        source={"platform": "supervisely", "instance": "sly.test:80", "project_id": "1"},
    )
    for table, batches in tables.items():
        for batch in batches:
            writer.write(table, batch)
    return writer.finish()


def restore(
    platform: SuperviselyPlatform,
    source: Tables,
    name: str,
    *,
    journal: str | None = None,
    store: MemoryStore | None = None,
    parallel: int = 1,
    **options: Any,
) -> int:
    report = restore_version(
        platform,
        table_reader(source),
        store=store or MemoryStore(),
        journal=journal or f"supervisely/restores/{name}",
        origin=VersionOrigin(source_project_id="1", version_number=1),
        options=RestoreOptions(batch_size=2, project_name=name, **options),
        parallel=parallel,
    )
    assert report.failures == ()
    return int(report.project.project_id)


def _plain(value: Any) -> Any:
    return {k: v for k, v in value.items() if k not in SERVER_ASSIGNED}


def project_state(fake: FakeSupervisely, project_id: int) -> dict[str, Any]:
    """What the fake's API answers for a video project, without server-assigned fields:
    datasets by path, videos by dataset path and name with their annotation (objects in id
    order with their figures and tags)."""
    with fake.lock:
        datasets = {d["id"]: d for d in fake.datasets.values() if d["projectId"] == project_id}

    def path(dataset_id: int) -> str:
        parent = datasets[dataset_id]["parentId"]
        name = datasets[dataset_id]["name"]
        return name if parent is None else f"{path(parent)}/{name}"

    state: dict[str, Any] = {"datasets": {}, "videos": {}}
    for dataset_id, dataset in datasets.items():
        state["datasets"][path(dataset_id)] = (dataset["description"], dataset["customData"])
        listed = fake.handle(
            "videos.list",
            json.dumps({"datasetId": dataset_id, "per_page": 1000}).encode(),
            {"x-api-key": fake.token},
        )
        videos = json.loads(listed.body)["entities"]
        ids = [v["id"] for v in videos]
        answer = fake.handle(
            "videos.annotations.bulk.info",
            json.dumps({"videoIds": ids, "integerCoords": False}).encode(),
            {"x-api-key": fake.token},
        )
        for video, annotation in zip(videos, json.loads(answer.body), strict=True):
            objects = []
            figures_of: dict[int, list[Any]] = {}
            for frame in annotation["frames"]:
                for figure in frame["figures"]:
                    figures_of.setdefault(figure["objectId"], []).append(
                        (frame["index"], _plain(figure))
                    )
            for obj in annotation["objects"]:
                objects.append(
                    {
                        **_plain({k: v for k, v in obj.items() if k != "tags"}),
                        "tags": [_plain(t) for t in obj["tags"]],
                        "figures": figures_of.pop(obj["id"], []),
                    }
                )
            assert figures_of == {}  # every figure belongs to an object of its video
            video_plain = _plain(video)
            video_plain["tags"] = [_plain(t) for t in video["tags"]]
            state["videos"][(path(dataset_id), video["name"])] = {
                "video": video_plain,
                "annotation": {
                    **_plain({k: v for k, v in annotation.items() if k not in ("objects",)}),
                    "tags": [_plain(t) for t in annotation["tags"]],
                    "frames": None,
                    "videoId": None,
                },
                "objects": objects,
            }
    return state


# --- capture -----------------------------------------------------------------------------------


def test_capture_of_a_video_project(fake: FakeSupervisely, rich: RichVideoProject) -> None:
    tables = capture_tables(platform_for(fake), str(rich.project_id))
    assert set(tables) == {
        "project",
        "datasets",
        "items",
        "videos",
        "objects",
        "figures",
        "video_tags",
        "users",
    }
    items = rows(tables, "items")
    assert len(items) == len(rich.video_ids)
    assert {i["kind"] for i in items} == {"video"}
    assert sum(1 for i in items if i["link"]) == len(rich.link_videos)
    videos = {row["key"]: row for row in rows(tables, "videos")}
    for item in items:
        stored = fake.video.videos[json.loads(item["raw"])["id"]]
        info = videos[item["key"]]
        assert info["frames_count"] == stored["fileMeta"]["framesCount"]
        assert info["fps"] == pytest.approx(
            stored["fileMeta"]["framesCount"] / stored["fileMeta"]["duration"]
        )
        assert json.loads(info["custom_data"]) == stored["customData"]
    figures = rows(tables, "figures")
    assert len(figures) == len(fake.video.figures)
    for row in figures:  # exact geometry, the stored frame, raw type kept for unknown types
        stored = fake.video.figures[json.loads(row["raw"])["id"]]
        assert json.loads(row["geometry"]) == stored["geometry"]
        assert row["frame_index"] == stored["meta"]["frame"]
        raw_type = json.loads(row["raw"])["geometryType"]
        assert raw_type == stored["geometryType"]
        assert row["geometry_type"] == GeometryType(raw_type).value
    types = {json.loads(r["raw"])["geometryType"] for r in figures}
    assert types == {*VIDEO_SHAPES, UNKNOWN_SHAPE}
    assert {
        r["geometry_type"] for r in figures if json.loads(r["raw"])["geometryType"] == UNKNOWN_SHAPE
    } == {"unknown"}
    geometries = [json.loads(r["geometry"]) for r in figures]
    sub_pixel = [g for g in geometries if g != _round_geometry(g)]
    assert len(sub_pixel) > len(figures) // 2  # not rounded on the way
    tags = rows(tables, "video_tags")
    assert len(tags) == sum(len(t) for t in fake.video.video_tags.values()) + sum(
        len(t) for t in fake.video.object_tags.values()
    )
    ranges = {(t["frame_from"], t["frame_to"]) for t in tags}
    assert (0, 0) in ranges
    assert (None, None) in ranges
    lasts = {fake.video.videos[v]["fileMeta"]["framesCount"] - 1 for v in fake.video.video_tags}
    assert any((last, last) in ranges for last in lasts)
    assert {t["owner_type"] for t in tags} == {"item", "object"}
    for table in ("items", "objects", "figures", "video_tags"):  # key order, and unique
        keys = keys_in_order(tables, table)
        assert keys == sorted(keys)
        assert len(set(keys)) == len(keys)
    assert "videos.annotations.bulk.info" in fake.methods_called()
    bodies = [body for method, body in fake.calls if method == "videos.annotations.bulk.info"]
    assert all(body["integerCoords"] is False and len(body["videoIds"]) <= 2 for body in bodies)


def test_listing_modes_and_concurrency_give_the_same_capture(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    pid = str(rich.project_id)
    base = capture_tables(platform_for(fake), pid)
    paged = capture_tables(platform_for(fake, image_listing="page", concurrency=1), pid)
    wide = capture_tables(platform_for(fake, batch_size=100, concurrency=8), pid)
    for other in (paged, wide):
        assert fingerprint_multisets(other) == fingerprint_multisets(base)
        for table in base:
            assert keys_in_order(other, table) == keys_in_order(base, table)


def test_a_moved_figure_changes_only_its_own_fingerprint(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    platform = platform_for(fake)
    before = fingerprint_multisets(capture_tables(platform, str(rich.project_id)))
    figure = next(iter(fake.video.figures.values()))
    figure["geometry"] = json.loads(json.dumps(figure["geometry"]).replace("1", "2", 1))
    after = fingerprint_multisets(capture_tables(platform, str(rich.project_id)))
    changed = {t for t in before if before[t] != after[t]}
    assert changed == {"figures"}


# --- restore -----------------------------------------------------------------------------------


def test_round_trip_gives_the_same_content_and_project(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    restored_id = restore(platform, source, "restored")
    again = capture_tables(platform, str(restored_id))
    assert manifest_of(again).content_hash == manifest_of(source).content_hash
    assert fingerprint_multisets(again) == fingerprint_multisets(source)
    assert project_state(fake, restored_id) == project_state(fake, rich.project_id)
    assert fake.projects[restored_id]["type"] == "videos"
    assert fake.projects[restored_id]["customData"] == fake.projects[rich.project_id]["customData"]
    # within the reference's limits, and figures carry their frame only in meta.frame
    for method, body in fake.calls:
        if method == "videos.bulk.add":
            assert len(body["videos"]) <= 50
        if method == "figures.bulk.add":
            assert len(body["figures"]) <= 100
            assert "datasetId" not in body
            assert all("frameIndex" not in f and "frame" in f["meta"] for f in body["figures"])


def test_round_trip_under_ten_percent_faults(fake: FakeSupervisely, rich: RichVideoProject) -> None:
    platform = platform_for(fake)
    clean_source = capture_tables(platform, str(rich.project_id))
    clean = fingerprint_multisets(clean_source)
    expected = project_state(fake, rich.project_id)
    ambiguous = 0
    for run in range(6):
        fake.faults = FaultPlan(rate=0.1, seed=run, retry_after="1", landed=0.5)
        fake.fault_log.clear()
        source = capture_tables(platform, str(rich.project_id))
        restored_id = restore(platform, source, f"faulty {run}")
        again = capture_tables(platform, str(restored_id))
        ambiguous += sum(1 for _, kind in fake.fault_log if kind.endswith("landed"))
        assert fake.fault_log, run
        fake.faults = FaultPlan()
        assert fingerprint_multisets(source) == clean, run
        assert fingerprint_multisets(again) == clean, run
        assert manifest_of(again).content_hash == manifest_of(clean_source).content_hash, run
        assert project_state(fake, restored_id) == expected, run
    assert ambiguous > 0  # some writes landed although their answer was lost


def test_an_interrupted_restore_resumes(fake: FakeSupervisely, rich: RichVideoProject) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    store = MemoryStore()
    fake.fail_next("annotation-objects.tags.bulk.add", 400, times=1)
    with pytest.raises(RestoreError, match="resume"):
        restore(platform, source, "resumed", journal="j/resumed", store=store)
    restored_id = restore(platform, source, "resumed", journal="j/resumed", store=store)
    assert sum(1 for p in fake.projects.values() if p["name"] == "resumed") == 1
    assert project_state(fake, restored_id) == project_state(fake, rich.project_id)
    again = restore_version(  # finished: the report is read back, with the video counts
        platform,
        table_reader(source),
        store=store,
        journal="j/resumed",
        origin=VersionOrigin(source_project_id="1", version_number=1),
        options=RestoreOptions(batch_size=2, project_name="resumed"),
    )
    assert again.created["figures"] == len(rows(source, "figures"))
    assert again.created["objects"] == len(rows(source, "objects"))
    assert again.created["video_tags"] == len(rows(source, "video_tags"))


def test_partial_restore_by_dataset_and_class(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    wanted = "cls point ✓"
    restored_id = restore(platform, source, "part", datasets=("clips",), classes=(wanted,))
    again = capture_tables(platform, str(restored_id))
    clips = next(r["key"] for r in rows(source, "datasets") if r["path"] == "clips")

    def kept(table: str) -> list[dict[str, Any]]:
        return [
            r
            for r in rows(source, table)
            if r["key"].startswith(clips) and r.get("class_name", wanted) == wanted
        ]

    assert {r["path"] for r in rows(again, "datasets")} == {"clips", "clips/night 🌙"}
    assert len(rows(again, "items")) == len(kept("items")) > 0
    assert {r["class_name"] for r in rows(again, "objects")} == {wanted}
    assert len(rows(again, "objects")) == len(kept("objects")) > 0
    assert Counter(r["fingerprint"] for r in rows(again, "figures")) == Counter(
        r["fingerprint"] for r in kept("figures")
    )
    object_keys = {r["key"] for r in kept("objects")}
    expected_tags = [
        r for r in kept("video_tags") if r["owner_type"] == "item" or r["owner_key"] in object_keys
    ]
    assert Counter(r["fingerprint"] for r in rows(again, "video_tags")) == Counter(
        r["fingerprint"] for r in expected_tags
    )


def test_skip_missed_entities_leaves_out_a_lost_video(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    lost = fake.video.videos[rich.video_ids[0]]["hash"]
    fake.forget_hash(lost)
    report = restore_version(
        platform,
        table_reader(source),
        store=MemoryStore(),
        journal="supervisely/restores/skip",
        origin=VersionOrigin(source_project_id="1", version_number=1),
        options=RestoreOptions(batch_size=2, project_name="skip", skip_missed_entities=True),
    )
    skipped = Counter(issue.table for issue in report.skipped)
    assert skipped["items"] == 1
    lost_objects = sum(1 for o in fake.video.objects.values() if o["entityId"] == rich.video_ids[0])
    assert skipped["objects"] == lost_objects
    assert report.created["items"] == len(rich.video_ids) - 1


# --- the format stays additive -------------------------------------------------------------


def test_an_images_version_has_no_video_tables(fake: FakeSupervisely) -> None:
    images = generate_rich_project(fake, images_per_dataset=1)
    manifest = manifest_of(capture_tables(platform_for(fake), str(images.project_id)))
    assert not OPTIONAL_TABLES & set(manifest.tables)
    assert manifest.table("figures").rows == 0  # read as empty
    assert manifest.content_hash == Manifest.model_validate(manifest.model_dump()).content_hash


# --- the fake's video endpoints ----------------------------------------------------------------


def call(fake: FakeSupervisely, method: str, body: Any) -> tuple[int, Any]:
    reply = fake.handle(method, json.dumps(body).encode(), {"x-api-key": fake.token})
    return reply.status, json.loads(reply.body)


def test_fake_video_rules(fake: FakeSupervisely, rich: RichVideoProject) -> None:
    vid = rich.video_ids[0]
    video = fake.video.videos[vid]
    frames = video["fileMeta"]["framesCount"]
    status, _ = call(fake, "videos.annotations.bulk.info", {"videoIds": [vid] * 101})
    assert status == 400
    status, answer = call(
        fake, "videos.annotations.bulk.info", {"datasetId": video["datasetId"], "videoIds": [vid]}
    )
    assert status == 200
    assert answer[0]["videoName"] == video["name"]
    obj = next(o for o in fake.video.objects.values() if o["entityId"] == vid)
    before = fake.projects[video["projectId"]]["updatedAt"]
    for bad_frame in (-1, frames, None):
        figure = {"objectId": obj["id"], "geometryType": "point", "geometry": {}}
        figure["meta"] = {} if bad_frame is None else {"frame": bad_frame}
        status, _ = call(fake, "figures.bulk.add", {"entityId": vid, "figures": [figure]})
        assert status == 400
    status, _ = call(
        fake,
        "videos.tags.bulk.add",
        {"videoId": vid, "tags": [{"name": "flag", "frameRange": [0, frames]}]},
    )
    assert status == 400
    assert fake.projects[video["projectId"]]["updatedAt"] == before  # refused: nothing moved
    status, answer = call(
        fake,
        "videos.tags.bulk.add",
        {"videoId": vid, "tags": [{"name": "flag"}, {"name": "flag", "frameRange": [0, 0]}]},
    )
    assert status == 200
    assert len(answer) == 2
    assert answer[0]["id"] < answer[1]["id"]
    assert fake.projects[video["projectId"]]["updatedAt"] > before
    status, answer = call(
        fake,
        "videos.bulk.add",
        {
            "datasetId": video["datasetId"],
            "videos": [
                {"title": "b.mp4", "hash": video["hash"], "meta": {}},
                {"title": "a.mp4", "hash": video["hash"], "meta": {}},
            ],
        },
    )
    assert status == 200
    assert [v["name"] for v in answer] == ["b.mp4", "a.mp4"]
    status, _ = call(
        fake,
        "videos.bulk.add",
        {"datasetId": video["datasetId"], "videos": [{"title": "a.mp4", "hash": video["hash"]}]},
    )
    assert status == 400  # never renamed
    status, answer = call(fake, "tags.list", {"projectId": video["projectId"], "filter": []})
    keys = {"id", "projectId", "name", "settings", "color", "createdAt", "updatedAt"}
    assert status == 200
    assert all(keys <= set(t) for t in answer["entities"])
    status, answer = call(
        fake, "advanced.object_classes.list", {"projectId": video["projectId"], "filter": []}
    )
    keys = {"id", "name", "description", "shape", "color", "settings", "createdAt", "updatedAt"}
    assert status == 200
    assert all(keys <= set(c) for c in answer["entities"])
    status, _ = call(fake, "annotation-objects.bulk.remove", [obj["id"]])
    assert status == 200
    assert obj["id"] not in fake.video.objects
    assert all(f["objectId"] != obj["id"] for f in fake.video.figures.values())


def test_allow_failures_lists_the_figure_that_failed(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    # the first batch of figures fails, then the first of its figures sent one by one
    fake.fail_next("figures.bulk.add", 400, times=2)
    report = restore_version(
        platform,
        table_reader(source),
        store=MemoryStore(),
        journal="supervisely/restores/lenient",
        origin=VersionOrigin(source_project_id="1", version_number=1),
        options=RestoreOptions(batch_size=2, project_name="lenient", allow_failures=True),
    )
    assert [(f.table, f.key) for f in report.failures] == [
        ("figures", keys_in_order(source, "figures")[0])
    ]
    again = capture_tables(platform, str(report.project.project_id))
    assert len(rows(again, "figures")) == len(rows(source, "figures")) - 1
    assert fingerprint_multisets(again)["objects"] == fingerprint_multisets(source)["objects"]
    assert fingerprint_multisets(again)["video_tags"] == fingerprint_multisets(source)["video_tags"]


def readme_queries(*tables: str) -> list[str]:
    """The SQL of the README's ``labelvault query`` examples that read any of ``tables``."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    found = re.findall(r'labelvault query \d+ "([^"]+)"', readme)
    return [sql for sql in found if any(f"FROM {table}" in sql for table in tables)]


def test_the_readme_s_video_queries_count_what_the_server_holds(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    per_frame, per_class = readme_queries("figures", "objects")
    with Vault(MemoryStore()) as vault:
        ref = vault.capture(platform_for(fake), str(rich.project_id)).version.project
        frames = vault.query(ref, per_frame).to_pylist()
        per_class_rows = vault.query(ref, per_class).to_pylist()

    videos = fake.video.videos
    figures = [f for f in fake.video.figures.values() if f["projectId"] == rich.project_id]
    expected_frames = Counter((videos[f["entityId"]]["name"], f["meta"]["frame"]) for f in figures)
    assert {(r["video"], r["frame"]): r["figures"] for r in frames} == dict(expected_frames)
    assert [(r["video"], r["frame"]) for r in frames] == sorted(expected_frames)
    assert max(expected_frames.values()) > 1

    classes = {c["id"]: c["title"] for c in fake.metas[rich.project_id]["classes"]}
    objects = [o for o in fake.video.objects.values() if o["projectId"] == rich.project_id]
    expected_classes = Counter(classes[o["classId"]] for o in objects)
    assert {r["class_name"]: r["objects"] for r in per_class_rows} == dict(expected_classes)
    assert len(expected_classes) > 1


def test_an_annotation_description_is_kept_in_the_version_though_no_call_restores_it(
    fake: FakeSupervisely, rich: RichVideoProject
) -> None:
    platform = platform_for(fake)
    plain = capture_tables(platform, str(rich.project_id))
    described = rich.video_ids[1]
    fake.video.videos[described]["description"] = "Nachtschicht: 2 Annotatoren ✓"
    source = capture_tables(platform, str(rich.project_id))

    rows = [row for batch in source["videos"] for row in batch.to_pylist()]
    [row] = [r for r in rows if r["key"].endswith(f"#{described:012d}")]
    assert json.loads(row["raw"])["description"] == "Nachtschicht: 2 Annotatoren ✓"
    # only that video's row changed, and videos without one keep their fingerprints
    changed = {
        table: counts
        for table, counts in fingerprint_multisets(source).items()
        if counts != fingerprint_multisets(plain)[table]
    }
    assert list(changed) == ["videos"]
    before, after = Counter(fingerprint_multisets(plain)["videos"]), Counter(changed["videos"])
    assert sum((before - after).values()) == sum((after - before).values()) == 1

    # The platform has no call that sets it: the restored project has everything else.
    restored = capture_tables(platform, str(restore(platform, source, "described")))
    assert fingerprint_multisets(restored) == fingerprint_multisets(plain)
