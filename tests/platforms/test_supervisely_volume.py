"""Supervisely volume projects: capture, restore and the fake's volume endpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelvault.models import RestoreOptions, VersionOrigin
from labelvault.platforms.supervisely.volume import mask_bytes
from labelvault.restore import restore_version
from labelvault.storage.memory import MemoryStore
from tests.fakes.supervisely import (
    FakeSupervisely,
    FaultPlan,
    capture_tables,
    fingerprint_multisets,
    table_reader,
)
from tests.fakes.supervisely_video import RichVolumeProject, generate_rich_volume_project
from tests.platforms.test_supervisely_video import (
    SERVER_ASSIGNED,
    call,
    manifest_of,
    platform_for,
    restore,
    rows,
)


@pytest.fixture
def fake() -> FakeSupervisely:
    return FakeSupervisely(default_per_page=3)


@pytest.fixture
def rich(fake: FakeSupervisely) -> RichVolumeProject:
    return generate_rich_volume_project(fake)


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in SERVER_ASSIGNED}


def volume_state(fake: FakeSupervisely, project_id: int) -> dict[Any, Any]:
    """Every volume of the project as the fake's API answers it, by dataset name and volume
    name, without server-assigned fields; 3D masks with their bytes."""
    state: dict[Any, Any] = {}
    datasets = [d for d in fake.datasets.values() if d["projectId"] == project_id]
    for dataset in datasets:
        listed = fake.handle(
            "volumes.list",
            json.dumps({"datasetId": dataset["id"], "per_page": 100}).encode(),
            {"x-api-key": fake.token},
        )
        for volume in json.loads(listed.body)["entities"]:
            answer = fake.handle(
                "volumes.annotations.bulk.info",
                json.dumps({"volumeIds": [volume["id"]], "integerCoords": False}).encode(),
                {"x-api-key": fake.token},
            )
            annotation = json.loads(answer.body)[0]
            classes = {o["id"]: o["classTitle"] for o in annotation["objects"]}
            planes = {
                plane["name"]: [
                    (
                        s["index"],
                        [{**_plain(f), "class": classes[f["objectId"]]} for f in s["figures"]],
                    )
                    for s in plane["slices"]
                ]
                for plane in annotation["planes"]
            }
            spatial = [
                (
                    {**_plain(f), "class": classes[f["objectId"]]},
                    fake.video.masks.get(f["id"]),
                    fake.video.figures[f["id"]].get("customData"),  # figures.list has it
                )
                for f in annotation["spatialFigures"]
            ]
            state[dataset["name"], volume["name"]] = {
                "volume": {
                    **_plain(volume),
                    "tags": [_plain(t) for t in volume["tags"]],
                    "fullStorageUrl": None,
                },
                "tags": [_plain(t) for t in annotation["tags"]],
                "objects": [
                    {**_plain(o), "tags": [_plain(t) for t in o["tags"]]}
                    for o in annotation["objects"]
                ],
                "volumeMeta": annotation["volumeMeta"],
                "planes": planes,
                "spatial": spatial,
            }
    return state


def test_capture_of_a_volume_project(fake: FakeSupervisely, rich: RichVolumeProject) -> None:
    tables = capture_tables(platform_for(fake), str(rich.project_id))
    assert set(tables) == {
        "project",
        "datasets",
        "items",
        "objects",
        "figures",
        "video_tags",
        "users",
    }
    assert {r["kind"] for r in rows(tables, "items")} == {"volume"}
    figures = rows(tables, "figures")
    masks = [r for r in figures if r["geometry_type"] == "mask_3d"]
    assert sorted(json.loads(r["raw"])["id"] for r in masks) == sorted(rich.mask_ids)
    for row in masks:  # the bytes exactly as downloaded, and custom data from figures.list
        assert json.loads(row["raw"])["customData"] == {"threshold": 0.5, "note": "ü"}
        assert (
            mask_bytes(json.loads(row["geometry"]))
            == fake.video.masks[json.loads(row["raw"])["id"]]
        )
        assert row["frame_index"] is None
    meshes = [r for r in figures if r["geometry_type"] == "closed_surface_mesh"]
    assert sorted(json.loads(r["raw"])["id"] for r in meshes) == sorted(rich.mesh_ids)
    for row in meshes:  # the STL bytes exactly as downloaded
        geometry = json.loads(row["geometry"])
        assert geometry["format"] == "stl"
        assert mask_bytes(geometry) == fake.video.masks[json.loads(row["raw"])["id"]]
        assert row["frame_index"] is None
    assert [json.loads(r["raw"]).get("customData") for r in meshes].count({"mesh": 1}) == 2
    for row in figures:
        if row["geometry_type"] in ("mask_3d", "closed_surface_mesh"):
            continue
        stored = fake.video.figures[json.loads(row["raw"])["id"]]
        assert row["frame_index"] == stored["meta"]["sliceIndex"]
        assert json.loads(row["geometry"]) == stored["geometry"]
    planes = {json.loads(r["raw"])["planeName"] for r in figures}
    assert planes == {"sagittal", "coronal", "axial", "spatial"}
    downloads = [b for m, b in fake.calls if m == "figures.bulk.download.geometry"]
    assert sum(len(b["ids"]) for b in downloads) == len(rich.mask_ids) + len(rich.mesh_ids)


def test_volume_round_trip(fake: FakeSupervisely, rich: RichVolumeProject) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    restored_id = restore(platform, source, "volumes restored")
    again = capture_tables(platform, str(restored_id))
    assert fingerprint_multisets(again) == fingerprint_multisets(source)
    assert manifest_of(again).content_hash == manifest_of(source).content_hash
    assert volume_state(fake, restored_id) == volume_state(fake, rich.project_id)
    assert fake.projects[restored_id]["type"] == "volumes"
    uploads = [m for m, _ in fake.calls if m == "figures.bulk.upload.geometry"]
    assert len(uploads) == len(rich.mask_ids) + len(rich.mesh_ids)  # one request a figure
    restored_meshes = sorted(
        data
        for figure_id, data in fake.video.masks.items()
        if fake.video.figures[figure_id]["projectId"] == restored_id
        and fake.video.figures[figure_id]["geometryType"] == "closed_surface_mesh"
    )
    assert len(restored_meshes) == len(rich.mesh_ids) == 6  # every mesh's bytes, exactly
    assert restored_meshes == sorted(fake.video.masks[i] for i in rich.mesh_ids)


def test_volume_round_trip_under_ten_percent_faults(
    fake: FakeSupervisely, rich: RichVolumeProject
) -> None:
    platform = platform_for(fake)
    clean = fingerprint_multisets(capture_tables(platform, str(rich.project_id)))
    expected = volume_state(fake, rich.project_id)
    for run in range(4):
        fake.faults = FaultPlan(rate=0.1, seed=100 + run, retry_after="1", landed=0.5)
        fake.fault_log.clear()
        source = capture_tables(platform, str(rich.project_id))
        restored_id = restore(platform, source, f"faulty volumes {run}")
        again = capture_tables(platform, str(restored_id))
        assert fake.fault_log, run
        fake.faults = FaultPlan()
        assert fingerprint_multisets(source) == clean, run
        assert fingerprint_multisets(again) == clean, run
        assert volume_state(fake, restored_id) == expected, run


def test_volume_partial_restore_and_a_lost_volume(
    fake: FakeSupervisely, rich: RichVolumeProject
) -> None:
    platform = platform_for(fake)
    source = capture_tables(platform, str(rich.project_id))
    fake.forget_hash(fake.video.volumes[rich.volume_ids[0]]["hash"])
    report = restore_version(
        platform,
        table_reader(source),
        store=MemoryStore(),
        journal="supervisely/restores/volume-part",
        origin=VersionOrigin(source_project_id="1", version_number=1),
        options=RestoreOptions(
            batch_size=2,
            project_name="volume part",
            classes=("tumour 3D",),
            skip_missed_entities=True,
        ),
    )
    assert [issue.table for issue in report.skipped].count("items") == 1
    again = capture_tables(platform, str(report.project.project_id))
    assert {r["class_name"] for r in rows(again, "objects")} == {"tumour 3D"}
    kept = [r for r in rows(source, "figures") if r["class_name"] == "tumour 3D"]
    assert sorted(r["fingerprint"] for r in rows(again, "figures")) == sorted(
        r["fingerprint"]
        for r in kept[1:]  # the first volume's mask is gone with its volume
    )


def test_fake_mesh_rules(fake: FakeSupervisely, rich: RichVolumeProject) -> None:
    """A mesh is created empty: ``figures.bulk.add`` refuses its geometry, as the server
    does; its STL bytes come down as a part named by the figure id."""
    mesh = fake.video.figures[rich.mesh_ids[0]]
    spec = {"objectId": mesh["objectId"], "geometryType": "closed_surface_mesh", "meta": {}}
    count = len(fake.video.figures.data)
    status, answer = call(
        fake,
        "figures.bulk.add",
        {"entityId": mesh["entityId"], "figures": [{**spec, "geometry": {"mesh": "x"}}]},
    )
    assert status == 400
    assert "figures.bulk.upload.geometry" in json.dumps(answer)
    assert len(fake.video.figures.data) == count
    status, answer = call(
        fake, "figures.bulk.add", {"entityId": mesh["entityId"], "figures": [spec]}
    )
    assert status == 200
    status, _ = call(fake, "figures.bulk.download.geometry", {"ids": [answer[0]["id"]]})
    assert status == 404  # no bytes until they are uploaded
    reply = fake.handle(
        "figures.bulk.download.geometry",
        json.dumps({"ids": [mesh["id"]]}).encode(),
        {"x-api-key": fake.token},
    )
    assert f'name="{mesh["id"]}"; filename="{mesh["id"]}.stl"'.encode() in reply.body
    assert fake.video.masks[mesh["id"]] in reply.body
