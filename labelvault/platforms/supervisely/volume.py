"""Supervisely volume projects (3D scans): their rows, their capture and their restore's writes.

A volume project is laid out as a video project (:mod:`.video`): items are volumes (by hash;
the server has no link-only volume restore), with ``objects``, ``figures`` and ``video_tags``.
A figure is either a plane figure (2D geometry on one slice of the sagittal, coronal or axial
plane: ``meta.sliceIndex``, ``meta.normal``, ``meta.planeName``; the slice is the row's
``frame_index``) or a spatial figure. A spatial figure's geometry is bytes — a 3D mask's NRRD,
a closed-surface mesh's STL — that come from ``figures.bulk.download.geometry`` and are stored
exactly as downloaded (base64 in the geometry column), then uploaded as they were with
``figures.bulk.upload.geometry`` once the empty figure exists (the server refuses mesh
geometry in ``figures.bulk.add``).

Figure keys: ``<object key>#<plane><slice, 8 digits>#<figure id>``, ``spatial`` for spatial
figures. The reference's §7–§9 hold the wire details.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from labelvault.errors import RequestRejected
from labelvault.http import iter_multipart
from labelvault.platforms.base import TablePage
from labelvault.platforms.streams import Row
from labelvault.platforms.supervisely.rows import (
    CaptureContext,
    Dataset,
    as_int,
    loads,
    pad,
    table_page,
    timestamp,
)
from labelvault.platforms.supervisely.video import (
    FRAME_WIDTH,
    SPATIAL_GEOMETRY,
    VideoCapture,
    VideoRestore,
    object_and_tag_rows,
    owner_of,
)
from labelvault.snapshot.schema import GeometryType, canonical_json, fingerprint

__all__ = ["VolumeCapture", "VolumeRestore"]

#: Volumes per ``volumes.annotations.bulk.info`` and per ``volumes.bulk.add``; mask ids per
#: ``figures.bulk.download.geometry``.
VOLUME_BATCH = 50
MASK_IDS = 50
SPATIAL = "spatial"
MASK = GeometryType.MASK_3D.value
MESH = GeometryType.CLOSED_SURFACE_MESH.value
#: The file format of each spatial figure's bytes.
BYTES_FORMAT = {MASK: "nrrd", MESH: "stl"}


def mask_geometry(data: bytes, kind: str = MASK) -> dict[str, Any]:
    """The geometry column of a spatial figure: its bytes (NRRD for a 3D mask, STL for a
    closed-surface mesh), exactly, in base64."""
    return {"format": BYTES_FORMAT[kind], "base64": base64.b64encode(data).decode("ascii")}


def mask_bytes(geometry: Mapping[str, Any] | None) -> bytes | None:
    """The bytes of :func:`mask_geometry`, or None when the figure had none."""
    data = (geometry or {}).get("base64")
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        return None


def volume_item_row(volume: dict[str, Any], key: str, dataset: Dataset) -> Row:
    """The ``items`` row of a volume (kind ``volume``)."""
    file_meta = volume.get("fileMeta") if isinstance(volume.get("fileMeta"), dict) else {}
    meta = volume.get("meta") or {}
    content = {
        "item": [dataset.path, volume.get("name")],
        "kind": "volume",
        "hash": volume.get("hash"),
        "link": volume.get("link"),
        "meta": meta,
        "file_meta": file_meta,
    }
    return {
        "key": key,
        "fingerprint": fingerprint(content),
        "dataset_key": dataset.key,
        "name": volume.get("name"),
        "kind": "volume",
        "hash": volume.get("hash"),
        "link": volume.get("link"),
        "size_bytes": as_int((file_meta or {}).get("size")),
        "width": None,
        "height": None,
        "meta": canonical_json(meta),
        "created_at": timestamp(volume.get("createdAt")),
        "updated_at": timestamp(volume.get("updatedAt")),
        "raw": canonical_json(volume),
    }


def volume_figure_row(
    figure: dict[str, Any],
    plane: str,
    slice_index: int | None,
    item_key: str,
    *,
    owner: tuple[str, dict[str, Any] | None, str | None],
    mask: bytes | None,
) -> Row:
    """One ``figures`` row of a volume: a plane figure or a spatial one (its bytes kept)."""
    object_key, object_ref, class_name = owner
    raw_type = figure.get("geometryType")
    geometry = mask_geometry(mask, str(raw_type)) if mask is not None else figure.get("geometry")
    content = {
        "object": object_ref,
        "plane": plane,
        "slice": slice_index,
        "geometry_type": raw_type,
        "geometry": geometry,
        "meta": figure.get("meta") or {},
        "priority": figure.get("priority"),
        "custom_data": figure.get("customData") or {},
    }
    place = SPATIAL if slice_index is None else f"{plane}{slice_index:0{FRAME_WIDTH}d}"
    return {
        "key": f"{object_key}#{place}#{pad(figure['id'])}",
        "fingerprint": fingerprint(content),
        "item_key": item_key,
        "object_key": object_key,
        "frame_index": slice_index,
        "class_name": class_name,
        "geometry_type": GeometryType(str(raw_type)).value,
        "geometry": None if geometry is None else canonical_json(geometry),
        "author": figure.get("labelerLogin"),
        "created_at": timestamp(figure.get("createdAt")),
        "updated_at": timestamp(figure.get("updatedAt")),
        "raw": canonical_json({**figure, "planeName": plane, "sliceIndex": slice_index}),
    }


def volume_figures(annotation: Mapping[str, Any]) -> Iterator[tuple[Any, str, int | None]]:
    """Every figure of a volume annotation with its place: (figure, plane, slice or None)."""
    for plane in annotation.get("planes") or []:
        for slice_ in plane.get("slices") or []:
            for figure in slice_.get("figures") or []:
                yield figure, str(plane.get("name")), as_int(slice_.get("index"))
    for figure in annotation.get("spatialFigures") or []:
        yield figure, SPATIAL, None


class VolumeCapture(VideoCapture):
    """Reads the volumes of a project with their annotations and spatial figures' bytes."""

    def _volume_batches(self, dataset: Dataset, project: str) -> Iterator[list[dict[str, Any]]]:
        """The dataset's volumes in id order (page mode, as the SDK lists them), 50 a batch."""
        size = min(self.batch_size, VOLUME_BATCH)
        body = {
            "datasetId": int(dataset.info["id"]),
            "filter": [],
            "sort": "id",
            "sort_order": "asc",
        }
        pending: list[dict[str, Any]] = []
        for page in self._list("volumes.list", body, project=project, per_page=self.list_page_size):
            for volume in page:
                pending.append(volume)
                if len(pending) >= size:
                    yield pending
                    pending = []
        if pending:
            yield pending

    def _mask_bytes(self, ids: Sequence[int], project: str) -> dict[int, bytes]:
        """Bytes of spatial figures (NRRD, STL), by figure id, exactly as the server sends them."""
        found: dict[int, bytes] = {}
        for start in range(0, len(ids), MASK_IDS):
            chunk = list(ids[start : start + MASK_IDS])
            response = self.api.request(
                "POST",
                "figures.bulk.download.geometry",
                json={"ids": chunk},
                project=project,
                idempotent=True,
            )
            kind = response.headers.get("content-type", "")
            try:
                for part in iter_multipart(response.content, kind):
                    found[int(part.name or "")] = part.content
            except ValueError as exc:
                raise RequestRejected(
                    f"supervisely: figures.bulk.download.geometry answered a malformed "
                    f"multipart body: {exc}",
                    platform=self.name,
                    project=project,
                ) from None
            missing = sorted(set(chunk) - set(found))
            if missing:
                raise RequestRejected(
                    f"supervisely: figures.bulk.download.geometry left out masks {missing[:5]}",
                    platform=self.name,
                    project=project,
                )
        return found

    def _add_spatial_custom_data(
        self,
        dataset_id: int,
        ids: Sequence[int],
        annotations: Mapping[Any, dict[str, Any]],
        project: str,
    ) -> None:
        """Annotation info leaves out spatial figures' custom data; ``figures.list`` has it
        (as the SDK reads it)."""
        spatial = {
            int(figure["id"]): figure
            for volume_id in ids
            for figure in annotations[volume_id].get("spatialFigures") or []
        }
        if not spatial:
            return
        body = {
            "datasetId": dataset_id,
            "fields": ["id", "customData"],
            "filter": [{"field": "entityId", "operator": "in", "value": list(ids)}],
        }
        for page in self._list("figures.list", body, project=project):
            for listed in page:
                figure = spatial.get(as_int(listed.get("id")) or -1)
                # Empty custom data too: a restore then writes ``{}`` as the source has it.
                if figure is not None and isinstance(listed.get("customData"), dict):
                    figure["customData"] = listed["customData"]

    def _capture_volume_batch(
        self, dataset: Dataset, volumes: list[dict[str, Any]], context: CaptureContext
    ) -> list[TablePage]:
        """Items, objects, figures and tags of one batch of volumes (a worker thread)."""
        ids = [int(volume["id"]) for volume in volumes]
        body = {"datasetId": int(dataset.info["id"]), "volumeIds": ids, "integerCoords": False}
        answer = self._call("volumes.annotations.bulk.info", body, project=context.project)
        by_id = {a.get("volumeId"): a for a in (answer if isinstance(answer, list) else []) if a}
        missing = [volume_id for volume_id in ids if volume_id not in by_id]
        if missing:
            raise RequestRejected(
                f"supervisely: volumes.annotations.bulk.info left out volumes {missing[:5]}",
                platform=self.name,
                project=context.project,
            )
        self._add_spatial_custom_data(int(dataset.info["id"]), ids, by_id, context.project)
        masks = self._mask_bytes(
            [
                int(figure["id"])
                for volume_id in ids
                for figure, _, _ in volume_figures(by_id[volume_id])
                if figure.get("geometryType") in SPATIAL_GEOMETRY
            ],
            context.project,
        )
        tables: dict[str, list[Row]] = {"items": [], "objects": [], "figures": [], "video_tags": []}
        for volume in volumes:
            annotation = by_id[int(volume["id"])]
            item_key = f"{dataset.key}#{pad(volume['id'])}"
            item_ref = [dataset.path, volume.get("name")]
            tables["items"].append(volume_item_row(volume, item_key, dataset))
            objects, tags, refs = object_and_tag_rows(annotation, item_key, item_ref, context)
            figures = [
                volume_figure_row(
                    figure,
                    plane,
                    index,
                    item_key,
                    owner=owner_of(figure, refs, item_key, f"volume {volume.get('id')}"),
                    mask=masks.get(int(figure["id"])),
                )
                for figure, plane, index in volume_figures(annotation)
            ]
            tables["objects"] += objects
            tables["figures"] += sorted(figures, key=lambda row: row["key"])
            tables["video_tags"] += tags
        return [table_page(name, found) for name, found in tables.items() if found]


