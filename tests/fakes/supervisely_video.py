"""The video endpoints of the fake Supervisely server (``reference/supervisely-video-volume.md``).

:func:`attach` adds them to a :class:`~tests.fakes.supervisely.FakeSupervisely`; they share
its state, its id counter, its lock (every handler runs under it), its clock and its fault
switch. What §12 of the reference asks of a faithful fake:

- bulk writes (``videos.tags.bulk.add``, ``annotation-objects.bulk.add``,
  ``annotation-objects.tags.bulk.add``, ``figures.bulk.add``) answer ``[{"id"}]``, one per
  item, in request order; ``videos.bulk.add`` answers video JSON whose ``name`` is the
  requested ``title`` (never renamed; a taken name is a 400);
- ``videos.annotations.bulk.info`` answers exactly the requested videos in order (≤ 100),
  rounds coordinates unless ``integerCoords`` is false, and accepts a missing ``datasetId``;
- ``tags.list`` and ``advanced.object_classes.list`` answer every key the SDK parses strictly;
- video figures need ``meta.frame`` within the video, an object of the same video and a class
  whose shape is the figure's type (or ``any``); tag frame ranges must lie within the video;
- SDK noise in write payloads (``key``, ``objectKey``, ``labelerLogin``, timestamps, ``tool``,
  ``id``/``shape``/``geometryType`` inside ``geometry``) is ignored; the author of whatever is
  written is the caller;
- every content write moves the project's ``updatedAt``;
- a closed-surface mesh is created empty: ``figures.bulk.add`` refuses its geometry with the
  server's own message (quoted in the SDK's ``volume_figure_api.py``), and its STL bytes go up
  with ``figures.bulk.upload.geometry`` as a 3D mask's NRRD bytes do;
- a multiview video project (settings ``labelingInterface: multi_view``; reference §4.7 and
  §14.1: grouped by dataset) takes ``annotation-objects.bulk.add`` items without ``entityId``:
  such an object belongs to its dataset, any video of the dataset may hold its figures, and
  each video's annotation lists it (with its tags) when it has a figure on that video.

``figures.bulk.add`` is shared with images: a body with ``datasetId`` is an image call and goes
to the images handler, a body with a top-level ``entityId`` is a video call.
"""

from __future__ import annotations

import json
import random
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.supervisely import (
    ApiError,
    FakeSupervisely,
    IndexedTable,
    Json,
    Reply,
    _geometry,
    _round_geometry,
)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".3gp", ".flv", ".webm", ".wmv", ".mov", ".mkv")
_GEOMETRY_NOISE = frozenset({"id", "shape", "geometryType"})
_VIDEO_DERIVED = frozenset({"tags"})
#: The three planes of a volume and their exact normals.
PLANES = {
    "sagittal": {"x": 1, "y": 0, "z": 0},
    "coronal": {"x": 0, "y": 1, "z": 0},
    "axial": {"x": 0, "y": 0, "z": 1},
}
#: Volume figures with no plane: their geometry is bytes (``figures.bulk.upload.geometry``).
SPATIAL_TYPES = frozenset({"mask_3d", "closed_surface_mesh"})
MESH = "closed_surface_mesh"


def _bad(message: str) -> ApiError:
    return ApiError(400, "Validation error", {"message": message})


