"""The real Supervisely SDK on a VIDEO and a VOLUME project of the fake server, and
labelvault read back through it.

As for images (``test_supervisely_sdk.py``): the SDK runs unmodified over real sockets, its
``api.project.version.create`` snapshots a rich video project (and a rich volume project) into
Team Files and its ``api.project.version.restore`` rebuilds it. The SDK's own read-back
(``sdk_driver.py dump``: project, meta, datasets, videos or volumes with their tags, and each
one's annotation through ``annotation.download_bulk_async`` with exact coordinates, objects with
their figures and tags, the figures' listed custom data, and 3D mask bytes) then compares the
source with

- the SDK's restore: equal except for exactly :data:`SDK_VIDEO_DIFFERENCES` /
  :data:`SDK_VOLUME_DIFFERENCES`;
- labelvault's capture → restore of the same project: equal, with no exception at all.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labelvault.capture import project_ref
from labelvault.models import RestoreOptions
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.storage.local import LocalStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, _round_geometry
from tests.fakes.supervisely_video import (
    generate_rich_video_project,
    generate_rich_volume_project,
)
from tests.platforms.test_supervisely_sdk import differences
from tests.servers.supervisely_sdk import run_driver

pytestmark = [pytest.mark.supervisely_sdk, pytest.mark.timeout(900)]

# Documented SDK losses these projects cannot show, so none is named below: an annotation's
# description (the fake's video annotations have none: ""), closed-surface meshes (the rich
# volume project holds none), a volume's custom data (``VolumeInfo`` has none, so the SDK
# cannot read it back) and multiview object sharing (the fake keeps each object on one
# entity).

#: What the SDK's restore does not give back as it was, on both kinds of project, as
#: :func:`~tests.platforms.test_supervisely_sdk.differences` names it.
_SDK_PROJECT_DIFFERENCES = {
    # By design: "Restored from version N. Source project ID: …" replaces the description.
    "project.description",
    # ``update_meta`` always posts the grouping settings, which the source did not have.
    "project.settings.groupImages (added)",
    "project.settings.groupImagesByTagId (added)",
    "project.settings.groupImagesSync (added)",
    # ``TagMeta.to_json`` writes a ``target_type`` the source's tag metas did not have.
    "meta.tags[].target_type (added)",
    # The capture reads the server's rounded coordinates (no ``integerCoords: false``): every
    # figure comes back on whole pixels, and a bitmap decoded and encoded again.
    "annotations.*.objects[].figures[].geometry",
}

#: What the SDK's restore of a video project does not give back as it was.
SDK_VIDEO_DIFFERENCES = _SDK_PROJECT_DIFFERENCES | {
    # Lost: only the meta-driven settings (grouping, labeling interface) are restored.
    "project.settings.allowDuplicateTags (lost)",
    # Lost: the snapshot's figures table has no custom data column.
    "annotations.*.objects[].figures[].customData (lost)",
    "annotations.*.objects[].figures[].listed.custom_data",
    # Lost: ``VideoFigure`` keeps only ``meta.frame``; the rest of the figure's meta goes.
    "annotations.*.objects[].figures[].meta",
    "annotations.*.objects[].figures[].listed.meta",
}

#: What the SDK's restore of a volume project does not give back as it was.
SDK_VOLUME_DIFFERENCES = _SDK_PROJECT_DIFFERENCES | {
    # By design: the restored project's custom data says where it came from.
    "project.custom_data.restored_from (added)",
    # The capture re-orients each 3D mask to RAS and encodes it again: other bytes, and
    # for a mask not in RAS space other voxel order.
    "annotations.*.objects[].figures[].mask_sha256",
}


@dataclass
class RoundTrips:
    kind: str
    fake: FakeSupervisely
    project_id: int
    version_id: int
    sdk_restored: int
    labelvault_restored: int
    dumps: dict[str, Any]
    calls: dict[str, list[str]]

    def dump(self, project_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.dumps[str(project_id)]
        return found

    @property
    def section(self) -> str:
        return "videos" if self.kind == "video" else "volumes"


def _round_trips(kind: str, venv: Path, tmp: pytest.TempPathFactory) -> RoundTrips:
    """One source project; the SDK's version of it restored; labelvault's capture of it
    restored; the SDK's read-back of all three."""
    fake = FakeSupervisely()
    if kind == "video":
        # Without the class of a shape no release knows: the SDK refuses such a meta.
        project_id = generate_rich_video_project(fake, unknown_shape=False).project_id
    else:
        project_id = generate_rich_volume_project(fake, meshes=False).project_id
    scratch = tmp.mktemp(f"sdk-{kind}")
    calls: dict[str, list[str]] = {}
    with fake.serve() as url:

        def drive(step: str, **args: Any) -> dict[str, Any]:
            before = len(fake.calls)
            answer = run_driver(venv, step, url=url, token=fake.token, scratch=scratch, **args)
            calls[step] = fake.methods_called()[before:]
            return answer.answer

        version_id = int(drive("create", project_id=project_id, title="v1")["version_id"])
        sdk_restored = int(
            drive("restore", project_id=project_id, version_id=version_id)["project_id"]
        )
        with (
            SuperviselyPlatform(url, fake.token) as platform,
            Vault(LocalStore(str(tmp.mktemp(f"store-{kind}")))) as vault,
        ):
            captured = vault.capture(platform, str(project_id))
            _, report = vault.restore(
                platform,
                project_ref(platform, str(project_id)),
                captured.version.number,
                restore_id=f"sdk-read-back-{kind}",
                # Given the source's own description, the restored project has nothing
                # that differs.
                options=RestoreOptions(
                    project_name=f"labelvault restore {kind}",
                    project_description=fake.projects[project_id]["description"],
                ),
            )
        labelvault_restored = int(report.project.project_id)
        dumps = drive("dump", project_ids=[project_id, sdk_restored, labelvault_restored])[
            "projects"
        ]
    return RoundTrips(
        kind, fake, project_id, version_id, sdk_restored, labelvault_restored, dumps, calls
    )


