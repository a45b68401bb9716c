"""The real Supervisely SDK against the fake server, and labelvault read back through it.

The SDK (``supervisely[versioning]``, in its own venv; see ``tests/servers/supervisely_sdk.py``)
runs unmodified over real sockets: ``api.project.version.create`` builds its columnar snapshot
and uploads it to Team Files, ``api.project.version.restore`` downloads it and rebuilds the
project. Its own read-back (``sdk_driver.py dump``: project info and meta, datasets, images,
figures with exact coordinates, alpha masks, and ``api.annotation.download_batch``) then
compares the source with

- the SDK's restore: equal except for exactly :data:`SDK_RESTORE_DIFFERENCES`;
- labelvault's capture → restore of the same project: equal, with no exception at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labelvault.capture import project_ref
from labelvault.models import RestoreOptions
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.storage.local import LocalStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project
from tests.servers.supervisely_sdk import run_driver

pytestmark = [pytest.mark.supervisely_sdk, pytest.mark.timeout(900)]

#: What the SDK's restore does not give back as it was, as :func:`differences` names it.
SDK_RESTORE_DIFFERENCES = {
    # By design: "Restored from version N. Source project ID: …" goes before the description.
    "project.description",
    # By design: the restored project's custom data says where it came from.
    "project.custom_data.restored_from (added)",
    # ``TagMeta.to_json`` writes a ``target_type`` the source's tag metas did not have.
    "meta.tags[].target_type (added)",
    # Lost: ``images.bulk.add`` is sent without the image's description.
    "images.*.description",
    # Lost: ``figures.bulk.add`` is sent without priority and custom data.
    "figures.*[].priority",
    "figures.*[].custom_data",
}

#: Sections keyed by entity (dataset path; image, video or volume path): one name for all
#: their entries.
_BY_ENTITY = ("datasets", "images", "videos", "volumes", "figures", "annotations")
#: Values compared whole, below the project's own fields.
_WHOLE = ("geometry", "meta", "custom_data")


def differences(source: Any, restored: Any, path: str = "") -> set[str]:
    """The fields where ``restored`` differs from ``source``: ``a.b`` paths, entity keys as
    ``*``, list items as ``[]``, and ``(lost)`` / ``(added)`` for keys on one side only."""
    if isinstance(source, dict) and isinstance(restored, dict):
        out: set[str] = set()
        entity = path in _BY_ENTITY
        for key in source.keys() | restored.keys():
            sub = f"{path}.{'*' if entity else key}" if path else key
            if key not in restored:
                out.add(f"{sub} (lost)")
            elif key not in source:
                out.add(f"{sub} (added)")
            elif key in _WHOLE and path and not path.startswith("project"):
                if source[key] != restored[key]:
                    out.add(sub)
            else:
                out |= differences(source[key], restored[key], sub)
        return out
    if isinstance(source, list) and isinstance(restored, list):
        out = {f"{path} (count)"} if len(source) != len(restored) else set()
        for a, b in zip(source, restored, strict=False):
            out |= differences(a, b, f"{path}[]")
        return out
    if source != restored or type(source) is not type(restored):
        return {path}
    return set()


def test_differences_names_each_kind_of_change() -> None:
    source = {
        "project": {"custom_data": {"a": 1}},
        "images": {"x/1.jpg": {"description": "d", "tags": [["t", 1]]}},
        "figures": {"x/1.jpg": [{"geometry": {"p": [1.5]}, "priority": 1}]},
    }
    restored = {
        "project": {"custom_data": {"a": 1, "b": 2}},
        "images": {"x/1.jpg": {"description": "", "tags": [["t", 1], ["t", 1]]}},
        "figures": {"x/1.jpg": [{"geometry": {"p": [1]}}]},
    }
    assert differences(source, restored) == {
        "project.custom_data.b (added)",
        "images.*.description",
        "images.*.tags (count)",
        "figures.*[].geometry",
        "figures.*[].priority (lost)",
    }
    assert differences(source, json.loads(json.dumps(source))) == set()


@dataclass
class RoundTrips:
    fake: FakeSupervisely
    rich: RichProject
    version_id: int
    sdk_restored: int
    labelvault_restored: int
    dumps: dict[str, Any]
    calls: dict[str, list[str]]


@pytest.fixture(scope="module")
def round_trips(supervisely_sdk: Path, tmp_path_factory: pytest.TempPathFactory) -> RoundTrips:
    """One source project; the SDK's version of it restored; labelvault's capture of it
    restored; the SDK's read-back of all three."""
    fake = FakeSupervisely()
    rich = generate_rich_project(fake)
    scratch = tmp_path_factory.mktemp("sdk")
    calls: dict[str, list[str]] = {}
    with fake.serve() as url:

        def drive(step: str, **args: Any) -> dict[str, Any]:
            before = len(fake.calls)
            answer = run_driver(
                supervisely_sdk, step, url=url, token=fake.token, scratch=scratch, **args
            ).answer
            calls[step] = fake.methods_called()[before:]
            return answer

        version_id = int(drive("create", project_id=rich.project_id, title="v1")["version_id"])
        sdk_restored = int(
            drive("restore", project_id=rich.project_id, version_id=version_id)["project_id"]
        )
        with (
            SuperviselyPlatform(url, fake.token) as platform,
            Vault(LocalStore(str(tmp_path_factory.mktemp("store")))) as vault,
        ):
            captured = vault.capture(platform, str(rich.project_id))
            _, report = vault.restore(
                platform,
                project_ref(platform, str(rich.project_id)),
                captured.version.number,
                restore_id="sdk-read-back",
                # The default description names the source version, as the SDK's does;
                # given the source's own, the restored project has nothing that differs.
                options=RestoreOptions(
                    project_name="labelvault restore",
                    project_description=fake.projects[rich.project_id]["description"],
                ),
            )
        labelvault_restored = int(report.project.project_id)
        dumps = drive("dump", project_ids=[rich.project_id, sdk_restored, labelvault_restored])[
            "projects"
        ]
    return RoundTrips(fake, rich, version_id, sdk_restored, labelvault_restored, dumps, calls)