class VideoState:
    """The fake's video data and the handlers of the video methods."""

    def __init__(self, fake: FakeSupervisely) -> None:
        self.fake = fake
        self.videos = IndexedTable("datasetId")
        #: hash or link → file meta of the stored video
        self.media: dict[str, dict[str, Any]] = {}
        self.volumes = IndexedTable("datasetId")
        #: volume hash → the volume meta the server derives from the file
        self.volume_metas: dict[str, dict[str, Any]] = {}
        #: 3D mask figure id → its NRRD bytes, verbatim
        self.masks: dict[int, bytes] = {}
        self.objects = IndexedTable("entityId", "datasetId")
        self.figures = IndexedTable("entityId")
        self.video_tags: dict[int, list[dict[str, Any]]] = {}
        self.object_tags: dict[int, list[dict[str, Any]]] = {}

    # --- setup helpers ------------------------------------------------------------------------

    def register_video(
        self,
        *,
        frames: int,
        width: int,
        height: int,
        fps: float = 25.0,
        seed: str = "",
        link: str | None = None,
    ) -> str:
        """Store a video file (or make a link answer); returns its hash (or the link)."""
        file_meta = {
            "codecName": "h264",
            "codecType": "video",
            "formatName": "mov,mp4,m4a,3gp,3g2,mj2",
            "mime": "video/mp4",
            "framesCount": frames,
            "width": width,
            "height": height,
            "duration": frames / fps,
            "framesToTimecodes": [n / fps for n in range(frames)],
            "rotation": 0,
            "size": str(width * height * frames // 50 + 999),
            "startTime": 0,
            "streams": [],
            "index": 0,
        }
        if link is not None:
            self.media[link] = file_meta
            self.fake.links[link] = {
                "width": width,
                "height": height,
                "size": int(file_meta["size"]),
                "ext": "mp4",
                "mime": "video/mp4",
            }
            return link
        media_hash = self.fake.register_hash(width=width, height=height, ext="mp4", seed=seed)
        self.fake.hashes[media_hash]["mime"] = "video/mp4"
        self.media[media_hash] = file_meta
        return media_hash

    def create_video(
        self,
        dataset_id: int,
        name: str,
        *,
        media_hash: str | None = None,
        link: str | None = None,
        meta: dict[str, Any] | None = None,
        custom_data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        dataset = self.fake._dataset(dataset_id)
        if (media_hash is None) == (link is None):
            raise _bad("a video needs exactly one of hash and link")
        source = media_hash if media_hash is not None else link
        file_meta = self.media.get(source or "")
        if file_meta is None:
            if media_hash is not None:
                raise ApiError(
                    400,
                    "Videos with these hashes do not exist",
                    {"type": "HASHES_NOT_FOUND", "hashes": [media_hash]},
                )
            raise ApiError(
                400, "Cannot download video by link", {"type": "LINK_UNREACHABLE", "link": link}
            )
        if not name.lower().endswith(VIDEO_EXTENSIONS):
            raise _bad(f"unsupported video extension: {name!r}")
        for other in self.videos.where("datasetId", [dataset_id]):
            if other["name"] == name:
                raise ApiError(
                    400,
                    "Video name already exists",
                    [{"type": "NONUNIQUE", "errors": [{"name": name, "id": other["id"]}]}],
                )
        project = self.fake.projects[dataset["projectId"]]
        vid = self.fake.next_id()
        now = self.fake.tick()
        video = {
            "id": vid,
            "name": name,
            "description": "",
            "hash": media_hash,
            "link": link,
            "teamId": project["teamId"],
            "workspaceId": project["workspaceId"],
            "projectId": project["id"],
            "datasetId": dataset_id,
            "pathOriginal": f"/storage/videos/original/{vid}.mp4",
            "processingPath": f"1/{vid}",
            "fileMeta": json.loads(json.dumps(file_meta)),
            "meta": dict(meta or {}),
            "customData": dict(custom_data or {}),
            "createdAt": now,
            "updatedAt": now,
            "createdBy": self.fake.user_id,
        }
        self.videos[vid] = video
        self.fake.touch_project(project["id"])
        return video

    def _video(self, video_id: Any) -> dict[str, Any]:
        return self.fake._entity(self.videos, "Video", video_id)

    def _owner(self, entity_id: Any) -> dict[str, Any]:
        """The video or volume ``entity_id`` names (objects, figures and tags hang off both)."""
        if isinstance(entity_id, int) and entity_id in self.volumes:
            return self.volumes[entity_id]
        return self._video(entity_id)

    @staticmethod
    def _frames(entity: dict[str, Any]) -> int:
        """Frames of a video; a volume has none (no tag of it has a frame range)."""
        return int(entity["fileMeta"].get("framesCount") or 0) if "volumeMeta" not in entity else 0

    def _check_place(self, entity: dict[str, Any], spec: dict[str, Any]) -> None:
        """A video figure needs ``meta.frame`` within the video; a volume plane figure
        ``meta.sliceIndex`` within its plane and ``meta.normal``; a 3D mask no geometry."""
        meta = spec.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        if "volumeMeta" not in entity:
            frame, frames = meta.get("frame"), self._frames(entity)
            if not isinstance(frame, int) or not 0 <= frame < frames:
                raise _bad(f"meta.frame {frame!r} is not a frame of video {entity['id']}")
            return
        if spec.get("geometryType") in SPATIAL_TYPES:
            return
        normal = meta.get("normal")
        plane = next((name for name, n in PLANES.items() if n == normal), None)
        index = meta.get("sliceIndex")
        dims = entity["meta"]["dimensionsIJK"]
        size = {"sagittal": dims["x"], "coronal": dims["y"], "axial": dims["z"]}.get(plane or "")
        if size is None or not isinstance(index, int) or not 0 <= index < size:
            raise _bad(f"meta.sliceIndex {index!r} / normal {normal!r} is not a slice of a plane")

    def _class(self, project_id: int, class_id: Any) -> dict[str, Any]:
        for cls in self.fake.metas[project_id]["classes"]:
            if cls["id"] == class_id:
                return cls
        raise _bad(f"class {class_id} is not in the project meta")

    def is_multiview(self, project_id: int) -> bool:
        settings = self.fake.projects[project_id].get("settings") or {}
        return settings.get("labelingInterface") == "multi_view"

    def create_object(
        self, video_id: int | None, class_id: int, *, login: str, dataset_id: int | None = None
    ) -> dict[str, Any]:
        """An object of one video, or (``video_id`` None) a multiview object of a dataset."""
        if video_id is None:
            dataset = self.fake._dataset(dataset_id)
            project_id, dataset_id = dataset["projectId"], dataset["id"]
            if not self.is_multiview(project_id):
                raise _bad("entityId is required")
        else:
            video = self._owner(video_id)
            project_id, dataset_id = video["projectId"], video["datasetId"]
        self._class(project_id, class_id)
        now = self.fake.tick()
        obj = {
            "id": self.fake.next_id(),
            "entityId": video_id,
            "classId": class_id,
            "datasetId": dataset_id,
            "projectId": project_id,
            "labelerLogin": login,
            "createdAt": now,
            "updatedAt": now,
        }
        self.objects[obj["id"]] = obj
        self.fake.touch_project(project_id)
        return obj

    def create_figure(self, video_id: int, spec: dict[str, Any], *, login: str) -> dict[str, Any]:
        """A figure of an object on one frame (``spec`` as ``figures.bulk.add`` sends it)."""
        video = self._owner(video_id)
        obj = self.objects.get(spec.get("objectId"))
        shared = obj is not None and obj["entityId"] is None  # multiview: any video of its dataset
        if obj is None or (
            obj["datasetId"] != video["datasetId"] if shared else obj["entityId"] != video_id
        ):
            raise _bad(f"object {spec.get('objectId')} is not an object of entity {video_id}")
        self._check_place(video, spec)
        meta = spec.get("meta") if isinstance(spec.get("meta"), dict) else {}
        cls = self._class(video["projectId"], obj["classId"])
        geometry_type = spec.get("geometryType")
        if cls["shape"] not in ("any", geometry_type):
            raise _bad(f"class {cls['title']!r} is a {cls['shape']}, not a {geometry_type}")
        geometry = spec.get("geometry", {} if geometry_type in SPATIAL_TYPES else None)
        if geometry_type == MESH and geometry:
            raise _bad(
                'Please, use "figures.bulk.upload.geometry" method to update figures with '
                '"geometryType" closed_surface_mesh'
            )
        if not isinstance(geometry, dict):
            raise _bad("geometry is required")
        now = self.fake.tick()
        figure = {
            "id": self.fake.next_id(),
            "entityId": video_id,
            "objectId": obj["id"],
            "classId": obj["classId"],
            "projectId": video["projectId"],
            "datasetId": video["datasetId"],
            "geometryType": geometry_type,
            "geometry": {k: v for k, v in geometry.items() if k not in _GEOMETRY_NOISE},
            "meta": dict(meta),
            "labelerLogin": login,
            "createdAt": now,
            "updatedAt": now,
            "nnCreated": bool(spec.get("nnCreated")),
            "nnUpdated": bool(spec.get("nnUpdated")),
        }
        for key in ("priority", "trackId", "smartToolInput", "customData"):
            if key in spec:
                figure[key] = spec[key]
        self.figures[figure["id"]] = figure
        self.fake.touch_project(video["projectId"])
        return figure

    def _check_tag(self, project_id: int, spec: dict[str, Any], frames: int) -> dict[str, Any]:
        """The tag meta ``spec`` names, after checking its frame range; no side effects."""
        tag_id = spec.get("tagId")
        meta = None
        for candidate in self.fake.metas[project_id]["tags"]:
            by_name = tag_id is None and candidate["name"] == spec.get("name")
            if candidate["id"] == tag_id or by_name:
                meta = candidate
        if meta is None:
            raise _bad(f"tag {tag_id or spec.get('name')!r} is not in the project meta")
        if "frameRange" in spec:
            bounds = spec["frameRange"]
            ok = (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(isinstance(b, int) for b in bounds)
                and 0 <= bounds[0] <= bounds[1] < frames
            )
            if not ok:
                raise _bad(f"frameRange {bounds!r} is not within 0…{frames - 1}")
        return meta

    def _tag(
        self, project_id: int, spec: dict[str, Any], frames: int, *, login: str
    ) -> dict[str, Any]:
        meta = self._check_tag(project_id, spec, frames)
        now = self.fake.tick()
        tag: dict[str, Any] = {
            "id": self.fake.next_id(),
            "tagId": meta["id"],
            "name": meta["name"],
            "isFinished": spec.get("isFinished", True),
            "nonFinalValue": spec.get("nonFinalValue", False),
            "labelerLogin": login,
            "createdAt": now,
            "updatedAt": now,
        }
        if "value" in spec:
            tag["value"] = spec["value"]
        if "frameRange" in spec:
            tag["frameRange"] = list(spec["frameRange"])
        if "customData" in spec:
            tag["customData"] = spec["customData"]
        self.fake.touch_project(project_id)
        return tag

    def add_video_tag(self, video_id: int, spec: dict[str, Any], *, login: str) -> dict[str, Any]:
        video = self._owner(video_id)
        tag = self._tag(video["projectId"], spec, self._frames(video), login=login)
        self.video_tags.setdefault(video_id, []).append(tag)
        return tag

    def add_object_tag(self, object_id: int, spec: dict[str, Any], *, login: str) -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if obj is None:
            raise _bad(f"object {object_id} does not exist")
        tag = self._tag(obj["projectId"], spec, self._object_frames(obj), login=login)
        self.object_tags.setdefault(object_id, []).append(tag)
        return tag

    def _object_frames(self, obj: dict[str, Any]) -> int:
        """Frames an object's tag may range over: its video's, or for a multiview object the
        longest video of its dataset."""
        if obj["entityId"] is not None:
            return self._frames(self._owner(obj["entityId"]))
        videos = self.videos.where("datasetId", [obj["datasetId"]])
        return max((self._frames(v) for v in videos), default=0)

    def _objects_of(self, entity: dict[str, Any]) -> list[dict[str, Any]]:
        """An entity's objects, and the multiview objects with a figure on it, in id order."""
        own = self.objects.where("entityId", [entity["id"]])
        figured = {f["objectId"] for f in self.figures.where("entityId", [entity["id"]])}
        shared = [
            o
            for o in self.objects.where("datasetId", [entity["datasetId"]])
            if o["entityId"] is None and o["id"] in figured
        ]
        return sorted(own + shared, key=lambda o: o["id"])

    # --- JSON ---------------------------------------------------------------------------------

    def video_json(self, video: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(video))
        out["tags"] = [
            {**tag, "entityId": video["id"]} for tag in self.video_tags.get(video["id"], [])
        ]
        return out

    def annotation_json(self, video: dict[str, Any], *, integer: bool) -> dict[str, Any]:
        classes = {c["id"]: c["title"] for c in self.fake.metas[video["projectId"]]["classes"]}
        objects = [
            {
                "id": obj["id"],
                "classId": obj["classId"],
                "classTitle": classes.get(obj["classId"]),
                "labelerLogin": obj["labelerLogin"],
                "createdAt": obj["createdAt"],
                "updatedAt": obj["updatedAt"],
                "tags": [dict(t) for t in self.object_tags.get(obj["id"], [])],
            }
            for obj in self._objects_of(video)
        ]
        frames: dict[int, list[dict[str, Any]]] = {}
        for figure in self.figures.where("entityId", [video["id"]]):
            out = json.loads(json.dumps(figure))
            for key in ("entityId", "projectId", "datasetId"):
                del out[key]
            if integer:
                out["geometry"] = _round_geometry(out["geometry"])
            frames.setdefault(figure["meta"]["frame"], []).append(out)
        file_meta = video["fileMeta"]
        return {
            "videoId": video["id"],
            "videoName": video["name"],
            "datasetId": video["datasetId"],
            "createdAt": video["createdAt"],
            "updatedAt": video["updatedAt"],
            "description": video.get("description", ""),
            "framesCount": file_meta["framesCount"],
            "size": {"height": file_meta["height"], "width": file_meta["width"]},
            "tags": [dict(t) for t in self.video_tags.get(video["id"], [])],
            "objects": objects,
            "frames": [{"index": index, "figures": frames[index]} for index in sorted(frames)],
        }

    # --- methods ------------------------------------------------------------------------------

    def videos_list(self, user: dict[str, Any], body: Json) -> Json:
        fake = self.fake
        if ("datasetId" in body) == ("projectId" in body):
            raise _bad("exactly one of datasetId and projectId")
        if "datasetId" in body:
            rows = self.videos.where("datasetId", [fake._dataset(body["datasetId"])["id"]])
        else:
            pid = fake._project(body["projectId"])["id"]
            rows = [v for v in self.videos.values() if v["projectId"] == pid]
        page = fake._listing("videos.list", body, rows, self.video_json, _VIDEO_DERIVED)
        if body.get("fields"):
            wanted = set(body["fields"]) | {"id"}
            page["entities"] = [
                {k: v for k, v in r.items() if k in wanted} for r in page["entities"]
            ]
        return page

    def videos_info(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "id")
        return self.video_json(self._video(body["id"]))

    def videos_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        fake = self.fake
        fake._require(body, "datasetId", "videos")
        fake._dataset(body["datasetId"])
        names = [item.get("title") for item in body["videos"]]
        if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise _bad("every video needs a title, unique within the call")
        for item in body["videos"]:  # validate all before creating any
            source = item.get("hash") or item.get("link")
            if source not in self.media:
                raise ApiError(
                    400,
                    "Videos with these hashes or links do not exist",
                    {"type": "HASHES_NOT_FOUND", "missing": [source]},
                )
        taken = {v["name"] for v in self.videos.where("datasetId", [body["datasetId"]])}
        if taken & set(names):
            raise ApiError(400, "Video names are not unique", [{"type": "NONUNIQUE"}])
        created = [
            self.create_video(
                body["datasetId"],
                item["title"],
                media_hash=item.get("hash"),
                link=item.get("link") if "hash" not in item else None,
                meta=item.get("meta"),
            )
            for item in body["videos"]
        ]
        return [self.video_json(video) for video in created]

    def custom_data_set(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "id", "customData")
        video = self._video(body["id"])
        if not isinstance(body["customData"], dict):
            raise _bad("customData must be an object")
        video["customData"] = json.loads(json.dumps(body["customData"]))
        video["updatedAt"] = self.fake.tick()
        self.fake.touch_project(video["projectId"])
        return self.video_json(video)

    def annotations_bulk_info(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "videoIds")
        ids = body["videoIds"]
        if len(ids) > 100:
            raise _bad("at most 100 videoIds per call")
        integer = body.get("integerCoords", True) is not False
        out = []
        for video_id in ids:
            video = self._video(video_id)
            if "datasetId" in body and video["datasetId"] != body["datasetId"]:
                raise _bad(f"video {video_id} is not in dataset {body['datasetId']}")
            out.append(self.annotation_json(video, integer=integer))
        return out

    def video_tags_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "videoId", "tags")
        video = self._video(body["videoId"])
        frames = video["fileMeta"]["framesCount"]
        for spec in body["tags"]:  # validate all before creating any
            self._check_tag(video["projectId"], spec, frames)
        return [
            {"id": self.add_video_tag(video["id"], spec, login=user["login"])["id"]}
            for spec in body["tags"]
        ]

    def video_tags_remove(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "id")
        for video_id, tags in self.video_tags.items():
            for tag in tags:
                if tag["id"] == body["id"]:
                    tags.remove(tag)
                    self.fake.touch_project(self.videos[video_id]["projectId"])
                    return {"success": True}
        raise ApiError(404, "Entity not found", {"message": f"tag {body['id']} not found"})

    def objects_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        fake = self.fake
        fake._require(body, "datasetId", "annotationObjects")
        fake._dataset(body["datasetId"])
        project_id = fake._dataset(body["datasetId"])["projectId"]
        for spec in body["annotationObjects"]:
            if self.is_multiview(project_id) and "entityId" not in spec:
                fake._require(spec, "classId")
                self._class(project_id, spec["classId"])
                continue
            fake._require(spec, "classId", "entityId")
            video = self._owner(spec["entityId"])
            if video["datasetId"] != body["datasetId"]:
                raise _bad(f"entity {spec['entityId']} is not in dataset {body['datasetId']}")
            self._class(video["projectId"], spec["classId"])
        return [
            {
                "id": self.create_object(
                    s.get("entityId"),
                    s["classId"],
                    login=user["login"],
                    dataset_id=body["datasetId"],
                )["id"]
            }
            for s in body["annotationObjects"]
        ]

    def objects_bulk_remove(self, user: dict[str, Any], body: Json) -> Json:
        if not isinstance(body, list):
            raise _bad("the body is a JSON array of object ids")
        for object_id in body:
            obj = self.objects.get(object_id)
            if obj is None:
                continue
            entities = (
                [obj["entityId"]]
                if obj["entityId"] is not None
                else [v["id"] for v in self.videos.where("datasetId", [obj["datasetId"]])]
            )
            for figure in self.figures.where("entityId", entities):
                if figure["objectId"] == object_id:
                    del self.figures[figure["id"]]
            self.object_tags.pop(object_id, None)
            del self.objects[object_id]
            self.fake.touch_project(obj["projectId"])
        return {"success": True}

    def object_tags_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "tags")
        if "projectId" not in body and "entityId" not in body:
            raise _bad("projectId (or entityId for multiview) is required")
        for spec in body["tags"]:
            self.fake._require(spec, "objectId")
            obj = self.objects.get(spec["objectId"])
            if obj is None or ("projectId" in body and obj["projectId"] != body["projectId"]):
                raise _bad(f"object {spec['objectId']} is not in the project")
            self._check_tag(obj["projectId"], spec, self._object_frames(obj))
        return [
            {"id": self.add_object_tag(s["objectId"], s, login=user["login"])["id"]}
            for s in body["tags"]
        ]

    def figures_bulk_add(
        self, images: Callable[[dict[str, Any], Json], Json]
    ) -> Callable[[dict[str, Any], Json], Json]:
        """The shared ``figures.bulk.add``: images (``datasetId``) or one video (``entityId``)."""

        def handler(user: dict[str, Any], body: Json) -> Json:
            if not isinstance(body, dict) or "datasetId" in body or "entityId" not in body:
                return images(user, body)
            self.fake._require(body, "entityId", "figures")
            video = self._owner(body["entityId"])
            checked = dict(self.figures.data)
            try:  # validate all before keeping any
                made = [
                    self.create_figure(video["id"], spec, login=user["login"])
                    for spec in body["figures"]
                ]
            except ApiError:
                for figure_id in set(self.figures.data) - set(checked):
                    del self.figures[figure_id]
                raise
            return [{"id": figure["id"]} for figure in made]

        return handler

    # --- volumes ------------------------------------------------------------------------------

    def register_volume(self, *, dims: tuple[int, int, int], seed: str = "") -> tuple[str, dict]:
        """Store a volume file; returns its hash and the volume meta the server derives."""
        x, y, z = dims
        media_hash = self.fake.register_hash(width=x, height=y, ext="nrrd", seed=f"vol:{seed}")
        meta = {
            "ACS": "RAS",
            "intensity": {"min": -1024, "max": 3071},
            "windowWidth": 4095,
            "windowCenter": 1023.5,
            "rescaleSlope": 1,
            "rescaleIntercept": 0,
            "channelsCount": 1,
            "dimensionsIJK": {"x": x, "y": y, "z": z},
            "IJK2WorldMatrix": [0.7, 0, 0, -10.5, 0, 0.7, 0, 20.25, 0, 0, 2.5, 0, 0, 0, 0, 1],
        }
        self.media[media_hash] = {
            "mime": "application/octet-stream",
            "size": str(x * y * z * 2 + 352),
            "type": "short",
            "sizes": [x, y, z],
            "space": "right-anterior-superior",
            "encoding": "gzip",
            "dimension": 3,
        }
        self.volume_metas[media_hash] = meta
        return media_hash, meta

    def create_volume(
        self, dataset_id: int, name: str, media_hash: str, meta: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        dataset = self.fake._dataset(dataset_id)
        if media_hash not in self.volume_metas:
            raise ApiError(
                400,
                "Volumes with these hashes do not exist",
                {"type": "HASHES_NOT_FOUND", "hashes": [media_hash]},
            )
        if any(v["name"] == name for v in self.volumes.where("datasetId", [dataset_id])):
            raise ApiError(400, "Volume name already exists", [{"type": "NONUNIQUE"}])
        project = self.fake.projects[dataset["projectId"]]
        vid = self.fake.next_id()
        now = self.fake.tick()
        volume = {
            "id": vid,
            "name": name,
            "hash": media_hash,
            "link": None,
            "mime": "application/octet-stream",
            "ext": "nrrd",
            "teamId": project["teamId"],
            "workspaceId": project["workspaceId"],
            "projectId": project["id"],
            "datasetId": dataset_id,
            "pathOriginal": f"/storage/volumes/{vid}.nrrd",
            "fullStorageUrl": f"https://storage.invalid/volumes/{vid}.nrrd",
            "processingPath": f"1/{vid}",
            "fileMeta": json.loads(json.dumps(self.media[media_hash])),
            "meta": json.loads(json.dumps(meta or self.volume_metas[media_hash])),
            "volumeMeta": True,
            "createdAt": now,
            "updatedAt": now,
        }
        self.volumes[vid] = volume
        self.fake.touch_project(project["id"])
        return volume

    def volume_json(self, volume: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps({k: v for k, v in volume.items() if k != "volumeMeta"}))
        out["tags"] = [dict(t) for t in self.video_tags.get(volume["id"], [])]
        out["figuresCount"] = self.figures.count("entityId", volume["id"])
        out["annotationObjectsCount"] = self.objects.count("entityId", volume["id"])
        return out

    def volume_annotation_json(self, volume: dict[str, Any], *, integer: bool) -> dict[str, Any]:
        classes = {c["id"]: c["title"] for c in self.fake.metas[volume["projectId"]]["classes"]}
        slices: dict[str, dict[int, list[Any]]] = {name: {} for name in PLANES}
        spatial = []
        for figure in self.figures.where("entityId", [volume["id"]]):
            out = json.loads(json.dumps(figure))
            for key in ("entityId", "projectId", "datasetId"):
                del out[key]
            if figure["geometryType"] in SPATIAL_TYPES:
                out["geometry"] = {}  # the bytes are behind figures.bulk.download.geometry
                out.pop("customData", None)  # "api does not return it in download_bulk atm"
                spatial.append(out)
                continue
            if integer:
                out["geometry"] = _round_geometry(out["geometry"])
            plane = next(n for n, v in PLANES.items() if v == figure["meta"]["normal"])
            slices[plane].setdefault(figure["meta"]["sliceIndex"], []).append(out)
        return {
            "volumeId": volume["id"],
            "volumeName": volume["name"],
            "createdAt": volume["createdAt"],
            "updatedAt": volume["updatedAt"],
            "volumeMeta": json.loads(json.dumps(volume["meta"])),
            "tags": [dict(t) for t in self.video_tags.get(volume["id"], [])],
            "objects": [
                {
                    "id": obj["id"],
                    "classId": obj["classId"],
                    "classTitle": classes.get(obj["classId"]),
                    "labelerLogin": obj["labelerLogin"],
                    "createdAt": obj["createdAt"],
                    "updatedAt": obj["updatedAt"],
                    "tags": [dict(t) for t in self.object_tags.get(obj["id"], [])],
                }
                for obj in self.objects.where("entityId", [volume["id"]])
            ],
            "planes": [
                {
                    "name": name,
                    "normal": dict(normal),
                    "slices": [
                        {"index": index, "figures": slices[name][index]}
                        for index in sorted(slices[name])
                    ],
                }
                for name, normal in PLANES.items()
            ],
            "spatialFigures": spatial,
        }

    def volumes_list(self, user: dict[str, Any], body: Json) -> Json:
        fake = self.fake
        if "datasetId" in body:
            rows = self.volumes.where("datasetId", [fake._dataset(body["datasetId"])["id"]])
        else:
            fake._require(body, "projectId")
            rows = [v for v in self.volumes.values() if v["projectId"] == body["projectId"]]
        return fake._listing("volumes.list", body, rows, self.volume_json, _VIDEO_DERIVED)

    def volumes_info(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "id")
        return self.volume_json(self.fake._entity(self.volumes, "Volume", body["id"]))

    def volumes_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        fake = self.fake
        fake._require(body, "datasetId", "volumes")
        fake._dataset(body["datasetId"])
        names = [item.get("name") for item in body["volumes"]]
        if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise _bad("every volume needs a name, unique within the call")
        missing = [i.get("hash") for i in body["volumes"] if i.get("hash") not in self.volume_metas]
        if missing:
            raise ApiError(400, "Volumes with these hashes do not exist", {"hashes": missing})
        taken = {v["name"] for v in self.volumes.where("datasetId", [body["datasetId"]])}
        if taken & set(names):
            raise ApiError(400, "Volume names are not unique", [{"type": "NONUNIQUE"}])
        made = [
            self.create_volume(body["datasetId"], i["name"], i["hash"], i.get("meta"))
            for i in body["volumes"]
        ]
        # the real answer leaves these empty (the SDK patches them in, per its comment)
        return [{**self.volume_json(v), "projectId": None, "datasetId": None} for v in made]

    def volumes_annotations_bulk_info(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "volumeIds")
        integer = body.get("integerCoords", True) is not False
        return [
            self.volume_annotation_json(
                self.fake._entity(self.volumes, "Volume", volume_id), integer=integer
            )
            for volume_id in body["volumeIds"]
        ]

    def volume_tags_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "entityId", "tags")
        volume = self.fake._entity(self.volumes, "Volume", body["entityId"])
        for spec in body["tags"]:
            self._check_tag(volume["projectId"], spec, 0)
        return [
            {"id": self.add_video_tag(volume["id"], spec, login=user["login"])["id"]}
            for spec in body["tags"]
        ]

    def upload_geometry(
        self, images: Callable[[dict[str, Any], Json], Json]
    ) -> Callable[[dict[str, Any], Json], Json]:
        """The shared ``figures.bulk.upload.geometry``: 3D mask or mesh bytes, kept verbatim."""

        def handler(user: dict[str, Any], body: Json) -> Json:
            parts = body.get("__multipart__") if isinstance(body, dict) else None
            declared = [int(p.content) for p in parts or [] if p.name == "figureId"]
            if not declared or not all(f in self.figures for f in declared):
                return images(user, body)
            geometries = {int(p.filename or -1): p.content for p in parts if p.name == "geometry"}
            if set(declared) != set(geometries):
                raise _bad("figureId and geometry parts disagree")
            for figure_id, content in geometries.items():
                figure = self.figures[figure_id]
                if figure["geometryType"] not in SPATIAL_TYPES:
                    raise _bad(f"figure {figure_id} is not a spatial figure")
                self.masks[figure_id] = bytes(content)
                self.fake.touch_project(figure["projectId"])
            return {}

        return handler

    def figures_list(
        self, images: Callable[[dict[str, Any], Json], Json]
    ) -> Callable[[dict[str, Any], Json], Json]:
        """The shared ``figures.list``: figures of videos and volumes when the filter names
        only those entities (``meta.frame`` / ``meta.sliceIndex`` as stored)."""

        def handler(user: dict[str, Any], body: Json) -> Json:
            entities = None
            for item in (body.get("filter") if isinstance(body, dict) else None) or []:
                if isinstance(item, dict) and item.get("field") == "entityId":
                    value = item.get("value")
                    entities = value if isinstance(value, list) else [value]
            if not entities or not all(e in self.videos or e in self.volumes for e in entities):
                return images(user, body)
            rows = self.figures.where("entityId", entities)
            page = self.fake._page("figures.list", body, rows)
            # Copies of the page's rows only: copying every row for each page made reading
            # a dataset's figures quadratic in their number.
            page["entities"] = [json.loads(json.dumps(r)) for r in page["entities"]]
            if body.get("fields"):
                # ``entityId`` always: the SDK asks for ``imageId`` and reads ``entityId``.
                wanted = set(body["fields"]) | {"id", "entityId"}
                page["entities"] = [
                    {k: v for k, v in r.items() if k in wanted} for r in page["entities"]
                ]
            return page

        return handler

    def download_geometry(
        self, images: Callable[[dict[str, Any], Json], Json]
    ) -> Callable[[dict[str, Any], Json], Json]:
        """The shared ``figures.bulk.download.geometry``: a part of raw bytes per 3D mask or
        mesh."""

        def handler(user: dict[str, Any], body: Json) -> Json:
            ids = body.get("ids") if isinstance(body, dict) else None
            if not ids or not all(f in self.figures for f in ids):
                return images(user, body)
            boundary = secrets.token_hex(12)
            parts = []
            for figure_id in ids:
                data = self.masks.get(figure_id)
                if data is None:
                    raise ApiError(404, "Entity not found", {"message": f"no geometry {figure_id}"})
                suffix = "stl" if self.figures[figure_id]["geometryType"] == MESH else "nrrd"
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{figure_id}"; '
                    f'filename="{figure_id}.{suffix}"\r\nContent-Type: application/octet-stream'
                    "\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
            payload = b"".join(parts) + f"--{boundary}--\r\n".encode()
            return Reply(200, payload, f"multipart/form-data; boundary={boundary}")

        return handler

    def _strict(self, method: str, body: Json, rows: list[dict[str, Any]]) -> Json:
        return self.fake._page(method, body, rows)

    def tags_list(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "projectId")
        project = self.fake._project(body["projectId"])
        rows = [
            {
                "id": t["id"],
                "projectId": project["id"],
                "name": t["name"],
                "settings": {
                    "type": t.get("value_type"),
                    "values": t.get("values", []),
                    "applicableType": t.get("applicable_type", "all"),
                },
                "color": t.get("color"),
                "createdAt": project["createdAt"],
                "updatedAt": project["updatedAt"],
            }
            for t in self.fake.metas[project["id"]]["tags"]
        ]
        return self._strict("tags.list", body, rows)

    def object_classes_list(self, user: dict[str, Any], body: Json) -> Json:
        self.fake._require(body, "projectId")
        project = self.fake._project(body["projectId"])
        rows = [
            {
                "id": c["id"],
                "name": c["title"],
                "description": c.get("description", ""),
                "shape": c["shape"],
                "color": c.get("color"),
                "settings": c.get("geometry_config", {}),
                "createdAt": project["createdAt"],
                "updatedAt": project["updatedAt"],
            }
            for c in self.fake.metas[project["id"]]["classes"]
        ]
        return self._strict("advanced.object_classes.list", body, rows)