@pytest.fixture(scope="module")
def video(supervisely_sdk: Path, tmp_path_factory: pytest.TempPathFactory) -> RoundTrips:
    return _round_trips("video", supervisely_sdk, tmp_path_factory)


@pytest.fixture(scope="module")
def volume(supervisely_sdk: Path, tmp_path_factory: pytest.TempPathFactory) -> RoundTrips:
    return _round_trips("volume", supervisely_sdk, tmp_path_factory)


@pytest.fixture(params=["video", "volume"])
def trips(request: pytest.FixtureRequest) -> RoundTrips:
    result: RoundTrips = request.getfixturevalue(request.param)
    return result


def _figures(dump: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure of the read-back, in the order of the entities' paths (a restore may
    list its videos in another order)."""
    return [
        figure
        for _, annotation in sorted(dump["annotations"].items())
        for obj in annotation["objects"]
        for figure in obj["figures"]
    ]


def test_sdk_version_create_commits_a_columnar_snapshot(trips: RoundTrips) -> None:
    fake, pid = trips.fake, trips.project_id
    version = fake.versions[trips.version_id]
    assert version["status"] == "committed"
    assert version["projectUpdatedAt"] == fake.projects[pid]["updatedAt"]
    files = {path: entry for (_, path), entry in fake.team_files.items()}
    versions_map = json.loads(files[f"/system/versions/{pid}/versions.json"]["content"])
    assert versions_map["latest"] == trips.version_id
    assert versions_map[str(trips.version_id)]["format"] == "v2.1.0"
    assert trips.calls["create"][-1] == "projects.versions.commit"
    annotations = f"{trips.section}.annotations.bulk.info"
    assert annotations in trips.calls["create"]
    if trips.kind == "volume":  # the masks' bytes, one figure a call
        assert trips.calls["create"].count("figures.bulk.download.geometry") == 4


def test_sdk_restore_builds_a_new_project_of_the_same_type(trips: RoundTrips) -> None:
    fake = trips.fake
    kind = "videos" if trips.kind == "video" else "volumes"
    for restored in (trips.sdk_restored, trips.labelvault_restored):
        assert restored != trips.project_id
        assert fake.projects[restored]["type"] == kind
    restore = trips.calls["restore"]
    assert restore.index("file-storage.download") < restore.index("projects.add")
    assert "figures.bulk.add" in restore
    if trips.kind == "volume":
        assert restore.count("figures.bulk.upload.geometry") == 4


def test_sdk_read_back_covers_the_whole_source(trips: RoundTrips) -> None:
    """The read-back is not empty: every video or volume and every figure of the source is
    in it, at exact sub-pixel coordinates, with the 3D masks' bytes."""
    fake, pid = trips.fake, trips.project_id
    source = trips.dump(pid)
    entities = fake.video.videos if trips.kind == "video" else fake.video.volumes
    mine = [e for e in entities.values() if e["projectId"] == pid]
    assert len(source[trips.section]) == len(mine)
    figures = [f for f in fake.video.figures.values() if f["projectId"] == pid]
    assert len(_figures(source)) == len(figures)
    assert all(not annotation["orphan_figures"] for annotation in source["annotations"].values())
    polygons = [
        x
        for figure in _figures(source)
        if figure["geometryType"] == "polygon"
        for x, _ in figure["geometry"]["points"]["exterior"]
    ]
    assert polygons
    assert any(not float(x).is_integer() for x in polygons)
    if trips.kind == "volume":
        masks = [f["mask_sha256"] for f in _figures(source) if f["geometryType"] == "mask_3d"]
        assert len(masks) == 4
        assert all(masks)
    else:
        shapes = {figure["geometryType"] for figure in _figures(source)}
        assert {"rectangle", "polygon", "line", "point", "bitmap", "graph", "cuboid_2d"} <= shapes


