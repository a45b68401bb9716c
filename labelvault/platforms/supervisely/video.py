"""Supervisely video projects: their rows, their capture and the writes of their restore.

A video project has the datasets of an images project; its items are videos (by hash or link,
never frames), each with a ``videos`` row (frames count, fps, custom data). Its annotation is
objects (a class instance, ``objects``), figures of an object on one frame each (``figures``,
exact geometry as the server sent it) and tags of the video or of an object over a range of
frames (``video_tags``). Capture reads ``videos.list`` and ``videos.annotations.bulk.info``
with ``integerCoords: false`` (the reference, §2–§3); restore adds videos with
``videos.bulk.add``, then objects, figures (``meta.frame``) and tags, linking them by the new
ids (§4–§5).

Keys extend the image keys, so every row sorts right after its video:

==============  ====================================================
table           key
==============  ====================================================
items, videos   ``<dataset key>#<video id>``
objects         ``<item key>@<object id>``
figures         ``<object key>#<frame, 8 digits>#<figure id>``
video_tags      ``<item or object key>!<assignment id>``
==============  ====================================================

Fingerprints leave out ids, timestamps and authors: an object is its video, class and place
among the video's objects of that class; a figure refers to its object that way, as does a tag.
A figure type the schema does not know is kept with its raw JSON (type ``unknown``).

Multiview projects (labeling interface ``multi_view``, §4.7 and §14.1): the videos of a
dataset are views, and one object may have figures on several of them. Each view that lists it
gives it a row, all with the same source object id in ``raw``; its place among its class is by
what it holds on that view (figures, tags), since ids, which follow creation order, cannot be
kept. Restore creates such an object once, without ``entityId``, and gives each of its rows the
new id; its tags, listed by every view, are added once. The source ids already restored are
learnt from the journal too, so a resumed restore keeps objects shared across its batches.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from labelvault.errors import PaginationError, RequestRejected
from labelvault.platforms.base import TablePage
from labelvault.platforms.keyed import ChildTable
from labelvault.platforms.streams import Row
from labelvault.platforms.supervisely.api import SuperviselyApi
from labelvault.platforms.supervisely.reconcile import SuperviselyReconcile
from labelvault.platforms.supervisely.rows import (
    MULTIVIEW,
    CaptureContext,
    Dataset,
    as_int,
    loads,
    pad,
    table_page,
    tag_order,
    timestamp,
)
from labelvault.snapshot.schema import GeometryType, OwnerType, canonical_json, fingerprint

__all__ = ["VIDEO_LAYOUT", "VideoCapture", "VideoRestore"]

logger = logging.getLogger("labelvault.platforms.supervisely")

#: Objects of each video, their figures, then the tags of videos and objects.
VIDEO_LAYOUT: tuple[ChildTable, ...] = (
    ChildTable("objects", "item_key", "item_key"),
    ChildTable("figures", "item_key", "object_key"),
    ChildTable("video_tags", "owner_key", "owner_key"),
)
#: ``videos.annotations.bulk.info`` takes at most 100 ids; ``videos.bulk.add`` items per call.
ANNOTATION_IDS = 100
VIDEOS_PER_ADD = 50
FIGURES_PER_ADD = 100
OBJECT_TAGS_PER_ADD = 100
FRAME_WIDTH = 8
#: Volume figures whose geometry is bytes (3D mask NRRD, closed-surface mesh STL): created
#: without geometry, then uploaded with ``figures.bulk.upload.geometry``.
SPATIAL_GEOMETRY = frozenset({GeometryType.MASK_3D.value, GeometryType.CLOSED_SURFACE_MESH.value})


# --- rows ----------------------------------------------------------------------------------


def _file_meta(video: Mapping[str, Any]) -> dict[str, Any]:
    meta = video.get("fileMeta")
    return meta if isinstance(meta, dict) else {}


def fps_of(file_meta: Mapping[str, Any]) -> float | None:
    """Frames per second: frames count over duration, else from the first two timecodes."""
    frames = file_meta.get("framesCount")
    duration = file_meta.get("duration")
    if isinstance(frames, int | float) and isinstance(duration, int | float) and duration > 0:
        return float(frames) / float(duration)
    codes = file_meta.get("framesToTimecodes")
    if isinstance(codes, list) and len(codes) >= 2:
        step = float(codes[1]) - float(codes[0])
        return 1.0 / step if step > 0 else None
    return None


def video_item_row(video: dict[str, Any], key: str, dataset: Dataset) -> Row:
    """The ``items`` row of a video (kind ``video``)."""
    file_meta = _file_meta(video)
    meta = video.get("meta") or {}
    content = {
        "item": [dataset.path, video.get("name")],
        "kind": "video",
        "hash": video.get("hash"),
        "link": video.get("link"),
        "meta": meta,
        "frames_count": file_meta.get("framesCount"),
        "width": file_meta.get("width"),
        "height": file_meta.get("height"),
        "duration": file_meta.get("duration"),
    }
    return {
        "key": key,
        "fingerprint": fingerprint(content),
        "dataset_key": dataset.key,
        "name": video.get("name"),
        "kind": "video",
        "hash": video.get("hash"),
        "link": video.get("link"),
        "size_bytes": as_int(file_meta.get("size")),
        "width": as_int(file_meta.get("width")),
        "height": as_int(file_meta.get("height")),
        "meta": canonical_json(meta),
        "created_at": timestamp(video.get("createdAt")),
        "updated_at": timestamp(video.get("updatedAt")),
        "raw": canonical_json(video),
    }


def video_row(video: dict[str, Any], key: str, item_ref: list[Any], description: str = "") -> Row:
    """The ``videos`` row: what only a video has (frames, fps, custom data, and the
    annotation's description, which no call of the platform sets: kept, not restored)."""
    file_meta = _file_meta(video)
    custom = video.get("customData") or {}
    duration = file_meta.get("duration")
    content: dict[str, Any] = {"item": item_ref, "custom_data": custom}
    raw: dict[str, Any] = {"customData": custom, "fileMeta": file_meta}
    if description:
        # Only when there is one, so versions of videos without one keep their fingerprints.
        content["description"] = raw["description"] = description
    return {
        "key": key,
        "fingerprint": fingerprint(content),
        "item_key": key,
        "frames_count": as_int(file_meta.get("framesCount")),
        "fps": fps_of(file_meta),
        "duration": float(duration) if isinstance(duration, int | float) else None,
        "custom_data": canonical_json(custom),
        "raw": canonical_json(raw),
    }


def object_row(obj: dict[str, Any], key: str, item_key: str, ref: dict[str, Any]) -> Row:
    """One ``objects`` row; ``ref`` is its id-free reference (video, class, ordinal)."""
    raw = {k: v for k, v in obj.items() if k != "tags"}
    content = {
        "object": ref,
        "meta": obj.get("meta") or {},
        "custom_data": obj.get("customData") or {},
        "description": obj.get("description") or "",
    }
    return {
        "key": key,
        "fingerprint": fingerprint(content),
        "item_key": item_key,
        "class_name": ref["class"],
        "author": obj.get("labelerLogin"),
        "created_at": timestamp(obj.get("createdAt")),
        "updated_at": timestamp(obj.get("updatedAt")),
        "raw": canonical_json(raw),
    }


def figure_key(object_key: str, frame: int, figure_id: Any) -> str:
    return f"{object_key}#{frame:0{FRAME_WIDTH}d}#{pad(figure_id)}"


def figure_row(
    figure: dict[str, Any],
    frame: int,
    item_key: str,
    object_key: str,
    *,
    object_ref: Mapping[str, Any] | None,
    class_name: str | None,
) -> Row:
    """One ``figures`` row: the raw figure, its frame and exact geometry."""
    raw_type = figure.get("geometryType")
    geometry = figure.get("geometry")
    content = {
        "object": object_ref,
        "frame": frame,
        "geometry_type": raw_type,
        "geometry": geometry,
        "meta": figure.get("meta") or {},
        "priority": figure.get("priority"),
        "track_id": figure.get("trackId"),
        "smart_tool_input": figure.get("smartToolInput"),
        "custom_data": figure.get("customData") or {},
        "nn_created": bool(figure.get("nnCreated")),
        "nn_updated": bool(figure.get("nnUpdated")),
    }
    return {
        "key": figure_key(object_key, frame, figure["id"]),
        "fingerprint": fingerprint(content),
        "item_key": item_key,
        "object_key": object_key,
        "frame_index": frame,
        "class_name": class_name,
        "geometry_type": GeometryType(str(raw_type)).value,
        "geometry": None if geometry is None else canonical_json(geometry),
        "author": figure.get("labelerLogin"),
        "created_at": timestamp(figure.get("createdAt")),
        "updated_at": timestamp(figure.get("updatedAt")),
        "raw": canonical_json({**figure, "frameIndex": frame}),
    }


def frame_range(tag: Mapping[str, Any]) -> tuple[int | None, int | None]:
    value = tag.get("frameRange")
    if isinstance(value, list) and len(value) == 2:
        return as_int(value[0]), as_int(value[1])
    return None, None


def video_tag_row(
    tag: dict[str, Any],
    ordinal: int,
    owner_key: str,
    owner_type: OwnerType,
    owner_ref: Mapping[str, Any],
    *,
    context: CaptureContext,
) -> Row:
    """One ``video_tags`` row: a tag of a video or an object, over a frame range."""
    meta = context.tag_metas.get(tag.get("tagId")) or {}
    name = tag.get("name") or meta.get("name")
    first, last = frame_range(tag)
    content = {
        "owner": owner_ref,
        "name": name,
        "value": tag.get("value"),
        "frame_range": [first, last] if first is not None else None,
        "is_finished": tag.get("isFinished", True),
        "non_final_value": tag.get("nonFinalValue", False),
        "custom_data": tag.get("customData") or {},
    }
    assignment = tag.get("id")
    suffix = pad(assignment) if assignment is not None else f"~{ordinal:06d}"
    return {
        "key": f"{owner_key}!{suffix}",
        "fingerprint": fingerprint(content),
        "owner_type": owner_type.value,
        "owner_key": owner_key,
        "name": name,
        "value": canonical_json(tag.get("value")),
        "frame_from": first,
        "frame_to": last,
        "author": tag.get("labelerLogin"),
        "created_at": timestamp(tag.get("createdAt")),
        "updated_at": timestamp(tag.get("updatedAt")),
        "raw": canonical_json(tag),
    }


#: An object's key, its id-free reference and its class, by the object's id.
ObjectRefs = dict[int, tuple[str, dict[str, Any] | None, str | None]]


def object_and_tag_rows(
    annotation: dict[str, Any], item_key: str, item_ref: list[Any], context: CaptureContext
) -> tuple[list[Row], list[Row], ObjectRefs]:
    """Objects and tags (of the entity and of its objects) of one video's or volume's
    annotation, in key order, and the objects by id for their figures."""
    item_owner = {"item": item_ref}
    tags = [
        video_tag_row(tag, n, item_key, OwnerType.ITEM, item_owner, context=context)
        for n, tag in enumerate(sorted(annotation.get("tags") or [], key=tag_order))
    ]
    objects: list[Row] = []
    refs: ObjectRefs = {}
    of_class: Counter[Any] = Counter()
    listed = sorted(annotation.get("objects") or [], key=lambda o: int(o["id"]))
    if context.multiview:
        # Ids follow creation order, which a restore cannot keep for objects shared across
        # batches of videos: an object's place among its class is by what it holds instead.
        held = _held_by_object(annotation)
        listed.sort(key=lambda o: held.get(int(o["id"]), ""))
    for obj in listed:
        cls = obj.get("classTitle") or (context.classes.get(obj.get("classId")) or {}).get("title")
        ref = {"item": item_ref, "class": cls, "ordinal": of_class[cls]}
        of_class[cls] += 1
        key = f"{item_key}@{pad(obj['id'])}"
        objects.append(object_row(obj, key, item_key, ref))
        refs[int(obj["id"])] = (key, ref, cls)
        for n, tag in enumerate(sorted(obj.get("tags") or [], key=tag_order)):
            owner = {"object": ref}
            tags.append(video_tag_row(tag, n, key, OwnerType.OBJECT, owner, context=context))
    if context.multiview:  # back to key order
        objects.sort(key=lambda row: row["key"])
        tags.sort(key=lambda row: row["key"])
    return objects, tags, refs


def owner_of(
    figure: Mapping[str, Any], refs: ObjectRefs, item_key: str, entity: Any
) -> tuple[str, dict[str, Any] | None, str | None]:
    """The figure's object (key, reference, class); an unknown one keeps its key only."""
    object_id = as_int(figure.get("objectId"))
    known = refs.get(object_id) if object_id is not None else None
    if known is None:
        logger.warning(
            "%s: figure %s names object %s, which it lacks", entity, figure.get("id"), object_id
        )
        return f"{item_key}@{pad(object_id or 0)}", None, None
    return known


def annotation_rows(
    video: dict[str, Any],
    annotation: dict[str, Any],
    item_key: str,
    item_ref: list[Any],
    context: CaptureContext,
) -> tuple[list[Row], list[Row], list[Row]]:
    """Objects, figures and tags of one video's annotation, each list in key order."""
    objects, tags, refs = object_and_tag_rows(annotation, item_key, item_ref, context)
    figures: list[Row] = []
    for frame in annotation.get("frames") or []:
        index = as_int(frame.get("index"))
        for figure in frame.get("figures") or []:
            at = index if index is not None else as_int((figure.get("meta") or {}).get("frame"))
            key, parent, cls = owner_of(figure, refs, item_key, f"video {video.get('id')}")
            figures.append(
                figure_row(figure, at or 0, item_key, key, object_ref=parent, class_name=cls)
            )
    figures.sort(key=lambda row: row["key"])
    return objects, figures, tags


# --- capture -------------------------------------------------------------------------------


class VideoCapture(SuperviselyApi):
    """Reads the videos of a project, batch by batch, with their annotations."""

    def _video_batches(self, dataset: Dataset, project: str) -> Iterator[list[dict[str, Any]]]:
        """The dataset's videos in id order, a batch (≤ 100, the annotation call's limit) at
        a time."""
        size = min(self.batch_size, ANNOTATION_IDS)
        body: dict[str, Any] = {
            "datasetId": int(dataset.info["id"]),
            "filter": [],
            "sort": "id",
            "sort_order": "asc",
            "rawVideoMeta": False,
            "forceMetadataForLinks": False,
        }
        pending: list[dict[str, Any]] = []
        last_id = -1
        for page in self._list(
            "videos.list",
            body,
            project=project,
            mode=self.image_listing,
            per_page=self.list_page_size,
        ):
            for video in page:
                video_id = int(video["id"])
                if video_id <= last_id:
                    raise PaginationError(
                        f"supervisely: videos.list of dataset {dataset.info['id']} returned "
                        f"video {video_id} after {last_id} (ids must increase)",
                        platform=self.name,
                        project=project,
                    )
                last_id = video_id
                pending.append(video)
                if len(pending) >= size:
                    yield pending
                    pending = []
        if pending:
            yield pending

    def _video_annotations(
        self, dataset_id: int, videos: Sequence[Mapping[str, Any]], project: str
    ) -> list[dict[str, Any]]:
        """One annotation per video, in the videos' order, with exact coordinates."""
        ids = [int(video["id"]) for video in videos]
        body = {"datasetId": dataset_id, "videoIds": ids, "integerCoords": False}
        answer = self._call("videos.annotations.bulk.info", body, project=project)
        if not isinstance(answer, list) or len(answer) != len(ids):
            got = len(answer) if isinstance(answer, list) else type(answer).__name__
            raise RequestRejected(
                f"supervisely: videos.annotations.bulk.info answered {got} annotations for "
                f"{len(ids)} videos",
                platform=self.name,
                project=project,
            )
        for video, annotation in zip(videos, answer, strict=True):
            found = annotation.get("videoId") if isinstance(annotation, dict) else annotation
            if found != video["id"]:
                raise RequestRejected(
                    "supervisely: videos.annotations.bulk.info answered out of order (expected "
                    f"video {video['id']}, got {found!r})",
                    platform=self.name,
                    project=project,
                )
        return answer

    def _capture_video_batch(
        self, dataset: Dataset, videos: list[dict[str, Any]], context: CaptureContext
    ) -> list[TablePage]:
        """Items, videos, objects, figures and tags of one batch (runs in a worker thread)."""
        annotations = self._video_annotations(int(dataset.info["id"]), videos, context.project)
        tables: dict[str, list[Row]] = {
            "items": [],
            "videos": [],
            "objects": [],
            "figures": [],
            "video_tags": [],
        }
        for video, annotation in zip(videos, annotations, strict=True):
            item_key = f"{dataset.key}#{pad(video['id'])}"
            item_ref = [dataset.path, video.get("name")]
            tables["items"].append(video_item_row(video, item_key, dataset))
            description = annotation.get("description")
            tables["videos"].append(
                video_row(
                    video,
                    item_key,
                    item_ref,
                    description if isinstance(description, str) else "",
                )
            )
            objects, figures, tags = annotation_rows(video, annotation, item_key, item_ref, context)
            tables["objects"] += objects
            tables["figures"] += figures
            tables["video_tags"] += tags
        return [table_page(name, found) for name, found in tables.items() if found]


# --- restore -------------------------------------------------------------------------------


def _chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _by_owner(rows: Sequence[Row], column: str) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row[column], []).append(row)
    return grouped