def attach(fake: FakeSupervisely) -> VideoState:
    """Add the video methods to ``fake`` (its ``video`` attribute holds their state)."""
    state = VideoState(fake)
    fake.methods.update(
        {
            "videos.list": state.videos_list,
            "videos.info": state.videos_info,
            "videos.bulk.add": state.videos_bulk_add,
            "videos.custom-data.set": state.custom_data_set,
            "videos.annotations.bulk.info": state.annotations_bulk_info,
            "videos.tags.bulk.add": state.video_tags_bulk_add,
            "videos.tags.remove": state.video_tags_remove,
            "annotation-objects.bulk.add": state.objects_bulk_add,
            "annotation-objects.bulk.remove": state.objects_bulk_remove,
            "annotation-objects.tags.bulk.add": state.object_tags_bulk_add,
            "figures.bulk.add": state.figures_bulk_add(fake.methods["figures.bulk.add"]),
            "volumes.list": state.volumes_list,
            "volumes.info": state.volumes_info,
            "volumes.bulk.add": state.volumes_bulk_add,
            "volumes.annotations.bulk.info": state.volumes_annotations_bulk_info,
            "volumes.tags.bulk.add": state.volume_tags_bulk_add,
            "figures.bulk.upload.geometry": state.upload_geometry(
                fake.methods["figures.bulk.upload.geometry"]
            ),
            "figures.list": state.figures_list(fake.methods["figures.list"]),
            "figures.bulk.download.geometry": state.download_geometry(
                fake.methods["figures.bulk.download.geometry"]
            ),
            "tags.list": state.tags_list,
            "advanced.object_classes.list": state.object_classes_list,
        }
    )
    return state