def test_sdk_restore_rounds_every_coordinate(trips: RoundTrips) -> None:
    """The geometry difference is the server's rounding, nothing else: the SDK's restore
    holds the source's coordinates rounded (bitmaps aside: decoded and encoded again)."""
    source = _figures(trips.dump(trips.project_id))
    restored = _figures(trips.dump(trips.sdk_restored))
    assert len(source) == len(restored)
    checked = 0
    for before, after in zip(source, restored, strict=True):
        assert before["geometryType"] == after["geometryType"]
        if before["geometryType"] in ("bitmap", "mask_3d"):
            continue
        assert after["geometry"] == _round_geometry(before["geometry"])
        checked += before["geometry"] != after["geometry"]
    assert checked > 0


def test_sdk_restore_equals_the_source_but_for_its_documented_losses(
    trips: RoundTrips,
) -> None:
    source = trips.dump(trips.project_id)
    restored = trips.dump(trips.sdk_restored)
    expected = SDK_VIDEO_DIFFERENCES if trips.kind == "video" else SDK_VOLUME_DIFFERENCES
    assert differences(source, restored) == expected
    assert len(_figures(restored)) == len(_figures(source))


def test_labelvault_restore_read_back_by_the_sdk_equals_the_source(trips: RoundTrips) -> None:
    """The product's claim: capture → restore gives back the video or volume project, exact
    coordinates and mask bytes included, as the platform's own SDK reads it."""
    source = trips.dump(trips.project_id)
    restored = trips.dump(trips.labelvault_restored)
    assert differences(source, restored) == set()
    assert restored == source


def _nrrd(data: bytes) -> tuple[dict[str, str], tuple[int, ...], bytes]:
    """An NRRD's header fields, sizes and voxels (raw or gzip, one byte a voxel)."""
    head, _, body = data.partition(b"\n\n")
    fields = dict(
        line.split(": ", 1) for line in head.decode().splitlines()[1:] if not line.startswith("#")
    )
    assert fields["type"] == "uint8"
    voxels = gzip.decompress(body) if fields["encoding"] == "gzip" else body
    return fields, tuple(int(n) for n in fields["sizes"].split()), voxels


def _masks(fake: FakeSupervisely, project_id: int) -> dict[tuple[str, str], bytes]:
    """The 3D masks' bytes of a volume project by (dataset name, volume name)."""
    out = {}
    for figure_id, figure in fake.video.figures.items():
        if figure["projectId"] == project_id and figure["geometryType"] == "mask_3d":
            volume = fake.video.volumes[figure["entityId"]]
            key = (fake.datasets[volume["datasetId"]]["name"], volume["name"])
            assert key not in out  # one mask a volume in the rich project
            out[key] = fake.video.masks[figure_id]
    return out


def test_sdk_restore_reorients_3d_masks_to_ras(volume: RoundTrips) -> None:
    """The mask difference is the SDK's re-orientation: a left-posterior-superior mask comes
    back in right-anterior-superior space with its voxels flipped along x and y; labelvault's
    restore gives back the very bytes."""
    source = _masks(volume.fake, volume.project_id)
    restored = _masks(volume.fake, volume.sdk_restored)
    assert source.keys() == restored.keys()
    assert len(source) == 4
    for key, data in source.items():
        fields, (x, y, z), voxels = _nrrd(data)
        assert fields["space"] == "left-posterior-superior"
        out_fields, sizes, out = _nrrd(restored[key])
        assert out_fields["space"] == "right-anterior-superior"
        assert sizes == (x, y, z)
        assert out != voxels
        flipped = bytes(
            voxels[(x - 1 - i) + x * ((y - 1 - j) + y * k)]
            for k in range(z)
            for j in range(y)
            for i in range(x)
        )
        assert out == flipped
    assert _masks(volume.fake, volume.labelvault_restored) == source