def test_sdk_version_create_uploads_its_snapshot_to_team_files(round_trips: RoundTrips) -> None:
    fake, pid = round_trips.fake, round_trips.rich.project_id
    version = fake.versions[round_trips.version_id]
    assert version["status"] == "committed"
    assert version["name"] == "v1"
    assert version["projectUpdatedAt"] == fake.projects[pid]["updatedAt"]
    files = {path: entry for (_, path), entry in fake.team_files.items()}
    archive = next(e for e in files.values() if e["id"] == version["teamFileId"])
    assert archive["path"].startswith(f"/system/versions/{pid}/")
    assert archive["path"].endswith(".tar.zst")
    versions_json = files[f"/system/versions/{pid}/versions.json"]
    assert versions_json["meta"]["mime"] == "application/json"
    versions_map = json.loads(versions_json["content"])
    assert versions_map["latest"] == round_trips.version_id
    entry = versions_map[str(round_trips.version_id)]
    assert entry["path"] == archive["path"]
    assert entry["format"] == "v2.1.0"  # the columnar snapshot, not the legacy pickle
    assert "/system/DO_NOT_DELETE_ANYTHING_HERE.txt" in files
    assert round_trips.calls["create"][-3:] == [
        "file-storage.bulk.upload",
        "file-storage.bulk.upload",
        "projects.versions.commit",
    ]


def test_sdk_restore_reads_the_archive_from_team_files(round_trips: RoundTrips) -> None:
    fake = round_trips.fake
    version = fake.versions[round_trips.version_id]
    (archive,) = [e for e in fake.team_files.values() if e["id"] == version["teamFileId"]]
    assert archive["content"][:4] == b"\x28\xb5\x2f\xfd"  # zstd magic
    restore = round_trips.calls["restore"]
    assert restore.index("file-storage.download") < restore.index("projects.add")
    # One download, the archive: versions.json was read through its fullStorageUrl.
    assert restore.count("file-storage.download") == 1


