"""Drives the real Supervisely SDK; runs inside the SDK's own venv (see ``supervisely_sdk.py``).

``python sdk_driver.py <step> --url URL --token-env NAME --args JSON --out FILE``

Steps (``--args`` holds their parameters):

- ``create {"project_id", "title"?}``: ``api.project.version.create`` → ``{"version_id"}``;
- ``restore {"project_id", "version_id", "project_name"?}``: ``api.project.version.restore``
  → ``{"project_id"}``;
- ``dump {"project_ids": [...]}``: the SDK's own read-back of each project, with the ids the
  server assigned replaced by names, so a source and its restored copy compare as plain JSON
  → ``{"projects": {id: dump}}``.

Every answer also carries ``seconds`` (the step alone, timed here, after ``import
supervisely``), ``import_seconds`` and ``peak_rss_mb`` (this process's ``VmHWM``: its peak,
import included).

This file imports only the standard library and the SDK: it never runs in the project's venv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from typing import Any

IMPORT_STARTED = time.monotonic()
import supervisely as sly  # noqa: E402

IMPORT_SECONDS = time.monotonic() - IMPORT_STARTED


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB: ``VmHWM``, the high-water mark of its own
    address space. Not ``ru_maxrss``: Linux carries that over ``exec`` from the address space
    it replaces, so a child started by a big parent would report the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _dataset_paths(datasets: list[Any]) -> dict[int, str]:
    by_id = {d.id: d for d in datasets}

    def path(ds: Any) -> str:
        parent = by_id.get(ds.parent_id) if ds.parent_id else None
        return f"{path(parent)}/{ds.name}" if parent is not None else ds.name

    return {d.id: path(d) for d in datasets}


def _tag_list(tags: list[dict[str, Any]], names: dict[int, str], *, login: bool) -> list[Any]:
    out = []
    for tag in tags:
        row = [tag.get("name") or names.get(tag.get("tagId")), tag.get("value")]
        if login:
            row.append(tag.get("labelerLogin"))
        out.append(row)
    return sorted(out, key=_canon)


def dump(api: Any, project_id: int) -> dict[str, Any]:
    """What the SDK reads back of a project, keyed by names instead of ids."""
    kind = api.project.get_info_by_id(project_id).type
    if kind == "videos":
        return dump_entities(api, project_id, video=True)
    if kind == "volumes":
        return dump_entities(api, project_id, video=False)
    return dump_images(api, project_id)


def _project_and_meta(api: Any, project_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The project's own fields and its meta (classes and tags without ids), and the tag
    names by id (``"tag_names"``, popped by the caller)."""
    info = api.project.get_info_by_id(project_id)
    meta = api.project.get_meta(project_id, with_settings=True)
    class_names = {c["id"]: c["title"] for c in meta["classes"]}
    tag_names = {t["id"]: t["name"] for t in meta["tags"]}
    settings = dict(info.settings or {})
    if settings.get("groupImagesByTagId") is not None:
        settings["groupImagesByTagId"] = tag_names.get(settings["groupImagesByTagId"])
    project = {
        "type": info.type,
        "description": info.description,
        "readme": info.readme,
        "custom_data": info.custom_data,
        "settings": settings,
    }
    return project, {
        "classes": sorted(
            ({k: v for k, v in c.items() if k != "id"} for c in meta["classes"]),
            key=lambda c: c["title"],
        ),
        "tags": sorted(
            ({k: v for k, v in t.items() if k != "id"} for t in meta["tags"]),
            key=lambda t: t["name"],
        ),
        "tag_names": tag_names,
        "class_names": class_names,
    }