# --- a rich video project -----------------------------------------------------------------------

#: Every figure type a video project can hold, and one labelvault does not know.
VIDEO_SHAPES = ("rectangle", "polygon", "line", "point", "bitmap", "graph", "cuboid_2d")
UNKNOWN_SHAPE = "spline_ζ"
#: The corners of a 2D cuboid, as the platform names them.
CUBOID_2D_VERTICES = tuple(
    f"face{face}-{corner}"
    for face in (1, 2)
    for corner in ("topleft", "topright", "bottomright", "bottomleft")
)
#: The template of the graph class: the nodes of ``_geometry``'s graph figures.
GRAPH_TEMPLATE = {"nodes": {"nose": {"label": "nose"}, "left_eye": {}, "right_eye": {}}}


@dataclass(frozen=True)
class RichVideoProject:
    """What :func:`generate_rich_video_project` made, for assertions."""

    project_id: int
    dataset_ids: tuple[int, ...]
    video_ids: tuple[int, ...]
    link_videos: tuple[int, ...]


def _video_geometry(rng: random.Random, shape: str, width: int, height: int) -> Json:
    # Inside the frame even when rounded (the server rounds unless asked not to, and the
    # SDK's restore refuses a figure out of the frame): coordinates stay below size - 1/2.
    width, height = width - 1, height - 1
    if shape == "cuboid_2d":
        # The platform's 2D cuboid: eight named corners (its class template has these names).
        return {
            "vertices": {
                name: {"loc": [rng.uniform(0, width), rng.uniform(0, height) + 1 / 3]}
                for name in CUBOID_2D_VERTICES
            }
        }
    if shape == UNKNOWN_SHAPE:
        return {
            "controlPoints": [[rng.uniform(0, width), 0.1 + 0.2] for _ in range(4)],
            "tension": 1 / 3,
            "closed": False,
        }
    return _geometry(rng, shape, width, height)