class VolumeRestore(VideoRestore):
    """Restores volumes by hash, then (as for videos) objects, figures, tags; 3D masks and
    meshes get their bytes uploaded after their figures exist."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: project id → the kind of the project being restored into it
        self._kinds: dict[str, str] = {}

    def remember_project(self, project_id: str, source: Row) -> None:
        """Remember the kind: volumes tag and read through other calls."""
        self._kinds[project_id] = str(source.get("kind") or "images")
        super().remember_project(project_id, source)

    def _is_volumes(self, project_id: str) -> bool:
        return self._kinds.get(project_id) == "volumes"

    def _entity_tags_call(self, project_id: str) -> tuple[str, str]:
        """``volumes.tags.bulk.add`` names its volume ``entityId``."""
        if self._is_volumes(project_id):
            return "volumes.tags.bulk.add", "entityId"
        return super()._entity_tags_call(project_id)

    def _annotations_call(self, project_id: str) -> tuple[str, str]:
        """``volumes.annotations.bulk.info`` for volumes."""
        if self._is_volumes(project_id):
            return "volumes.annotations.bulk.info", "volumeIds"
        return super()._annotations_call(project_id)

    def _figures_in(
        self, project_id: str, annotation: Mapping[str, Any]
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Plane and spatial figures of a volume, with (plane, slice)."""
        if self._is_volumes(project_id):
            return volume_figures(annotation)
        return super()._figures_in(project_id, annotation)

    def add_volumes(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        """Add volumes by hash with their meta (answers come in request order)."""
        dataset = self._dataset_id(dataset_id)
        ids: dict[str, str] = {}
        for start in range(0, len(rows), VOLUME_BATCH):
            chunk = rows[start : start + VOLUME_BATCH]
            volumes = []
            for row in chunk:
                if not row.get("hash"):
                    raise RequestRejected(
                        f"supervisely: volume {row['key']} has no hash; Supervisely restores "
                        "volumes by hash only",
                        platform=self.name,
                        project=project_id,
                    )
                entry: dict[str, Any] = {"name": row["name"], "hash": row["hash"]}
                meta = loads(row.get("meta"))
                if meta:
                    entry["meta"] = meta
                volumes.append(entry)
            body = {"datasetId": dataset, "volumes": volumes}
            created = self._call("volumes.bulk.add", body, project=project_id, idempotent=False)
            if not isinstance(created, list) or len(created) != len(chunk):
                raise RequestRejected(
                    f"supervisely: volumes.bulk.add answered {created!r:.80} for "
                    f"{len(chunk)} volumes",
                    platform=self.name,
                    project=project_id,
                )
            ids.update({row["key"]: str(v["id"]) for row, v in zip(chunk, created, strict=True)})
        return ids

    def add_figures(
        self, project_id: str, rows: Sequence[Row], owners: Mapping[str, str]
    ) -> dict[str, str]:
        """Figures as for videos; then each 3D mask's or mesh's bytes, one upload per figure."""
        ids = super().add_figures(project_id, rows, owners)
        self._upload_masks(project_id, rows, ids)
        return ids

    def _upload_masks(self, project_id: str, rows: Sequence[Row], ids: Mapping[str, str]) -> None:
        for row in rows:
            if row.get("geometry_type") not in SPATIAL_GEOMETRY or row["key"] not in ids:
                continue
            data = mask_bytes(loads(row.get("geometry")))
            if data is None:
                continue
            figure_id = ids[row["key"]]
            self.api.request(
                "POST",
                "figures.bulk.upload.geometry",
                data={"figureId": figure_id},
                files=[("geometry", (figure_id, data, "application/sla"))],
                project=project_id,
                idempotent=True,
            )

    def _landed_rows(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """As for videos; a mask or mesh that landed may lack its bytes, so they go up again."""
        landed = super()._landed_rows(project_id, table, dataset_id, rows, owners)
        if table == "figures" and self._is_volumes(project_id):
            self._upload_masks(project_id, rows, landed)
        return landed

    def _landed_volumes(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        names = {row["name"]: row["key"] for row in rows}
        body = {
            "datasetId": self._dataset_id(dataset_id),
            "filter": [{"field": "name", "operator": "in", "value": sorted(names)}],
        }
        return {
            names[volume["name"]]: str(volume["id"])
            for page in self._list("volumes.list", body, project=project_id)
            for volume in page
            if volume.get("name") in names
        }

    def already_restored(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """As for videos, and volumes by name."""
        if table == "items" and rows and rows[0].get("kind") == "volume":
            return self._landed_volumes(project_id, dataset_id, rows)
        return super().already_restored(project_id, table, dataset_id, rows, owners)