def dump_images(api: Any, project_id: int) -> dict[str, Any]:
    """An image project: datasets, images, figures (exact), alpha masks, annotations."""
    project, meta = _project_and_meta(api, project_id)
    tag_names, class_names = meta.pop("tag_names"), meta.pop("class_names")
    out: dict[str, Any] = {
        "project": project,
        "meta": meta,
        "datasets": {},
        "images": {},
        "figures": {},
        "annotations": {},
    }
    datasets = api.dataset.get_list(project_id, recursive=True, include_custom_data=True)
    paths = _dataset_paths(datasets)
    for ds in datasets:
        out["datasets"][paths[ds.id]] = {
            "description": ds.description,
            "custom_data": ds.custom_data,
        }
        images = api.image.get_list(ds.id)
        names = {}
        for image in images:
            key = f"{paths[ds.id]}/{image.name}"
            names[image.id] = key
            out["images"][key] = {
                "hash": image.hash,
                "link": image.link,
                "mime": image.mime,
                "ext": image.ext,
                "size": image.size,
                "width": image.width,
                "height": image.height,
                "meta": image.meta,
                "description": image.description,
                "labels_count": image.labels_count,
                "tags": _tag_list(image.tags, tag_names, login=True),
            }
        if not images:
            continue
        figures = api.image.figure.download(ds.id, integer_coords=False)
        alpha_ids = [f.id for fs in figures.values() for f in fs if f.geometry_type == "alpha_mask"]
        geometries = api.image.figure.download_geometries_batch(alpha_ids)
        alpha = dict(zip(alpha_ids, geometries, strict=True))
        for image_id, infos in figures.items():
            rows = [
                {
                    "class": class_names.get(f.class_id),
                    "geometry_type": f.geometry_type,
                    "geometry": alpha.get(f.id, f.geometry),
                    "geometry_meta": f.geometry_meta,
                    "meta": f.meta,
                    "priority": f.priority,
                    "custom_data": f.custom_data,
                    "tags": _tag_list(f.tags, tag_names, login=False),
                }
                for f in infos
            ]
            # Class, type and geometry first: a field a restore loses must not reorder them.
            out["figures"][names[image_id]] = sorted(
                rows, key=lambda r: _canon([r["class"], r["geometry_type"], r["geometry"], r])
            )
        for image in images:
            # One image a call: the SDK's pixel conversion raises on some figures (a 2D
            # cuboid's point list), and the error then belongs to that image alone.
            try:
                (ann,) = api.annotation.download_batch(ds.id, [image.id])
            except Exception as exc:  # the SDK's own failure is part of what it reads back
                out["annotations"][names[image.id]] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            body = dict(ann.annotation)
            objects = []
            for obj in body.pop("objects", []):
                clean = {
                    k: v
                    for k, v in obj.items()
                    if k not in ("id", "classId", "createdAt", "updatedAt", "tags")
                }
                clean["tags"] = _tag_list(obj.get("tags", []), tag_names, login=True)
                objects.append(clean)
            body["objects"] = sorted(objects, key=_canon)
            body["tags"] = _tag_list(body.get("tags", []), tag_names, login=True)
            out["annotations"][names[image.id]] = body
    return out


#: Fields of a figure, tag or object the server assigns: left out, or replaced by names.
_ASSIGNED = frozenset(
    {"id", "tagId", "classId", "objectId", "entityId", "createdAt", "updatedAt", "key"}
)


def _plain(item: dict[str, Any], names: dict[int, str] | None = None) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if k not in _ASSIGNED}
    if names is not None and "tagId" in item:
        out["name"] = item.get("name") or names.get(item["tagId"])
    return out


def _tags(tags: list[dict[str, Any]], names: dict[int, str]) -> list[dict[str, Any]]:
    return sorted((_plain(t, names) for t in tags), key=_canon)


def _video_or_volume_fields(item: Any, *, video: bool) -> dict[str, Any]:
    if video:
        return {
            "hash": item.hash,
            "link": item.link,
            "frames_count": item.frames_count,
            "frame_width": item.frame_width,
            "frame_height": item.frame_height,
            "frames_to_timecodes": item.frames_to_timecodes,
            "meta": item.meta,
            "custom_data": item.custom_data,
        }
    return {
        "hash": item.hash,
        "link": item.link,
        "mime": item.mime,
        "ext": item.ext,
        "sizeb": item.sizeb,
        "meta": item.meta,
        "file_meta": item.file_meta,
        "figures_count": item.figures_count,
        "objects_count": item.objects_count,
    }


def dump_entities(api: Any, project_id: int, *, video: bool) -> dict[str, Any]:
    """A video or volume project: datasets, the videos/volumes with their tags, and each
    one's annotation with exact coordinates (``download_bulk_async(integer_coords=False)``),
    objects with their figures and tags; figures' listed custom data, meta and priority
    (``figure.download``, no geometry); 3D masks as the sha256 of their bytes."""
    project, meta = _project_and_meta(api, project_id)
    tag_names = meta.pop("tag_names")
    meta.pop("class_names")
    section = "videos" if video else "volumes"
    entity_api = api.video if video else api.volume
    out: dict[str, Any] = {
        "project": project,
        "meta": meta,
        "datasets": {},
        section: {},
        "annotations": {},
    }
    loop = sly.utils.get_or_create_event_loop()
    datasets = api.dataset.get_list(project_id, recursive=True, include_custom_data=True)
    paths = _dataset_paths(datasets)
    scratch = tempfile.mkdtemp(prefix="sdk-dump-")
    for ds in datasets:
        out["datasets"][paths[ds.id]] = {
            "description": ds.description,
            "custom_data": ds.custom_data,
        }
        items = entity_api.get_list(ds.id)
        if not items:
            continue
        names = {item.id: f"{paths[ds.id]}/{item.name}" for item in items}
        for item in items:
            out[section][names[item.id]] = {
                **_video_or_volume_fields(item, video=video),
                "tags": _tags(item.tags or [], tag_names),
            }
        ids = [item.id for item in items]
        annotations = loop.run_until_complete(
            entity_api.annotation.download_bulk_async(ids, integer_coords=False)
        )
        listed = {
            f.id: {"custom_data": f.custom_data, "meta": f.meta, "priority": f.priority}
            for infos in entity_api.figure.download(ds.id, ids, skip_geometry=True).values()
            for f in infos
        }
        for annotation in annotations:
            entity_id = annotation["videoId" if video else "volumeId"]
            out["annotations"][names[entity_id]] = _annotation(
                api, annotation, tag_names, listed, scratch, video=video
            )
    return out