def generate_rich_video_project(
    fake: FakeSupervisely,
    *,
    seed: int = 0,
    videos_per_dataset: int = 2,
    unknown_shape: bool = True,
) -> RichVideoProject:
    """Nested datasets, hash and link videos with meta and custom data, objects of every
    figure type (and an unknown one) with figures on the first, middle and last frames at
    sub-pixel coordinates, figure extras (priority, track, custom data, meta), video and object
    tags over frame ranges touching the first and last frames, duplicates, unicode names, and a
    video without annotations. Everything is written by the token's owner.

    ``unknown_shape``: include the class and figures of a shape no platform release knows (a
    real server holds only its own shapes; the SDK refuses a meta with another)."""
    rng = random.Random(seed)
    video = fake.video
    with fake.lock:
        project = fake.create_project(
            name="Видео λ — clips 🎬",
            workspace_id=fake.workspace_id,
            kind="videos",
            description="Dashcam — 行车记录",
            readme="# Clips\n\nEvery video figure type.\n",
            settings={"labelingInterface": "default", "allowDuplicateTags": True},
            custom_data={"source": "generator", "nested": {"f": [0.1, 1 / 3]}},
        )
        pid = project["id"]
        shapes = (*VIDEO_SHAPES, UNKNOWN_SHAPE) if unknown_shape else VIDEO_SHAPES
        classes = [
            {
                "title": f"cls {shape} ✓",
                "shape": shape,
                "color": "#AA3300",
                "description": shape,
                # A graph class carries its template, as the platform requires: the nodes
                # its figures use.
                **({"geometry_config": GRAPH_TEMPLATE} if shape == "graph" else {}),
            }
            for shape in shapes
        ]
        classes.append({"title": "anything", "shape": "any", "color": "#123456"})
        tags = [
            {"name": "weather", "value_type": "oneof_string", "values": ["rain", "sun", "снег"]},
            {"name": "speed", "value_type": "any_number"},
            {"name": "flag", "value_type": "none"},
            {"name": "ñote ✎", "value_type": "any_string"},
        ]
        meta = fake.set_meta(pid, {"classes": classes, "tags": tags})
        class_ids = {c["shape"]: c["id"] for c in meta["classes"]}
        tag_ids = {t["name"]: t["id"] for t in meta["tags"]}

        tree = [("clips", None), ("night 🌙", "clips"), ("テスト", None)]
        datasets: dict[str, int] = {}
        for name, parent in tree:
            ds = fake.create_dataset(
                pid,
                name,
                parent_id=datasets.get(parent) if parent else None,
                description=f"{name} videos",
                custom_data={"split": name} if parent is None else {},
            )
            datasets[name] = ds["id"]

        video_ids: list[int] = []
        links: list[int] = []
        counter = 0
        for ds_id in datasets.values():
            for n in range(videos_per_dataset):
                counter += 1
                frames = rng.randint(5, 12)
                width, height = rng.randint(160, 640), rng.randint(120, 480)
                fps = rng.choice([25.0, 29.97, 30.0])
                if counter % 3 == 0:
                    source = video.register_video(
                        frames=frames,
                        width=width,
                        height=height,
                        fps=fps,
                        link=f"http://media.fake.invalid/media/{ds_id}/{counter}.mp4",
                    )
                    made = video.create_video(
                        ds_id, f"клип_{counter:02d} link.mp4", link=source, meta={}
                    )
                    links.append(made["id"])
                else:
                    source = video.register_video(
                        frames=frames, width=width, height=height, fps=fps, seed=f"{seed}:{counter}"
                    )
                    made = video.create_video(
                        ds_id,
                        f"clip_{counter:02d} 動画.mov",
                        media_hash=source,
                        meta={"videoStreamIndex": 0, "note": "ü"} if n % 2 else {},
                        custom_data={"camera": "front", "gain": 0.125} if n == 0 else {},
                    )
                vid = made["id"]
                video_ids.append(vid)
                if counter == 2:
                    continue  # a video without annotations
                _annotate(
                    fake, vid, counter, rng, class_ids=class_ids, tag_ids=tag_ids, shapes=shapes
                )
        return RichVideoProject(
            project_id=pid,
            dataset_ids=tuple(datasets.values()),
            video_ids=tuple(video_ids),
            link_videos=tuple(links),
        )