def _figure_count(dump: dict[str, Any]) -> int:
    return sum(len(rows) for rows in dump["figures"].values())


def test_sdk_read_back_covers_the_whole_source(round_trips: RoundTrips) -> None:
    """The read-back is not empty: every dataset, image and figure of the source is in it."""
    fake, rich = round_trips.fake, round_trips.rich
    source = round_trips.dumps[str(rich.project_id)]
    images = [i for i in fake.images.values() if i["projectId"] == rich.project_id]
    figures = [f for f in fake.figures.values() if f["projectId"] == rich.project_id]
    assert len(source["datasets"]) == len(rich.dataset_ids)
    assert len(source["images"]) == len(images)
    assert _figure_count(source) == len(figures)
    shapes = {row["geometry_type"] for rows in source["figures"].values() for row in rows}
    assert {"alpha_mask", "bitmap", "polygon", "rectangle", "graph", "cuboid"} <= shapes
    alpha = [
        row["geometry"]
        for rows in source["figures"].values()
        for row in rows
        if row["geometry_type"] == "alpha_mask"
    ]
    assert alpha
    assert all(set(g) == {"data", "origin"} for g in alpha)
    # Sub-pixel coordinates are read back exactly (figures.list with integerCoords false).
    polygons = [
        row["geometry"]["points"]["exterior"]
        for rows in source["figures"].values()
        for row in rows
        if row["geometry_type"] == "polygon"
    ]
    assert any(not float(x).is_integer() for points in polygons for x, _ in points)


def test_sdk_annotation_read_back_fails_on_2d_cuboids(round_trips: RoundTrips) -> None:
    """``api.annotation.download_batch`` raises on an image with a 2D cuboid: its pixel
    conversion reads ``points`` as a dict, and a cuboid's points are a list."""
    source = round_trips.dumps[str(round_trips.rich.project_id)]
    failed = {key for key, ann in source["annotations"].items() if "error" in ann}
    with_cuboid = {
        key
        for key, rows in source["figures"].items()
        if any(row["geometry_type"] == "cuboid" for row in rows)
    }
    assert failed == with_cuboid
    assert len(failed) < len(source["annotations"])


def test_sdk_annotation_read_back_floors_coordinates(round_trips: RoundTrips) -> None:
    """``download_batch`` asks for exact coordinates and floors them itself: its view of a
    polygon is the exact one, floored."""
    source = round_trips.dumps[str(round_trips.rich.project_id)]
    checked = 0
    for key, annotation in source["annotations"].items():
        if "error" in annotation:
            continue
        exact = sorted(
            json.dumps(
                [[math.floor(x), math.floor(y)] for x, y in row["geometry"]["points"]["exterior"]]
            )
            for row in source["figures"][key]
            if row["geometry_type"] == "polygon"
        )
        read = sorted(
            json.dumps(obj["points"]["exterior"])
            for obj in annotation["objects"]
            if obj["geometryType"] == "polygon"
        )
        assert read == exact, key
        checked += len(read)
    assert checked > 0


def test_sdk_restore_equals_the_source_but_for_its_documented_losses(
    round_trips: RoundTrips,
) -> None:
    source = round_trips.dumps[str(round_trips.rich.project_id)]
    restored = round_trips.dumps[str(round_trips.sdk_restored)]
    assert differences(source, restored) == SDK_RESTORE_DIFFERENCES
    assert _figure_count(restored) == _figure_count(source)


def test_labelvault_restore_read_back_by_the_sdk_equals_the_source(
    round_trips: RoundTrips,
) -> None:
    """The product's claim: capture → restore gives back the project, exact coordinates
    included, as the platform's own SDK reads it."""
    source = round_trips.dumps[str(round_trips.rich.project_id)]
    restored = round_trips.dumps[str(round_trips.labelvault_restored)]
    assert differences(source, restored) == set()
    assert restored == source