def _tag_payload(row: Row, tag_id: int) -> dict[str, Any]:
    raw = loads(row["raw"])
    payload: dict[str, Any] = {
        "tagId": tag_id,
        "name": row.get("name"),
        "isFinished": raw.get("isFinished", True),
        "nonFinalValue": raw.get("nonFinalValue", False),
    }
    if "value" in raw:
        payload["value"] = raw["value"]
    if row.get("frame_from") is not None:
        payload["frameRange"] = [row["frame_from"], row["frame_to"]]
    if raw.get("customData"):
        payload["customData"] = raw["customData"]
    return payload


class VideoRestore(SuperviselyReconcile):
    """Restores videos, their objects, figures and tags; finds what an interrupted attempt
    created (by name for videos, by content for the rest, never an id this run was answered)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ids of objects, figures and tags whose creation this process was answered
        self._answered: set[int] = set()
        #: (project, table, key) → the id the answer named, kept when a later call of the same
        #: step fails (the step's result is then lost, but not what this process heard)
        self._answered_rows: dict[tuple[str, str, str], str] = {}
        #: projects restored in the ``multi_view`` labeling interface
        self._multiview: set[str] = set()
        #: source object id → its new object, and source tag assignment id of an object tag →
        #: its new one: a multiview object (and each of its tags) is created once, however
        #: many views list it. Fed by this process's answers and by the journal's finished
        #: steps (:meth:`remember_restored`), so a resumed restore keeps sharing.
        self._shared_objects: dict[int, str] = {}
        self._shared_tags: dict[int, str] = {}
        self._shared_lock = threading.Lock()

    def remember_project(self, project_id: str, source: Row) -> None:
        """Remember a multiview project: its objects are shared."""
        if is_multiview(source):
            self._multiview.add(project_id)
        super().remember_project(project_id, source)

    def forget_shared(self) -> None:
        """Start a restore: no source object or tag is known to exist yet."""
        with self._shared_lock:
            self._shared_objects.clear()
            self._shared_tags.clear()

    def remember_restored(self, table: str, ids: Mapping[str, str]) -> None:
        """Learn from a finished step (key → new id) which source objects and object tags
        already exist: the source ids are in the keys (``…@<object id>``, ``…!<tag id>``)."""
        if table == "objects":
            found = {_source_id(key, "@"): new for key, new in ids.items()}
            target = self._shared_objects
        elif table == "video_tags":
            found = {_source_id(key, "!"): new for key, new in ids.items() if "@" in key}
            target = self._shared_tags
        else:
            return
        with self._shared_lock:
            for source_id, new in found.items():
                if source_id is not None:
                    target.setdefault(source_id, new)

    def _paired(
        self, method: str, answer: Any, rows: Sequence[Row], *, project_id: str, table: str
    ) -> dict[str, str]:
        """A positional bulk answer (one ``{"id"}`` per item sent, in order) as key → id."""
        if not isinstance(answer, list) or len(answer) != len(rows):
            got = len(answer) if isinstance(answer, list) else type(answer).__name__
            raise RequestRejected(
                f"supervisely: {method} answered {got} ids for {len(rows)} items",
                platform=self.name,
                project=project_id,
            )
        ids = [int(entry["id"]) for entry in answer]
        self._answered.update(ids)
        paired = {row["key"]: str(i) for row, i in zip(rows, ids, strict=True)}
        for key, new_id in paired.items():
            self._answered_rows[project_id, table, key] = new_id
        return paired

    # --- videos ----------------------------------------------------------------------------

    def add_videos(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        """Add videos by hash or link with their meta, then their custom data."""
        dataset = self._dataset_id(dataset_id)
        ids: dict[str, str] = {}
        for chunk in _chunks(rows, VIDEOS_PER_ADD):
            videos = []
            for row in chunk:
                entry: dict[str, Any] = {"title": row["name"]}
                if row.get("hash"):
                    entry["hash"] = row["hash"]
                elif row.get("link"):
                    entry["link"] = row["link"]
                else:
                    raise RequestRejected(
                        f"supervisely: video {row['key']} has neither hash nor link",
                        platform=self.name,
                        project=project_id,
                    )
                entry["meta"] = loads(row.get("meta")) or {}
                videos.append(entry)
            body = {"datasetId": dataset, "videos": videos, "forceMetadataForLinks": True}
            created = self._call("videos.bulk.add", body, project=project_id, idempotent=False)
            by_name = {
                str(video.get("name")): str(video["id"])
                for video in (created if isinstance(created, list) else [])
            }
            found = {row["key"]: by_name[row["name"]] for row in chunk if row["name"] in by_name}
            if len(found) != len(chunk):
                raise RequestRejected(
                    f"supervisely: videos.bulk.add answered {len(by_name)} videos named as "
                    f"requested for {len(chunk)} sent",
                    platform=self.name,
                    project=project_id,
                )
            self._set_custom_data(project_id, chunk, found)
            ids.update(found)
        return ids

    def _set_custom_data(
        self, project_id: str, rows: Sequence[Row], ids: Mapping[str, str]
    ) -> None:
        for row in rows:
            custom = loads(row["raw"]).get("customData")
            if custom and row["key"] in ids:
                body = {"id": int(ids[row["key"]]), "customData": custom}
                self._call("videos.custom-data.set", body, project=project_id)

    def _landed_videos(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        names = {row["name"]: row["key"] for row in rows}
        body = {
            "datasetId": self._dataset_id(dataset_id),
            "filter": [{"field": "name", "operator": "in", "value": sorted(names)}],
        }
        landed = {
            names[video["name"]]: str(video["id"])
            for page in self._list("videos.list", body, project=project_id)
            for video in page
            if video.get("name") in names
        }
        self._set_custom_data(project_id, rows, landed)  # it may not have landed
        return landed

    # --- objects, figures, tags ------------------------------------------------------------

    def add_objects(
        self,
        project_id: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """One ``annotation-objects.bulk.add`` per video, ids paired by position; in a
        multiview project, see :meth:`_add_shared_objects`."""
        if project_id in self._multiview:
            return self._add_shared_objects(project_id, dataset_id, rows)
        ids: dict[str, str] = {}
        for item_key, owned in _by_owner(rows, "item_key").items():
            entity = int(owners[item_key])
            objects = []
            for row in owned:
                objects.append({"classId": self._class_id(project_id, row), "entityId": entity})
            body = {"datasetId": self._dataset_id(dataset_id), "annotationObjects": objects}
            answer = self._call(
                "annotation-objects.bulk.add", body, project=project_id, idempotent=False
            )
            ids.update(
                self._paired(
                    "annotation-objects.bulk.add",
                    answer,
                    owned,
                    project_id=project_id,
                    table="objects",
                )
            )
        return ids

    def _class_id(self, project_id: str, row: Row) -> int:
        class_id = self._defs(project_id).class_ids.get(row.get("class_name") or "")
        if class_id is None:
            raise RequestRejected(
                f"supervisely: object {row['key']} has class {row.get('class_name')!r}, "
                "which is not in the restored meta",
                platform=self.name,
                project=project_id,
            )
        return class_id

    def _add_shared_objects(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        """Multiview objects (reference §4.7): created without ``entityId``, once per source
        object however many videos list it; every row of it gets the one new id."""
        with self._shared_lock:  # two batches must not both create one shared object
            ids: dict[str, str] = {}
            todo: dict[int, list[Row]] = {}
            for row in rows:
                source_id = as_int(loads(row["raw"]).get("id"))
                if source_id is None:
                    source_id = _source_id(row["key"], "@")
                if source_id is None:
                    raise RequestRejected(
                        f"supervisely: object {row['key']} has no source id to share it by",
                        platform=self.name,
                        project=project_id,
                    )
                if source_id in self._shared_objects:
                    ids[row["key"]] = self._shared_objects[source_id]
                else:
                    todo.setdefault(source_id, []).append(row)
            firsts = [owned[0] for owned in todo.values()]
            if firsts:
                body = {
                    "datasetId": self._dataset_id(dataset_id),
                    "annotationObjects": [
                        {"classId": self._class_id(project_id, row)} for row in firsts
                    ],
                }
                answer = self._call(
                    "annotation-objects.bulk.add", body, project=project_id, idempotent=False
                )
                made = self._paired(
                    "annotation-objects.bulk.add",
                    answer,
                    firsts,
                    project_id=project_id,
                    table="objects",
                )
                for source_id, owned in todo.items():
                    new = made[owned[0]["key"]]
                    self._shared_objects[source_id] = new
                    ids.update({row["key"]: new for row in owned})
            return ids

    @staticmethod
    def _video_figure_payload(row: Row, object_id: int) -> dict[str, Any]:
        raw = loads(row["raw"])
        meta = dict(raw.get("meta") or {})
        if "frameIndex" in raw:  # a video figure: its frame travels as meta.frame
            meta["frame"] = row["frame_index"]
        payload: dict[str, Any] = {
            "objectId": object_id,
            "geometryType": raw.get("geometryType"),
            "meta": meta,
            "nnCreated": bool(raw.get("nnCreated")),
            "nnUpdated": bool(raw.get("nnUpdated")),
        }
        if raw.get("geometryType") not in SPATIAL_GEOMETRY:  # their bytes go up after
            payload["geometry"] = raw.get("geometry")
        for key in ("priority", "trackId", "smartToolInput", "customData"):
            if raw.get(key) is not None:
                payload[key] = raw[key]
        return payload

    def add_figures(
        self, project_id: str, rows: Sequence[Row], owners: Mapping[str, str]
    ) -> dict[str, str]:
        """Figures with their frame in ``meta.frame`` and geometry exactly as captured."""
        ids: dict[str, str] = {}
        for item_key, owned in _by_owner(rows, "item_key").items():
            for chunk in _chunks(owned, FIGURES_PER_ADD):
                figures = [
                    self._video_figure_payload(row, int(owners[row["object_key"]])) for row in chunk
                ]
                body = {"entityId": int(owners[item_key]), "figures": figures}
                answer = self._call("figures.bulk.add", body, project=project_id, idempotent=False)
                ids.update(
                    self._paired(
                        "figures.bulk.add", answer, chunk, project_id=project_id, table="figures"
                    )
                )
        return ids

    def add_video_tags(
        self, project_id: str, rows: Sequence[Row], owners: Mapping[str, str]
    ) -> dict[str, str]:
        """Tags of videos (one call per video) and of objects (≤ 100 per call), duplicates
        kept, each with its value and frame range. Every view of a multiview object lists its
        tags: each of them is added once, and all its rows get the one new id."""
        if project_id not in self._multiview:
            return self._add_tags(project_id, rows, owners)
        with self._shared_lock:
            done = dict(self._shared_tags)
        ids: dict[str, str] = {}
        send: list[Row] = []
        twins: dict[int, list[Row]] = {}
        for row in rows:
            source = self._shared_tag(row)
            if source is None:
                send.append(row)
            elif source in done:
                ids[row["key"]] = done[source]
            elif source in twins:
                twins[source].append(row)
            else:
                twins[source] = []
                send.append(row)
        made = self._add_tags(project_id, send, owners)
        ids.update(made)
        with self._shared_lock:
            for row in send:
                source = self._shared_tag(row)
                if source is not None:
                    self._shared_tags.setdefault(source, made[row["key"]])
                    ids.update({twin["key"]: made[row["key"]] for twin in twins[source]})
        return ids

    def _add_tags(
        self, project_id: str, rows: Sequence[Row], owners: Mapping[str, str]
    ) -> dict[str, str]:
        defs = self._defs(project_id)
        ids: dict[str, str] = {}
        video_tags: dict[str, list[tuple[Row, dict[str, Any]]]] = {}
        object_tags: list[tuple[Row, dict[str, Any]]] = []
        for row in rows:
            tag_id = defs.tag_ids.get(row.get("name") or "")
            if tag_id is None:
                raise RequestRejected(
                    f"supervisely: tag {row['key']} is a {row.get('name')!r}, which is not in "
                    "the restored meta",
                    platform=self.name,
                    project=project_id,
                )
            payload = _tag_payload(row, tag_id)
            if row["owner_type"] == OwnerType.ITEM.value:
                video_tags.setdefault(row["owner_key"], []).append((row, payload))
            else:
                payload["objectId"] = int(owners[row["owner_key"]])
                object_tags.append((row, payload))
        method, field = self._entity_tags_call(project_id)
        for owner_key, keyed in video_tags.items():
            body = {field: int(owners[owner_key]), "tags": [p for _, p in keyed]}
            answer = self._call(method, body, project=project_id, idempotent=False)
            sent = [row for row, _ in keyed]
            ids.update(
                self._paired(method, answer, sent, project_id=project_id, table="video_tags")
            )
        for chunk in _chunks(object_tags, OBJECT_TAGS_PER_ADD):
            body = {"projectId": int(project_id), "tags": [p for _, p in chunk]}
            answer = self._call(
                "annotation-objects.tags.bulk.add", body, project=project_id, idempotent=False
            )
            sent = [row for row, _ in chunk]
            ids.update(
                self._paired(
                    "annotation-objects.tags.bulk.add",
                    answer,
                    sent,
                    project_id=project_id,
                    table="video_tags",
                )
            )
        return ids

    @staticmethod
    def _shared_tag(row: Row) -> int | None:
        """The source assignment id of an object's tag (the same in every view); None for a
        video's tag."""
        if row["owner_type"] == OwnerType.ITEM.value:
            return None
        found = as_int(loads(row["raw"]).get("id"))
        return found if found is not None else _source_id(row["key"], "!")

    def _entity_tags_call(self, project_id: str) -> tuple[str, str]:
        """The call that tags a whole entity, and the body field naming the entity."""
        return "videos.tags.bulk.add", "videoId"

    def _annotations_call(self, project_id: str) -> tuple[str, str]:
        """The call that reads annotations, and the body field listing the entities."""
        return "videos.annotations.bulk.info", "videoIds"

    def _figures_in(
        self, project_id: str, annotation: Mapping[str, Any]
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Every figure of an annotation with its place: (figure, plane, frame)."""
        for frame in annotation.get("frames") or []:
            for figure in frame.get("figures") or []:
                yield figure, None, frame.get("index")

    # --- what landed -----------------------------------------------------------------------

    def _annotations_of(
        self, project_id: str, dataset_id: str | None, video_ids: Sequence[int]
    ) -> list[dict[str, Any]]:
        method, field = self._annotations_call(project_id)
        found: list[dict[str, Any]] = []
        for chunk in _chunks(sorted(set(video_ids)), ANNOTATION_IDS):
            body = {
                "datasetId": self._dataset_id(dataset_id),
                field: list(chunk),
                "integerCoords": False,
            }
            answer = self._call(method, body, project=project_id)
            found += [a for a in answer if isinstance(a, dict)] if isinstance(answer, list) else []
        return found

    def _landed_rows(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """Rows an attempt created without this process hearing back: the server's objects,
        figures or tags of the batch's videos that no answer named, paired with the rows by
        content, in key order."""
        heard = {
            row["key"]: self._answered_rows[project_id, table, row["key"]]
            for row in rows
            if (project_id, table, row["key"]) in self._answered_rows
        }
        rows = [row for row in rows if row["key"] not in heard]
        item_keys = {row["key"].partition("@")[0].partition("!")[0] for row in rows}
        videos = [int(owners[key]) for key in item_keys if key in owners]
        if not videos:
            return heard
        pool: dict[str, list[int]] = {}

        def offer(signature: Any, entity: Any) -> None:
            entity_id = as_int(entity.get("id")) if isinstance(entity, dict) else None
            if entity_id is not None and entity_id not in self._answered:
                pool.setdefault(canonical_json(signature), []).append(entity_id)

        defs = self._defs(project_id)
        for annotation in self._annotations_of(project_id, dataset_id, videos):
            video = annotation.get("videoId", annotation.get("volumeId"))
            for obj in sorted(annotation.get("objects") or [], key=lambda o: int(o["id"])):
                offer(["object", video, obj.get("classTitle")], obj)
                for tag in obj.get("tags") or []:
                    offer(["tag", obj.get("id"), *_tag_signature(tag)], tag)
            for tag in annotation.get("tags") or []:
                offer(["tag", video, *_tag_signature(tag)], tag)
            for figure, plane, index in self._figures_in(project_id, annotation):
                offer(["figure", figure.get("objectId"), plane, index, *_shape(figure)], figure)
        for ids in pool.values():
            ids.sort()
        landed = dict(heard)
        for row in rows:
            signature = self._signature(table, row, owners, defs.tag_ids)
            candidates = pool.get(canonical_json(signature)) if signature else None
            if candidates:
                landed[row["key"]] = str(candidates.pop(0))
        return landed

    @staticmethod
    def _signature(
        table: str, row: Row, owners: Mapping[str, str], tag_ids: Mapping[str, int]
    ) -> list[Any] | None:
        """What a row looks like on the server once created (None: its owner is not)."""
        if table == "objects":
            owner = owners.get(row["item_key"])
            return None if owner is None else ["object", int(owner), row["class_name"]]
        if table == "figures":
            owner = owners.get(row["object_key"])
            if owner is None:
                return None
            raw = loads(row["raw"])
            return ["figure", int(owner), raw.get("planeName"), row["frame_index"], *_shape(raw)]
        owner = owners.get(row["owner_key"])
        if owner is None:
            return None
        payload = _tag_payload(row, tag_ids.get(row.get("name") or "", 0))
        return ["tag", int(owner), *_tag_signature(payload)]

    def already_restored(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """As for images, and for videos, objects, figures and video tags."""
        if table == "items" and rows and rows[0].get("kind") == "video":
            return self._landed_videos(project_id, dataset_id, rows)
        if table in ("objects", "figures", "video_tags"):
            return self._landed_rows(project_id, table, dataset_id, rows, owners)
        return super().already_restored(project_id, table, dataset_id, rows, owners)


def _held_by_object(annotation: Mapping[str, Any]) -> dict[int, str]:
    """What each object holds in one video's annotation (its figures and tags, without ids),
    as canonical JSON: the same before and after a restore."""
    held: dict[int, list[Any]] = {}
    for frame in annotation.get("frames") or []:
        for figure in frame.get("figures") or []:
            object_id = as_int(figure.get("objectId"))
            if object_id is not None:
                shape = [figure.get("geometryType"), figure.get("geometry"), figure.get("meta")]
                held.setdefault(object_id, []).append([frame.get("index"), *shape])
    for obj in annotation.get("objects") or []:
        for tag in obj.get("tags") or []:
            entry = ["tag", tag.get("name"), tag.get("value"), tag.get("frameRange")]
            held.setdefault(int(obj["id"]), []).append(entry)
    return {key: canonical_json(sorted(map(canonical_json, found))) for key, found in held.items()}


def is_multiview(source: Row) -> bool:
    """True when the ``project`` row is of a project in the ``multi_view`` labeling
    interface (its settings, or its meta's ``projectSettings``)."""
    raw = loads(source.get("raw")) or {}
    settings = (raw.get("info") or {}).get("settings") or {}
    meta_settings = (raw.get("meta") or {}).get("projectSettings") or {}
    return MULTIVIEW in (settings.get("labelingInterface"), meta_settings.get("labelingInterface"))


def _source_id(key: str, mark: str) -> int | None:
    """The source id at the end of a row key (after its last ``mark``)."""
    head, found, tail = key.rpartition(mark)
    return as_int(tail.lstrip("~")) if found and head and not tail.startswith("~") else None


def _shape(figure: Mapping[str, Any]) -> list[Any]:
    """A figure's type and geometry as the annotation answers them (a 3D mask: no bytes)."""
    kind = figure.get("geometryType")
    return [kind, None if kind in SPATIAL_GEOMETRY else figure.get("geometry")]


def _tag_signature(tag: Mapping[str, Any]) -> list[Any]:
    first, last = frame_range(tag)
    return [tag.get("tagId"), tag.get("value"), first, last]