def _annotate(
    fake: FakeSupervisely,
    vid: int,
    counter: int,
    rng: random.Random,
    *,
    class_ids: dict[str, int],
    tag_ids: dict[str, int],
    shapes: tuple[str, ...],
) -> None:
    """Tags, objects, figures and object tags of one video of the rich project."""
    video = fake.video
    login = fake.users[fake.user_id]["login"]
    stored = video.videos[vid]
    frames = stored["fileMeta"]["framesCount"]
    width, height = stored["fileMeta"]["width"], stored["fileMeta"]["height"]
    last = frames - 1
    for spec in (
        {"tagId": tag_ids["weather"], "value": "rain", "frameRange": [0, last]},
        {"tagId": tag_ids["weather"], "value": "rain", "frameRange": [0, last]},
        {"tagId": tag_ids["flag"], "frameRange": [last, last]},
        {"tagId": tag_ids["ñote ✎"], "value": "ещё — 注意"},
        {
            "tagId": tag_ids["speed"],
            "value": 0.1 + 0.2,
            "frameRange": [0, 0],
            "isFinished": False,
            "nonFinalValue": True,
            "customData": {"by": "x"},
        },
    ):
        video.add_video_tag(vid, spec, login=login)
    picked = [shapes[(counter + k) % len(shapes)] for k in range(4)] + ["any"]
    for k, shape in enumerate(picked):
        obj = video.create_object(vid, class_ids[shape], login=login)
        figure_type = "polygon" if shape == "any" else shape
        for frame in sorted({0, frames // 2, last, (k + 1) % frames}):
            spec: dict[str, Any] = {
                "objectId": obj["id"],
                "geometryType": figure_type,
                "geometry": _video_geometry(rng, figure_type, width, height),
                "meta": {"frame": frame, **({"note": "occluded"} if k == 1 else {})},
            }
            if k == 0:
                spec.update(priority=frame, trackId=f"trk-{obj['id']}")
            if k == 2:
                spec.update(customData={"by": "generator"}, nnCreated=True)
            video.create_figure(vid, spec, login=login)
        if k % 2 == 0:
            for _ in range(2):  # a duplicate object tag
                video.add_object_tag(
                    obj["id"],
                    {"tagId": tag_ids["speed"], "value": 42.5, "frameRange": [1, last]},
                    login=login,
                )
        else:
            video.add_object_tag(obj["id"], {"tagId": tag_ids["flag"]}, login=login)


# --- a multiview video project -------------------------------------------------------------------


@dataclass(frozen=True)
class MultiviewVideoProject:
    """What :func:`generate_multiview_video_project` made, for assertions."""

    project_id: int
    video_ids: tuple[int, ...]
    #: Each shared object's id → the videos its figures are on (two or more).
    shared: dict[int, tuple[int, ...]]


def generate_multiview_video_project(
    fake: FakeSupervisely, *, seed: int = 0
) -> MultiviewVideoProject:
    """The rich video project (three videos a dataset) in the ``multi_view`` labeling
    interface, plus in each dataset objects shared by its annotated videos (made without
    ``entityId``, as the platform's multiview upload makes them): one with figures on all of
    them, one on the first two, each with object tags (one duplicated)."""
    rng = random.Random(seed)
    video = fake.video
    login = fake.users[fake.user_id]["login"]
    rich = generate_rich_video_project(fake, seed=seed, videos_per_dataset=3)
    with fake.lock:
        pid = rich.project_id
        fake.projects[pid]["settings"] = {
            "labelingInterface": "multi_view",
            "groupImages": True,
            "groupImagesSync": True,
            "allowDuplicateTags": True,
        }
        meta = fake.metas[pid]
        class_ids = {c["shape"]: c["id"] for c in meta["classes"]}
        tag_ids = {t["name"]: t["id"] for t in meta["tags"]}
        shared: dict[int, tuple[int, ...]] = {}
        for ds_id in rich.dataset_ids:
            views = [
                v["id"]
                for v in video.videos.where("datasetId", [ds_id])
                if video.objects.count("entityId", v["id"])  # the annotated ones
            ]
            if len(views) < 2:
                continue
            for shape, on in (("rectangle", views), ("polygon", views[:2])):
                obj = video.create_object(None, class_ids[shape], login=login, dataset_id=ds_id)
                for vid in on:
                    stored = video.videos[vid]["fileMeta"]
                    last = stored["framesCount"] - 1
                    for frame in sorted({0, last}):
                        video.create_figure(
                            vid,
                            {
                                "objectId": obj["id"],
                                "geometryType": shape,
                                "geometry": _video_geometry(
                                    rng, shape, stored["width"], stored["height"]
                                ),
                                "meta": {"frame": frame},
                            },
                            login=login,
                        )
                video.add_object_tag(obj["id"], {"tagId": tag_ids["flag"]}, login=login)
                for _ in range(2):  # a duplicate object tag
                    video.add_object_tag(
                        obj["id"], {"tagId": tag_ids["ñote ✎"], "value": "общий"}, login=login
                    )
                shared[obj["id"]] = tuple(on)
        return MultiviewVideoProject(project_id=pid, video_ids=rich.video_ids, shared=shared)


# --- a rich volume project ----------------------------------------------------------------------


@dataclass(frozen=True)
class RichVolumeProject:
    """What :func:`generate_rich_volume_project` made, for assertions."""

    project_id: int
    volume_ids: tuple[int, ...]
    mask_ids: tuple[int, ...]
    mesh_ids: tuple[int, ...] = ()


def nrrd_bytes(rng: random.Random, dims: tuple[int, int, int]) -> bytes:
    """A gzip-free NRRD 3D mask of ``dims``: voxels 0 or 1, as the platform stores a mask, in
    a left-posterior-superior space (not the RAS the SDK re-orients masks to). Its header has
    a CR and dashes right after line ends, for the multipart parsers that carry it."""
    x, y, z = dims
    header = (
        "NRRD0004\n"
        "# a mask \r\n"
        "# -- \r\n"
        "type: uint8\n"
        "dimension: 3\n"
        "space: left-posterior-superior\n"
        f"sizes: {x} {y} {z}\n"
        "space directions: (0.7,0,0) (0,0.7,0) (0,0,2.5)\n"
        "kinds: domain domain domain\n"
        "encoding: raw\n"
        "space origin: (-10.5,20.25,0)\n"
        "\n"
    )
    return header.encode() + bytes(rng.getrandbits(1) for _ in range(x * y * z))


def stl_bytes(rng: random.Random, triangles: int) -> bytes:
    """A binary STL mesh of ``triangles`` facets with random float32 vertices; its 80-byte
    header holds a CR, dashes and a NUL, for the multipart parsers that carry it."""
    header = b"solid mesh \r\n--\x00".ljust(80, b" ")
    body = b"".join(
        struct.pack("<12fH", *(rng.uniform(-50.0, 50.0) for _ in range(12)), 0)
        for _ in range(triangles)
    )
    return header + struct.pack("<I", triangles) + body


def plane_size(plane: str, dims: tuple[int, int, int]) -> tuple[int, int]:
    """The (width, height) of a slice of ``plane`` in a volume of ``dims`` (x, y, z)."""
    x, y, z = dims
    return {"sagittal": (y, z), "coronal": (x, z), "axial": (x, y)}[plane]


def generate_rich_volume_project(
    fake: FakeSupervisely, *, seed: int = 0, meshes: bool = True
) -> RichVolumeProject:
    """Two datasets of volumes with objects, plane figures on all three planes (first and last
    slices, sub-pixel geometry), 3D masks with raw NRRD bytes, closed-surface meshes with raw
    STL bytes (unless ``meshes`` is false), volume and object tags (duplicates included),
    unicode names; written by the token's owner."""
    rng = random.Random(seed)
    state = fake.video
    login = fake.users[fake.user_id]["login"]
    with fake.lock:
        project = fake.create_project(
            name="Томография 🧠",
            workspace_id=fake.workspace_id,
            kind="volumes",
            description="CT",
            custom_data={"site": "A"},
        )
        pid = project["id"]
        meta = fake.set_meta(
            pid,
            {
                "classes": [
                    {"title": "liver ✓", "shape": "rectangle"},
                    {"title": "lesion", "shape": "polygon"},
                    {"title": "tumour 3D", "shape": "mask_3d"},
                    *([{"title": "organ mesh", "shape": MESH}] if meshes else []),
                ],
                "tags": [
                    {
                        "name": "phase",
                        "value_type": "oneof_string",
                        "values": ["arterial", "венозная"],
                    },
                    {"name": "ok", "value_type": "none"},
                ],
            },
        )
        class_ids = {c["title"]: c["id"] for c in meta["classes"]}
        tag_ids = {t["name"]: t["id"] for t in meta["tags"]}
        volume_ids: list[int] = []
        mask_ids: list[int] = []
        mesh_ids: list[int] = []
        for ds_name in ("scans", "scans 2 ✓"):
            ds = fake.create_dataset(pid, ds_name, description="", custom_data={"k": ds_name})
            for n in range(2):
                dims = (rng.randint(6, 9), rng.randint(5, 8), rng.randint(4, 6))
                media, _ = state.register_volume(dims=dims, seed=f"{seed}:{ds_name}:{n}")
                volume = state.create_volume(ds["id"], f"ct_{n} снимок.nrrd", media)
                vid = volume["id"]
                volume_ids.append(vid)
                state.add_video_tag(vid, {"tagId": tag_ids["ok"]}, login=login)
                state.add_video_tag(vid, {"tagId": tag_ids["ok"]}, login=login)  # duplicate
                state.add_video_tag(
                    vid, {"tagId": tag_ids["phase"], "value": "венозная"}, login=login
                )
                liver = state.create_object(vid, class_ids["liver ✓"], login=login)
                lesion = state.create_object(vid, class_ids["lesion"], login=login)
                tumour = state.create_object(vid, class_ids["tumour 3D"], login=login)
                state.add_object_tag(
                    liver["id"], {"tagId": tag_ids["phase"], "value": "arterial"}, login=login
                )
                sizes = {"sagittal": dims[0], "coronal": dims[1], "axial": dims[2]}
                for plane, normal in PLANES.items():
                    width, height = plane_size(plane, dims)
                    for index in (0, sizes[plane] - 1):
                        for obj, shape in ((liver, "rectangle"), (lesion, "polygon")):
                            state.create_figure(
                                vid,
                                {
                                    "objectId": obj["id"],
                                    "geometryType": shape,
                                    # Inside the slice even when rounded.
                                    "geometry": _geometry(rng, shape, width - 1, height - 1),
                                    "meta": {
                                        "sliceIndex": index,
                                        "planeName": plane,
                                        "normal": dict(normal),
                                    },
                                    "customData": {"slice": index} if shape == "polygon" else {},
                                },
                                login=login,
                            )
                mask = state.create_figure(
                    vid,
                    {
                        "objectId": tumour["id"],
                        "geometryType": "mask_3d",
                        "meta": {},
                        "customData": {"threshold": 0.5, "note": "ü"},
                    },
                    login=login,
                )
                state.masks[mask["id"]] = nrrd_bytes(rng, dims)
                mask_ids.append(mask["id"])
                if not meshes:
                    continue
                organ = state.create_object(vid, class_ids["organ mesh"], login=login)
                for n_mesh in range(1 + n):  # two meshes of one object on the second volume
                    mesh = state.create_figure(
                        vid,
                        {
                            "objectId": organ["id"],
                            "geometryType": MESH,
                            "meta": {},
                            "customData": {"mesh": n_mesh} if n_mesh else {},
                        },
                        login=login,
                    )
                    state.masks[mesh["id"]] = stl_bytes(rng, rng.randint(1, 6))
                    mesh_ids.append(mesh["id"])
        return RichVolumeProject(
            project_id=pid,
            volume_ids=tuple(volume_ids),
            mask_ids=tuple(mask_ids),
            mesh_ids=tuple(mesh_ids),
        )
