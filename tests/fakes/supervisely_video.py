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
- every content write moves the project's ``updatedAt``.

``figures.bulk.add`` is shared with images: a body with ``datasetId`` is an image call and goes
to the images handler, a body with a top-level ``entityId`` is a video call.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.supervisely import (
    ApiError,
    FakeSupervisely,
    IndexedTable,
    Json,
    _geometry,
    _round_geometry,
)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".3gp", ".flv", ".webm", ".wmv", ".mov", ".mkv")
_GEOMETRY_NOISE = frozenset({"id", "shape", "geometryType"})
_VIDEO_DERIVED = frozenset({"tags"})


def _bad(message: str) -> ApiError:
    return ApiError(400, "Validation error", {"message": message})


class VideoState:
    """The fake's video data and the handlers of the video methods."""

    def __init__(self, fake: FakeSupervisely) -> None:
        self.fake = fake
        self.videos = IndexedTable("datasetId")
        #: hash or link → file meta of the stored video
        self.media: dict[str, dict[str, Any]] = {}
        self.objects = IndexedTable("entityId")
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

    def _class(self, project_id: int, class_id: Any) -> dict[str, Any]:
        for cls in self.fake.metas[project_id]["classes"]:
            if cls["id"] == class_id:
                return cls
        raise _bad(f"class {class_id} is not in the project meta")

    def create_object(self, video_id: int, class_id: int, *, login: str) -> dict[str, Any]:
        video = self._video(video_id)
        self._class(video["projectId"], class_id)
        now = self.fake.tick()
        obj = {
            "id": self.fake.next_id(),
            "entityId": video_id,
            "classId": class_id,
            "datasetId": video["datasetId"],
            "projectId": video["projectId"],
            "labelerLogin": login,
            "createdAt": now,
            "updatedAt": now,
        }
        self.objects[obj["id"]] = obj
        self.fake.touch_project(video["projectId"])
        return obj

    def create_figure(self, video_id: int, spec: dict[str, Any], *, login: str) -> dict[str, Any]:
        """A figure of an object on one frame (``spec`` as ``figures.bulk.add`` sends it)."""
        video = self._video(video_id)
        obj = self.objects.get(spec.get("objectId"))
        if obj is None or obj["entityId"] != video_id:
            raise _bad(f"object {spec.get('objectId')} is not an object of video {video_id}")
        meta = spec.get("meta")
        frame = meta.get("frame") if isinstance(meta, dict) else None
        frames = video["fileMeta"]["framesCount"]
        if not isinstance(frame, int) or not 0 <= frame < frames:
            raise _bad(f"meta.frame {frame!r} is not a frame of video {video_id} (0…{frames - 1})")
        cls = self._class(video["projectId"], obj["classId"])
        geometry_type = spec.get("geometryType")
        if cls["shape"] not in ("any", geometry_type):
            raise _bad(f"class {cls['title']!r} is a {cls['shape']}, not a {geometry_type}")
        geometry = spec.get("geometry")
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
        video = self._video(video_id)
        tag = self._tag(video["projectId"], spec, video["fileMeta"]["framesCount"], login=login)
        self.video_tags.setdefault(video_id, []).append(tag)
        return tag

    def add_object_tag(self, object_id: int, spec: dict[str, Any], *, login: str) -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if obj is None:
            raise _bad(f"object {object_id} does not exist")
        video = self.videos[obj["entityId"]]
        tag = self._tag(obj["projectId"], spec, video["fileMeta"]["framesCount"], login=login)
        self.object_tags.setdefault(object_id, []).append(tag)
        return tag

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
            for obj in self.objects.where("entityId", [video["id"]])
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
            "description": "",
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
        for spec in body["annotationObjects"]:
            fake._require(spec, "classId", "entityId")
            video = self._video(spec["entityId"])
            if video["datasetId"] != body["datasetId"]:
                raise _bad(f"video {spec['entityId']} is not in dataset {body['datasetId']}")
            self._class(video["projectId"], spec["classId"])
        return [
            {"id": self.create_object(s["entityId"], s["classId"], login=user["login"])["id"]}
            for s in body["annotationObjects"]
        ]

    def objects_bulk_remove(self, user: dict[str, Any], body: Json) -> Json:
        if not isinstance(body, list):
            raise _bad("the body is a JSON array of object ids")
        for object_id in body:
            obj = self.objects.get(object_id)
            if obj is None:
                continue
            for figure in self.figures.where("entityId", [obj["entityId"]]):
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
            frames = self.videos[obj["entityId"]]["fileMeta"]["framesCount"]
            self._check_tag(obj["projectId"], spec, frames)
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
            video = self._video(body["entityId"])
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
            "tags.list": state.tags_list,
            "advanced.object_classes.list": state.object_classes_list,
        }
    )
    return state