def _annotation(
    api: Any,
    annotation: dict[str, Any],
    tag_names: dict[int, str],
    listed: dict[int, dict[str, Any]],
    scratch: str,
    *,
    video: bool,
) -> dict[str, Any]:
    """One annotation without ids: each object with its figures (where they are, their
    geometry, everything else they carry) and tags, objects in a canonical order."""
    figures: dict[int, list[dict[str, Any]]] = {}

    def add(figure: dict[str, Any], where: dict[str, Any]) -> None:
        row = {**where, **_plain(figure), "listed": listed.get(figure["id"])}
        figures.setdefault(figure["objectId"], []).append(row)

    if video:
        for frame in annotation.get("frames", []):
            for figure in frame["figures"]:
                add(figure, {"frame": frame["index"]})
    else:
        for plane in annotation.get("planes", []):
            for piece in plane["slices"]:
                for figure in piece["figures"]:
                    where = {"plane": plane["name"], "normal": plane["normal"]}
                    add(figure, {**where, "slice": piece["index"]})
        spatial = annotation.get("spatialFigures", [])
        mask_ids = [f["id"] for f in spatial if f.get("geometryType") == "mask_3d"]
        files = [os.path.join(scratch, f"{figure_id}.nrrd") for figure_id in mask_ids]
        if mask_ids:
            api.volume.figure.download_sf_geometries(mask_ids, files)
        masks = {}
        for figure_id, path in zip(mask_ids, files, strict=True):
            with open(path, "rb") as handle:
                masks[figure_id] = hashlib.sha256(handle.read()).hexdigest()
        for figure in spatial:
            add(figure, {"spatial": True, "mask_sha256": masks.get(figure["id"])})

    def place(row: dict[str, Any]) -> list[Any]:
        # Where a figure is and its type: what a restore keeps even when it changes the rest.
        keys = ("frame", "plane", "slice", "spatial", "geometryType")
        return [row.get(key) for key in keys]

    objects = []
    for obj in annotation.get("objects", []):
        clean = _plain(obj)
        clean["tags"] = _tags(obj.get("tags", []), tag_names)
        clean["figures"] = sorted(
            figures.pop(obj["id"], []), key=lambda row: _canon([place(row), row])
        )
        objects.append(clean)
    objects.sort(key=lambda o: _canon([o.get("classTitle"), [place(f) for f in o["figures"]], o]))
    body = {
        k: v
        for k, v in annotation.items()
        if k
        not in (
            "videoId",
            "volumeId",
            "datasetId",
            "createdAt",
            "updatedAt",
            "objects",
            "frames",
            "planes",
            "spatialFigures",
            "tags",
        )
    }
    body["tags"] = _tags(annotation.get("tags", []), tag_names)
    body["objects"] = objects
    # A figure whose object is not in the annotation: kept, so that it is not lost unseen.
    body["orphan_figures"] = sorted((f for rows in figures.values() for f in rows), key=_canon)
    return body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("create", "restore", "dump"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-env", required=True)
    parser.add_argument("--args", default="{}")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()
    args = json.loads(options.args)
    api = sly.Api(server_address=options.url, token=os.environ[options.token_env])
    started = time.monotonic()
    answer: dict[str, Any]
    if options.step == "create":
        version_id = api.project.version.create(args["project_id"], version_title=args.get("title"))
        if version_id is None:
            sys.exit("version.create returned None (see the SDK's log above)")
        answer = {"version_id": version_id}
    elif options.step == "restore":
        restored = api.project.version.restore(
            args["project_id"],
            version_id=args["version_id"],
            project_name=args.get("project_name"),
        )
        if restored is None:
            sys.exit("version.restore returned None (see the SDK's log above)")
        answer = {"project_id": restored.id}
    else:
        answer = {"projects": {str(pid): dump(api, pid) for pid in args["project_ids"]}}
    answer["seconds"] = time.monotonic() - started
    answer["import_seconds"] = IMPORT_SECONDS
    answer["peak_rss_mb"] = peak_rss_mb()
    with open(options.out, "w", encoding="utf-8") as handle:
        json.dump(answer, handle, ensure_ascii=False)


if __name__ == "__main__":
    main()
