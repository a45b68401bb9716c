"""Supervisely's rows and keys: how its JSON becomes labelvault's tables (see the package docs)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from labelvault import jsonfast
from labelvault.platforms.base import TablePage
from labelvault.platforms.streams import Row
from labelvault.snapshot.schema import (
    GeometryType,
    OwnerType,
    canonical_json,
    fingerprint,
    schema_for,
)

logger = logging.getLogger("labelvault.platforms.supervisely")


ID_WIDTH = 12
HASH_CHECK_BATCH = 900
FIGURE_FIELDS = (
    "id",
    "createdAt",
    "updatedAt",
    "imageId",
    "objectId",
    "classId",
    "projectId",
    "datasetId",
    "frameIndex",
    "geometry",
    "geometryType",
    "geometryMeta",
    "tags",
    "meta",
    "area",
    "priority",
    "customData",
    "nnCreated",
    "nnUpdated",
    "description",
)


def pad(value: Any) -> str:
    return f"{int(value):0{ID_WIDTH}d}"


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def json_or_none(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def loads(value: str | None) -> Any:
    return None if value is None else jsonfast.loads(value)


def as_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def table_page(table: str, rows: list[Row]) -> TablePage:
    return TablePage(table, pa.RecordBatch.from_pylist(rows, schema=schema_for(table)))


def strip_ids(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "id"} for entry in entries]


@dataclass
class Dataset:
    """A dataset of the source project with its key and natural path."""

    info: dict[str, Any]
    key: str
    path: str
    parent_key: str | None


@dataclass
class Definitions:
    """Class and tag-meta ids of one project, by name (restore maps ids by these keys)."""

    class_ids: dict[str, int] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)


def settings_natural(settings: Mapping[str, Any], tag_names: Mapping[Any, Any]) -> Any:
    natural = dict(settings or {})
    if "groupImagesByTagId" in natural:
        tag_id = natural.pop("groupImagesByTagId")
        natural["groupImagesByTagName"] = tag_names.get(tag_id, tag_id)
    return natural


def project_row(
    info: dict[str, Any], meta: dict[str, Any], tag_metas: Mapping[Any, dict[str, Any]]
) -> Row:
    definitions = {
        "classes": strip_ids(meta.get("classes", [])),
        "tags": strip_ids(meta.get("tags", [])),
    }
    tag_names = {tag_id: tag.get("name") for tag_id, tag in tag_metas.items()}
    settings = settings_natural(info.get("settings") or {}, tag_names)
    content = {
        "kind": info.get("type"),
        "definitions": definitions,
        "settings": settings,
        "custom_data": info.get("customData") or {},
        "readme": info.get("readme") or "",
    }
    return {
        "key": "project",
        "fingerprint": fingerprint(content),
        "name": info.get("name"),
        "description": info.get("description"),
        "kind": info.get("type"),
        "definitions": canonical_json(definitions),
        "settings": canonical_json(settings),
        "custom_data": canonical_json(info.get("customData") or {}),
        "readme": info.get("readme"),
        "created_at": timestamp(info.get("createdAt")),
        "updated_at": timestamp(info.get("updatedAt")),
        "raw": canonical_json({"info": info, "meta": meta}),
    }


def dataset_row(ds: Dataset) -> Row:
    info = ds.info
    custom = info.get("customData") or {}
    content = {
        "path": ds.path,
        "description": info.get("description") or "",
        "custom_data": custom,
    }
    return {
        "key": ds.key,
        "fingerprint": fingerprint(content),
        "parent_key": ds.parent_key,
        "name": info.get("name"),
        "path": ds.path,
        "description": info.get("description"),
        "custom_data": canonical_json(custom),
        "created_at": timestamp(info.get("createdAt")),
        "updated_at": timestamp(info.get("updatedAt")),
        "raw": canonical_json(info),
    }


def item_row(image: dict[str, Any], key: str, dataset: Dataset, ref: list[Any]) -> Row:
    meta = image.get("meta") or {}
    content = {
        "item": ref,
        "hash": image.get("hash"),
        "link": image.get("link"),
        "meta": meta,
        "description": image.get("description") or "",
        "width": image.get("width"),
        "height": image.get("height"),
        "size": as_int(image.get("size")),
        "mime": image.get("mime"),
        "ext": image.get("ext"),
    }
    return {
        "key": key,
        "fingerprint": fingerprint(content),
        "dataset_key": dataset.key,
        "name": image.get("name"),
        "kind": "image",
        "hash": image.get("hash"),
        "link": image.get("link"),
        "size_bytes": as_int(image.get("size")),
        "width": as_int(image.get("width")),
        "height": as_int(image.get("height")),
        "meta": canonical_json(meta),
        "created_at": timestamp(image.get("createdAt")),
        "updated_at": timestamp(image.get("updatedAt")),
        "raw": canonical_json(image),
    }


def annotation_row(
    figure: dict[str, Any],
    item_key: str,
    item_ref: list[Any],
    alpha: Mapping[int, Any],
    context: CaptureContext,
) -> Row:
    raw_type = figure.get("geometryType")
    geometry = alpha.get(int(figure["id"]), figure.get("geometry"))
    cls = context.classes.get(figure.get("classId")) or {}
    class_name = cls.get("title")
    content = {
        "item": item_ref,
        "class": class_name,
        "geometry_type": raw_type,
        "geometry": geometry,
        "meta": figure.get("meta") or {},
        "priority": figure.get("priority"),
        "custom_data": figure.get("customData") or {},
        "description": figure.get("description") or "",
    }
    return {
        "key": f"{item_key}#{pad(figure['id'])}",
        "fingerprint": fingerprint(content),
        "item_key": item_key,
        "kind": "figure",
        "class_name": class_name,
        "geometry_type": GeometryType(str(raw_type)).value,
        "geometry": json_or_none(geometry),
        "author": figure.get("labelerLogin"),
        "created_at": timestamp(figure.get("createdAt")),
        "updated_at": timestamp(figure.get("updatedAt")),
        "raw": canonical_json(figure),
    }


def tag_row(
    tag: dict[str, Any],
    ordinal: int,
    owner_key: str,
    owner_type: OwnerType,
    owner_ref: dict[str, Any],
    *,
    context: CaptureContext,
) -> Row:
    meta = context.tag_metas.get(tag.get("tagId")) or {}
    name = tag.get("name") or meta.get("name")
    value = tag.get("value")
    content = {"owner": owner_ref, "name": name, "value": value}
    assignment = tag.get("id")
    # Assignments without an id (none on a real server) sort after those with one.
    suffix = pad(assignment) if assignment is not None else f"~{ordinal:06d}"
    return {
        "key": f"{owner_key}!{suffix}",
        "fingerprint": fingerprint(content),
        "owner_type": owner_type.value,
        "owner_key": owner_key,
        "name": name,
        "value": canonical_json(value),
        "author": tag.get("labelerLogin"),
        "created_at": timestamp(tag.get("createdAt")),
        "updated_at": timestamp(tag.get("updatedAt")),
        "raw": canonical_json(tag),
    }


def user_row(login: str) -> Row:
    """One ``users`` row: a login that labeled a figure or assigned a tag (Supervisely's API
    gives logins only, no e-mail or name)."""
    return {
        "key": login,
        "fingerprint": fingerprint({"login": login}),
        "login": login,
        "email": None,
        "name": None,
        "raw": canonical_json({"login": login}),
    }


#: The labeling interface of a multiview project: objects are shared by a dataset's videos.
MULTIVIEW = "multi_view"


@dataclass(frozen=True)
class CaptureContext:
    """What every batch of a capture needs to know about the project."""

    classes: Mapping[Any, dict[str, Any]]
    tag_metas: Mapping[Any, dict[str, Any]]
    project: str
    #: a project in the ``multi_view`` labeling interface: a dataset's videos share objects
    multiview: bool = False


def figure_ref(item_ref: list[Any], class_name: Any, seen: Counter[Any]) -> dict[str, Any]:
    """An id-free reference to a figure that survives edits of its content: its item, its
    class and its place among the item's figures of that class in key order (``seen`` counts
    the ones before it). Restore creates figures in key order, so the place survives a restore,
    a restore of some classes too."""
    ordinal = seen[class_name]
    seen[class_name] += 1
    return {"item": item_ref, "class": class_name, "ordinal": ordinal}


def tag_order(tag: Mapping[str, Any]) -> tuple[int, int]:
    assignment = tag.get("id")
    return (0, int(assignment)) if assignment is not None else (1, 0)