# --- a rich video project -----------------------------------------------------------------------

#: Every figure type a video project can hold, and one labelvault does not know.
VIDEO_SHAPES = ("rectangle", "polygon", "line", "point", "bitmap", "graph", "cuboid_2d")
UNKNOWN_SHAPE = "spline_ζ"


@dataclass(frozen=True)
class RichVideoProject:
    """What :func:`generate_rich_video_project` made, for assertions."""

    project_id: int
    dataset_ids: tuple[int, ...]
    video_ids: tuple[int, ...]
    link_videos: tuple[int, ...]


def _video_geometry(rng: random.Random, shape: str, width: int, height: int) -> Json:
    if shape == "cuboid_2d":
        names = [f"v{n}" for n in range(8)]
        return {
            "nodes": {
                name: {"loc": [rng.uniform(0, width), rng.uniform(0, height) + 1 / 3]}
                for name in names
            },
            "edges": [{"src": names[n], "dst": names[(n + 1) % 8]} for n in range(8)],
        }
    if shape == UNKNOWN_SHAPE:
        return {
            "controlPoints": [[rng.uniform(0, width), 0.1 + 0.2] for _ in range(4)],
            "tension": 1 / 3,
            "closed": False,
        }
    return _geometry(rng, shape, width, height)


def generate_rich_video_project(
    fake: FakeSupervisely, *, seed: int = 0, videos_per_dataset: int = 2
) -> RichVideoProject:
    """Nested datasets, hash and link videos with meta and custom data, objects of every
    figure type (and an unknown one) with figures on the first, middle and last frames at
    sub-pixel coordinates, figure extras (priority, track, custom data, meta), video and object
    tags over frame ranges touching the first and last frames, duplicates, unicode names, and a
    video without annotations. Everything is written by the token's owner."""
    rng = random.Random(seed)
    video = fake.video
    with fake.lock:
        project = fake.create_project(
            name="Видео λ — clips 🎬",
            workspace_id=fake.workspace_id,
            kind="videos",
            description="Dashcam — 行车记录",
            readme="# Clips\n\nEvery video figure type.\n",
            settings={"labelingInterface": "default"},
            custom_data={"source": "generator", "nested": {"f": [0.1, 1 / 3]}},
        )
        pid = project["id"]
        shapes = (*VIDEO_SHAPES, UNKNOWN_SHAPE)
        classes = [
            {"title": f"cls {shape} ✓", "shape": shape, "color": "#AA3300", "description": shape}
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
                _annotate(fake, vid, counter, rng, class_ids=class_ids, tag_ids=tag_ids)
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
) -> None:
    """Tags, objects, figures and object tags of one video of the rich project."""
    video = fake.video
    login = fake.users[fake.user_id]["login"]
    stored = video.videos[vid]
    frames = stored["fileMeta"]["framesCount"]
    width, height = stored["fileMeta"]["width"], stored["fileMeta"]["height"]
    shapes = (*VIDEO_SHAPES, UNKNOWN_SHAPE)
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
