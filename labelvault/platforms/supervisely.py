"""Supervisely: capture an images project into labelvault's tables, and restore one.

Every call is ``POST <server>/public/api/v3/<method>`` with the ``x-api-key`` header (see
``reference/supervisely-api.md``). Capture reads, per project: ``projects.info`` (info,
settings, custom data, readme), ``projects.meta`` (classes and tag metas), ``datasets.list``
(the nested tree, with custom data) and then, dataset by dataset and in batches of images:
``images.list`` (token mode), ``figures.list`` with ``integerCoords: false`` (exact sub-pixel
geometry) and ``figures.bulk.download.geometry`` for alpha masks. Pixels are never read: an
image is its hash or its link.

Keys make capture order the key order of every table:

==============  ==================================================  =========================
table           key                                                 example
==============  ==================================================  =========================
project         ``project``
datasets        dataset ids from the root, zero-padded, ``/``-joined  ``000000005001/000000005003``
items           ``<dataset key>#<image id>``                        ``…5003#000000007001``
annotations     ``<item key>#<figure id>``                          ``…7001#000000009001``
tags            ``<owner key>!<assignment id>``                     ``…7001!000000011001``
==============  ==================================================  =========================

A parent dataset's key is a prefix of its children's, so datasets come parents first; ``#``
and ``!`` sort before ``/``, so an item's annotations and tags come right after it and before
the next dataset. Fingerprints leave out ids, timestamps and authors (a restore rewrites them)
and refer to datasets by path, to items by dataset path and name; a tag refers to its figure
by item, class and place among the item's figures of that class, so editing a figure changes
the figure's fingerprint and not its tags'.

Restore (:mod:`labelvault.restore` drives it) creates a project in a workspace, its meta and
settings, then datasets parents first, images by hash or link, figures (alpha masks through
``figures.bulk.upload.geometry``), image tags (``tags.entities.bulk.add``, duplicates kept) and
figure tags, mapping every new id to the source row's key.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
import pyarrow as pa

from labelvault.errors import (
    ConfigurationError,
    PaginationError,
    PlatformError,
    PlatformNotFound,
    RequestRejected,
    UnsupportedProject,
)
from labelvault.http import (
    ApiClient,
    CallContext,
    CursorPaginator,
    PageNumberPaginator,
    PageRequest,
    RequestSettings,
    build_client,
    iter_multipart,
    paginate,
)
from labelvault.platforms.base import ProjectInfo, TablePage, instance_from_url
from labelvault.snapshot.schema import (
    GeometryType,
    OwnerType,
    canonical_json,
    fingerprint,
    schema_for,
)

if TYPE_CHECKING:
    from labelvault.restore import RestoreTarget

__all__ = ["API_PATH", "SUPPORTED_KINDS", "SuperviselyPlatform"]

logger = logging.getLogger("labelvault.platforms.supervisely")

#: Where the public API lives under the server's address.
API_PATH = "/public/api/v3/"
#: Project types labelvault captures; others raise ``UnsupportedProject``.
SUPPORTED_KINDS = frozenset({"images"})

_ID_WIDTH = 12
_HASH_CHECK_BATCH = 900
_FIGURE_FIELDS = (
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

Row = dict[str, Any]


def _pad(value: Any) -> str:
    return f"{int(value):0{_ID_WIDTH}d}"


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _json_or_none(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _batch(table: str, rows: list[Row]) -> TablePage:
    return TablePage(table, pa.RecordBatch.from_pylist(rows, schema=schema_for(table)))


def _strip_ids(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "id"} for entry in entries]


@dataclass
class _Dataset:
    """A dataset of the source project with its key and natural path."""

    info: dict[str, Any]
    key: str
    path: str
    parent_key: str | None


@dataclass
class _Definitions:
    """Class and tag-meta ids of one project, by name (restore maps ids by these keys)."""

    class_ids: dict[str, int] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)


class SuperviselyPlatform:
    """The Supervisely adapter (registered as ``supervisely``).

    ``settings`` are the HTTP request settings; ``transport`` replaces the network (tests);
    ``concurrency`` bounds the image batches fetched in parallel during capture (results are
    still yielded in key order); ``sleep`` is used between retries (injectable for tests).
    """

    name = "supervisely"

    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        settings: RequestSettings | None = None,
        transport: httpx.BaseTransport | None = None,
        concurrency: int = 4,
        batch_size: int = 200,
        list_page_size: int = 1000,
        image_listing: Literal["token", "page"] = "token",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(server_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"supervisely server URL {server_url!r} is not an http(s) URL with a host "
                "(expected something like https://app.supervisely.com)"
            )
        if not token:
            raise ConfigurationError("supervisely: the API token is empty")
        if concurrency < 1 or batch_size < 1:
            raise ConfigurationError("supervisely: concurrency and batch_size must be at least 1")
        path = parts.path.rstrip("/")
        if path.endswith(API_PATH.rstrip("/")):
            path = path[: -len(API_PATH.rstrip("/"))]
        self.server_url = f"{parts.scheme}://{parts.netloc}{path}"
        self.settings = settings or RequestSettings()
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.list_page_size = list_page_size
        self.image_listing = image_listing
        self._instance = instance_from_url(self.server_url)
        client = build_client(
            self.server_url + API_PATH,
            headers={"x-api-key": token},
            settings=self.settings,
            transport=transport,
        )
        self.api = ApiClient(
            client,
            platform=self.name,
            settings=self.settings,
            secrets=[token],
            sleep=sleep,
            classify=self._classify,
        )
        link_settings = self.settings.model_copy(update={"max_retries": 1, "connection_retries": 1})
        self._links = ApiClient(
            httpx.Client(
                timeout=link_settings.timeout(),
                transport=transport,
                follow_redirects=True,
                trust_env=False,
            ),
            platform=self.name,
            settings=link_settings,
            secrets=[token],
            sleep=sleep,
        )
        self._definitions: dict[str, _Definitions] = {}

    # --- Platform protocol --------------------------------------------------------------------

    @property
    def instance(self) -> str:
        """``host:port`` of the server, lowercased."""
        return self._instance

    def get_project(self, project_id: str) -> ProjectInfo:
        """Describe an images project; raises ``PlatformNotFound`` or ``UnsupportedProject``."""
        return self._info(self._project_json(project_id), project_id)

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        """Stream the project: ``project``, ``datasets``, then per batch of images its
        ``items``, ``annotations`` and ``tags`` pages, each table in key order."""
        info = self._project_json(project_id)
        self._info(info, project_id)
        pid = int(info["id"])
        meta = self._call("projects.meta", {"id": pid}, project=project_id)
        classes = {c.get("id"): c for c in meta.get("classes", [])}
        tag_metas = {t.get("id"): t for t in meta.get("tags", [])}
        yield _batch("project", [self._project_row(info, meta, tag_metas)])

        datasets = self._datasets(pid, project_id)
        for start in range(0, len(datasets), self.batch_size):
            rows = [self._dataset_row(ds) for ds in datasets[start : start + self.batch_size]]
            yield _batch("datasets", rows)

        context = _CaptureContext(classes=classes, tag_metas=tag_metas, project=project_id)
        jobs = (
            (dataset, images)
            for dataset in datasets
            for images in self._image_batches(dataset, project_id)
        )
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="supervisely") as pool:
            window: deque[Future[list[TablePage]]] = deque()
            try:
                for dataset, images in jobs:
                    window.append(pool.submit(self._capture_batch, dataset, images, context))
                    if len(window) >= self.concurrency:
                        yield from window.popleft().result()
                while window:
                    yield from window.popleft().result()
            finally:
                for pending in window:
                    pending.cancel()

    def close(self) -> None:
        """Close the connection pools."""
        self.api.close()
        self._links.close()

    def __enter__(self) -> SuperviselyPlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- HTTP ---------------------------------------------------------------------------------

    def _classify(
        self, response: httpx.Response, context: CallContext, detail: str
    ) -> PlatformError | None:
        """A 404 or 405 that is not Supervisely's JSON error means this is not its API."""
        if response.status_code in (404, 405):
            try:
                body = response.json()
            except ValueError:
                body = None
            if not (isinstance(body, dict) and "error" in body):
                kind = response.headers.get("content-type", "no content type")
                return RequestRejected(
                    f"supervisely: {context.method} {context.url} answered "
                    f"{response.status_code} ({kind}) instead of a Supervisely API error; "
                    f"is {self.server_url} a Supervisely server?",
                    platform=self.name,
                    project=context.project,
                    status=response.status_code,
                )
        return None

    def _call(
        self,
        method: str,
        body: Any,
        *,
        project: str | None = None,
        idempotent: bool = True,
    ) -> Any:
        return self.api.request_json(
            "POST", method, json=body, project=project, idempotent=idempotent
        )

    def _list(
        self,
        method: str,
        body: dict[str, Any],
        *,
        project: str | None,
        mode: Literal["page", "token"] = "page",
        per_page: int | None = None,
    ) -> Iterator[list[Any]]:
        paginator: PageNumberPaginator | CursorPaginator
        if mode == "token":
            paginator = CursorPaginator(per_page=per_page, extra={"pagination_mode": "token"})
        else:
            paginator = PageNumberPaginator(per_page=per_page)
        request = PageRequest("POST", method, json=dict(body))
        yield from paginate(self.api, request, paginator, project=project)

    # --- capture ------------------------------------------------------------------------------

    def _project_json(self, project_id: str) -> dict[str, Any]:
        try:
            pid = int(project_id)
        except (TypeError, ValueError):
            raise PlatformNotFound(
                f"supervisely: project id {project_id!r} is not a number",
                platform=self.name,
                project=str(project_id),
            ) from None
        try:
            info = self._call("projects.info", {"id": pid}, project=str(project_id))
        except PlatformNotFound as exc:
            raise PlatformNotFound(
                f"supervisely: project {pid} does not exist on {self.instance} "
                f"(or the token cannot see it): {exc.message}",
                platform=self.name,
                project=str(project_id),
                status=exc.status,
            ) from None
        if not isinstance(info, dict) or "id" not in info:
            raise RequestRejected(
                f"supervisely: projects.info for {pid} did not answer a project "
                f"(expected key 'id'); is {self.server_url} a Supervisely server?",
                platform=self.name,
                project=str(project_id),
            )
        return info

    def _info(self, info: dict[str, Any], project_id: str) -> ProjectInfo:
        kind = str(info.get("type") or "unknown")
        if kind not in SUPPORTED_KINDS:
            later = " (videos and volumes are planned)" if kind in ("videos", "volumes") else ""
            raise UnsupportedProject(
                f"supervisely project {info.get('id')} ({info.get('name')!r}) is a {kind!r} "
                f"project; labelvault captures images projects only{later}",
                platform=self.name,
                project=str(project_id),
            )
        counts = {
            "items": _int(info.get("imagesCount") or info.get("itemsCount")) or 0,
            "datasets": _int(info.get("datasetsCount")) or 0,
        }
        workspace = info.get("workspaceId")
        return ProjectInfo(
            platform=self.name,
            instance=self.instance,
            project_id=str(info["id"]),
            name=str(info.get("name") or ""),
            kind=kind,
            updated_at=_ts(info.get("updatedAt")),
            workspace_id=str(workspace) if workspace is not None else None,
            counts=counts,
        )

    @staticmethod
    def _settings_natural(settings: Mapping[str, Any], tag_names: Mapping[Any, Any]) -> Any:
        natural = dict(settings or {})
        if "groupImagesByTagId" in natural:
            tag_id = natural.pop("groupImagesByTagId")
            natural["groupImagesByTagName"] = tag_names.get(tag_id, tag_id)
        return natural

    def _project_row(
        self, info: dict[str, Any], meta: dict[str, Any], tag_metas: Mapping[Any, dict[str, Any]]
    ) -> Row:
        definitions = {
            "classes": _strip_ids(meta.get("classes", [])),
            "tags": _strip_ids(meta.get("tags", [])),
        }
        tag_names = {tag_id: tag.get("name") for tag_id, tag in tag_metas.items()}
        settings = self._settings_natural(info.get("settings") or {}, tag_names)
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
            "created_at": _ts(info.get("createdAt")),
            "updated_at": _ts(info.get("updatedAt")),
            "raw": canonical_json({"info": info, "meta": meta}),
        }

    def _datasets(self, pid: int, project: str) -> list[_Dataset]:
        """The dataset tree in key order (parents first); a few records per dataset."""
        body = {
            "projectId": pid,
            "filter": [],
            "recursive": True,
            "extraFields": ["customData"],
            "sort": "id",
            "sort_order": "asc",
        }
        infos = {
            int(ds["id"]): ds
            for page in self._list("datasets.list", body, project=project)
            for ds in page
        }
        resolved: dict[int, tuple[str, str]] = {}

        def resolve(dataset_id: int, trail: tuple[int, ...] = ()) -> tuple[str, str]:
            if dataset_id in resolved:
                return resolved[dataset_id]
            if dataset_id in trail:
                raise RequestRejected(
                    f"supervisely: datasets of project {pid} form a cycle at {dataset_id}",
                    platform=self.name,
                    project=project,
                )
            ds = infos[dataset_id]
            parent = ds.get("parentId")
            if parent is None or int(parent) not in infos:
                if parent is not None:
                    logger.warning("dataset %s has an unknown parent %s", dataset_id, parent)
                key, path = _pad(dataset_id), str(ds.get("name"))
            else:
                parent_key, parent_path = resolve(int(parent), (*trail, dataset_id))
                key = f"{parent_key}/{_pad(dataset_id)}"
                path = f"{parent_path}/{ds.get('name')}"
            resolved[dataset_id] = (key, path)
            return key, path

        datasets = []
        for dataset_id, ds in infos.items():
            key, path = resolve(dataset_id)
            parent_key = key.rpartition("/")[0] or None
            datasets.append(_Dataset(info=ds, key=key, path=path, parent_key=parent_key))
        datasets.sort(key=lambda d: d.key)
        return datasets

    @staticmethod
    def _dataset_row(ds: _Dataset) -> Row:
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
            "created_at": _ts(info.get("createdAt")),
            "updated_at": _ts(info.get("updatedAt")),
            "raw": canonical_json(info),
        }

    def _image_batches(self, dataset: _Dataset, project: str) -> Iterator[list[dict[str, Any]]]:
        """The dataset's images in id order, ``batch_size`` at a time."""
        body: dict[str, Any] = {
            "datasetId": int(dataset.info["id"]),
            "projectId": None,
            "filter": [],
            "sort": "id",
            "sort_order": "asc",
            "forceMetadataForLinks": True,
            "recursive": False,
        }
        pending: list[dict[str, Any]] = []
        last_id = -1
        for page in self._list(
            "images.list",
            body,
            project=project,
            mode=self.image_listing,
            per_page=self.list_page_size,
        ):
            for image in page:
                image_id = int(image["id"])
                if image_id <= last_id:
                    raise PaginationError(
                        f"supervisely: images.list of dataset {dataset.info['id']} returned "
                        f"image {image_id} after {last_id} (ids must increase)",
                        platform=self.name,
                        project=project,
                    )
                last_id = image_id
                pending.append(image)
                if len(pending) >= self.batch_size:
                    yield pending
                    pending = []
        if pending:
            yield pending

    def _capture_batch(
        self, dataset: _Dataset, images: list[dict[str, Any]], context: _CaptureContext
    ) -> list[TablePage]:
        """Items, annotations and tags of one batch of images (runs in a worker thread)."""
        dataset_id = int(dataset.info["id"])
        image_ids = [int(image["id"]) for image in images]
        figures: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in image_ids}
        body = {
            "datasetId": dataset_id,
            "fields": list(_FIGURE_FIELDS),
            "filter": [{"field": "entityId", "operator": "in", "value": image_ids}],
            "integerCoords": False,
        }
        for page in self._list("figures.list", body, project=context.project):
            for figure in page:
                owner = figure.get("entityId")
                if owner not in figures:
                    raise RequestRejected(
                        f"supervisely: figures.list returned figure {figure.get('id')} of image "
                        f"{owner}, which was not asked for (expected key 'entityId' in "
                        f"{image_ids[:3]}…)",
                        platform=self.name,
                        project=context.project,
                    )
                figures[owner].append(figure)
        alpha_ids = [
            int(f["id"])
            for owned in figures.values()
            for f in owned
            if f.get("geometryType") == GeometryType.ALPHA_MASK.value
        ]
        alpha = self._download_geometries(alpha_ids, context.project) if alpha_ids else {}

        items: list[Row] = []
        annotations: list[Row] = []
        tags: list[Row] = []
        for image in images:
            item_key = f"{dataset.key}#{_pad(image['id'])}"
            item_ref = [dataset.path, image.get("name")]
            items.append(self._item_row(image, item_key, dataset, item_ref))
            item_owner = {"item": item_ref}
            for n, tag in enumerate(sorted(image.get("tags") or [], key=_tag_order)):
                tags.append(
                    self._tag_row(tag, n, item_key, OwnerType.ITEM, item_owner, context=context)
                )
            of_class: Counter[Any] = Counter()
            for figure in sorted(figures[int(image["id"])], key=lambda f: int(f["id"])):
                row = self._annotation_row(figure, item_key, item_ref, alpha, context)
                annotations.append(row)
                owner = {"annotation": _figure_ref(item_ref, row["class_name"], of_class)}
                for n, tag in enumerate(sorted(figure.get("tags") or [], key=_tag_order)):
                    tags.append(
                        self._tag_row(
                            tag, n, row["key"], OwnerType.ANNOTATION, owner, context=context
                        )
                    )
        pages = [_batch("items", items)]
        if annotations:
            pages.append(_batch("annotations", annotations))
        if tags:
            pages.append(_batch("tags", tags))
        return pages

    def _download_geometries(self, ids: Sequence[int], project: str) -> dict[int, Any]:
        response = self.api.request(
            "POST",
            "figures.bulk.download.geometry",
            json={"ids": list(ids)},
            project=project,
            idempotent=True,
        )
        found: dict[int, Any] = {}
        try:
            for part in iter_multipart(response.content, response.headers.get("content-type", "")):
                found[int(part.name or "")] = json.loads(part.content)
        except ValueError as exc:
            raise RequestRejected(
                f"supervisely: figures.bulk.download.geometry answered a malformed multipart "
                f"body: {exc}",
                platform=self.name,
                project=project,
            ) from None
        missing = sorted(set(ids) - set(found))
        if missing:
            raise RequestRejected(
                f"supervisely: figures.bulk.download.geometry left out figures {missing[:5]} "
                "(expected one part named after each figure id)",
                platform=self.name,
                project=project,
            )
        return found

    @staticmethod
    def _item_row(image: dict[str, Any], key: str, dataset: _Dataset, ref: list[Any]) -> Row:
        meta = image.get("meta") or {}
        content = {
            "item": ref,
            "hash": image.get("hash"),
            "link": image.get("link"),
            "meta": meta,
            "description": image.get("description") or "",
            "width": image.get("width"),
            "height": image.get("height"),
            "size": _int(image.get("size")),
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
            "size_bytes": _int(image.get("size")),
            "width": _int(image.get("width")),
            "height": _int(image.get("height")),
            "meta": canonical_json(meta),
            "created_at": _ts(image.get("createdAt")),
            "updated_at": _ts(image.get("updatedAt")),
            "raw": canonical_json(image),
        }

    @staticmethod
    def _annotation_row(
        figure: dict[str, Any],
        item_key: str,
        item_ref: list[Any],
        alpha: Mapping[int, Any],
        context: _CaptureContext,
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
            "key": f"{item_key}#{_pad(figure['id'])}",
            "fingerprint": fingerprint(content),
            "item_key": item_key,
            "kind": "figure",
            "class_name": class_name,
            "geometry_type": GeometryType(str(raw_type)).value,
            "geometry": _json_or_none(geometry),
            "author": figure.get("labelerLogin"),
            "created_at": _ts(figure.get("createdAt")),
            "updated_at": _ts(figure.get("updatedAt")),
            "raw": canonical_json(figure),
        }

    @staticmethod
    def _tag_row(
        tag: dict[str, Any],
        ordinal: int,
        owner_key: str,
        owner_type: OwnerType,
        owner_ref: dict[str, Any],
        *,
        context: _CaptureContext,
    ) -> Row:
        meta = context.tag_metas.get(tag.get("tagId")) or {}
        name = tag.get("name") or meta.get("name")
        value = tag.get("value")
        content = {"owner": owner_ref, "name": name, "value": value}
        assignment = tag.get("id")
        # Assignments without an id (none on a real server) sort after those with one.
        suffix = _pad(assignment) if assignment is not None else f"~{ordinal:06d}"
        return {
            "key": f"{owner_key}!{suffix}",
            "fingerprint": fingerprint(content),
            "owner_type": owner_type.value,
            "owner_key": owner_key,
            "name": name,
            "value": canonical_json(value),
            "author": tag.get("labelerLogin"),
            "created_at": _ts(tag.get("createdAt")),
            "updated_at": _ts(tag.get("updatedAt")),
            "raw": canonical_json(tag),
        }

    # --- restore (driven by labelvault.restore) -----------------------------------------------

    def free_project_name(self, workspace_id: str, wanted: str) -> str:
        """``wanted``, or ``wanted_001``, ``wanted_002`` … when the name is taken."""
        candidate = wanted
        for suffix in range(1, 1000):
            if self.find_project_by_name(workspace_id, candidate) is None:
                return candidate
            candidate = f"{wanted}_{suffix:03d}"
        raise RequestRejected(
            f"supervisely: no free project name like {wanted!r} in workspace {workspace_id}",
            platform=self.name,
        )

    def find_project_by_name(self, workspace_id: str, name: str) -> ProjectInfo | None:
        """The project called ``name`` in the workspace, if any."""
        body = {
            "workspaceId": int(workspace_id),
            "filter": [{"field": "name", "operator": "=", "value": name}],
            "fields": ["id", "name", "type", "workspaceId", "updatedAt", "createdAt"],
        }
        for page in self._list("projects.list", body, project=None):
            for project in page:
                if project.get("name") == name:
                    return ProjectInfo(
                        platform=self.name,
                        instance=self.instance,
                        project_id=str(project["id"]),
                        name=name,
                        kind=str(project.get("type") or "images"),
                        updated_at=_ts(project.get("updatedAt")),
                        workspace_id=str(workspace_id),
                    )
        return None

    def default_workspace(self, source: Row) -> str:
        """The source project's workspace (from its raw record)."""
        info = _loads(source["raw"]).get("info", {})
        workspace = info.get("workspaceId")
        if workspace is None:
            raise ConfigurationError(
                "supervisely: the version does not say which workspace the project was in; "
                "pass a workspace to restore into"
            )
        return str(workspace)

    def create_project(
        self, source: Row, *, workspace_id: str, name: str, description: str
    ) -> ProjectInfo:
        """Create the project (info, readme, custom data, settings that need no new ids)."""
        raw = _loads(source["raw"])
        info = raw.get("info", {})
        settings = {
            k: v for k, v in (info.get("settings") or {}).items() if k != "groupImagesByTagId"
        }
        body = {
            "name": name,
            "workspaceId": int(workspace_id),
            "description": description,
            "type": info.get("type") or "images",
            "readme": info.get("readme") or "",
            "settings": settings,
            "customData": info.get("customData") or {},
        }
        created = self._call("projects.add", body, idempotent=False)
        return self._info(created, str(created.get("id")))

    def prepare_project(self, project_id: str, source: Row) -> None:
        """Meta (classes, tag metas) and settings that refer to them; safe to repeat."""
        raw = _loads(source["raw"])
        wanted = raw.get("meta", {})
        pid = int(project_id)
        current = self._call("projects.meta", {"id": pid}, project=project_id)
        have_classes = {c.get("title") for c in current.get("classes", [])}
        have_tags = {t.get("name") for t in current.get("tags", [])}
        want_classes = [c.get("title") for c in wanted.get("classes", [])]
        want_tags = [t.get("name") for t in wanted.get("tags", [])]
        if not (set(want_classes) <= have_classes and set(want_tags) <= have_tags):
            meta = {
                "classes": _strip_ids(wanted.get("classes", [])),
                "tags": _strip_ids(wanted.get("tags", [])),
            }
            current = self._call(
                "projects.meta.update",
                {"id": pid, "meta": meta},
                project=project_id,
                idempotent=True,
            )
        definitions = _Definitions(
            class_ids={c["title"]: int(c["id"]) for c in current.get("classes", [])},
            tag_ids={t["name"]: int(t["id"]) for t in current.get("tags", [])},
        )
        missing = [t for t in want_classes if t not in definitions.class_ids]
        missing += [t for t in want_tags if t not in definitions.tag_ids]
        if missing:
            raise RequestRejected(
                f"supervisely: projects.meta.update did not create {missing[:5]}",
                platform=self.name,
                project=project_id,
            )
        self._definitions[project_id] = definitions
        settings = raw.get("info", {}).get("settings") or {}
        group = settings.get("groupImagesByTagId")
        if group is not None:
            old_names = {t.get("id"): t.get("name") for t in wanted.get("tags", [])}
            new_id = definitions.tag_ids.get(old_names.get(group, ""))
            if new_id is None:
                logger.warning("groupImagesByTagId %s names no tag of the version; dropped", group)
            else:
                self._call(
                    "projects.settings.update",
                    {"id": pid, "settings": {"groupImagesByTagId": new_id}},
                    project=project_id,
                    idempotent=True,
                )

    @staticmethod
    def _dataset_id(dataset_id: str | None) -> int:
        if dataset_id is None:
            raise ConfigurationError("supervisely: every image belongs to a dataset")
        return int(dataset_id)

    def _defs(self, project_id: str) -> _Definitions:
        try:
            return self._definitions[project_id]
        except KeyError:
            raise ConfigurationError(
                f"supervisely: prepare_project({project_id}) must run before adding content"
            ) from None

    def add_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str:
        """Create one dataset under ``parent_id`` (None: the root); returns its id."""
        body = {
            "projectId": int(project_id),
            "name": row["name"],
            "description": row.get("description") or "",
            "parentId": int(parent_id) if parent_id is not None else None,
            "customData": _loads(row.get("custom_data")) or {},
        }
        created = self._call("datasets.add", body, project=project_id, idempotent=False)
        return str(created["id"])

    def find_dataset(self, project_id: str, row: Row, parent_id: str | None) -> str | None:
        """The id of a dataset an earlier, interrupted attempt already created."""
        body: dict[str, Any] = {
            "projectId": int(project_id),
            "filter": [{"field": "name", "operator": "=", "value": row["name"]}],
            "parentId": int(parent_id) if parent_id is not None else None,
        }
        for page in self._list("datasets.list", body, project=project_id):
            for ds in page:
                if ds.get("name") == row["name"] and ds.get("parentId") == body["parentId"]:
                    return str(ds["id"])
        return None

    def missing_items(self, project_id: str, rows: Sequence[Row]) -> dict[str, str]:
        """Items whose media is gone: hashes the instance no longer has, links that do not
        answer ``HEAD`` with 200. Returns key → reason."""
        missing: dict[str, str] = {}
        hashed = [row for row in rows if row.get("hash")]
        for start in range(0, len(hashed), _HASH_CHECK_BATCH):
            chunk = hashed[start : start + _HASH_CHECK_BATCH]
            existing = set(
                self._call(
                    "images.internal.hashes.list",
                    [row["hash"] for row in chunk],
                    project=project_id,
                )
            )
            for row in chunk:
                if row["hash"] not in existing:
                    missing[row["key"]] = f"hash {row['hash']} no longer exists on the server"
        linked = [row for row in rows if not row.get("hash") and row.get("link")]
        if linked:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="links") as pool:
                reasons = pool.map(self._check_link, [row["link"] for row in linked])
                for row, reason in zip(linked, reasons, strict=True):
                    if reason:
                        missing[row["key"]] = reason
        return missing

    def _check_link(self, link: str) -> str | None:
        """Why ``link`` cannot be restored (it must answer ``HEAD`` with 200), or None."""
        scheme = urlsplit(link).scheme
        if scheme not in ("http", "https"):
            logger.info("cannot check a %s link without storage credentials; kept", scheme)
            return None
        shown = self._links.redactor.url(link)
        try:
            response = self._links.request("HEAD", link, idempotent=True)
        except PlatformError as exc:
            if exc.status is not None:
                return f"link {shown} answered HEAD {exc.status}"
            return f"link {shown} does not answer: {exc.message}"
        if response.status_code != 200:
            return f"link {shown} answered HEAD {response.status_code}"
        return None

    def add_items(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        """Add images by hash or link (never pixels); returns key → new image id."""
        dataset = self._dataset_id(dataset_id)
        images = []
        by_name: dict[str, str] = {}
        for row in rows:
            raw = _loads(row["raw"])
            entry: dict[str, Any] = {"title": row["name"]}
            if row.get("hash"):
                entry["hash"] = row["hash"]
            elif row.get("link"):
                entry["link"] = row["link"]
            else:
                raise RequestRejected(
                    f"supervisely: item {row['key']} has neither hash nor link",
                    platform=self.name,
                    project=project_id,
                )
            entry["meta"] = _loads(row.get("meta")) or {}
            if raw.get("description"):
                entry["description"] = raw["description"]
            images.append(entry)
            by_name[row["name"]] = row["key"]
        body = {
            "datasetId": dataset,
            "images": images,
            "forceMetadataForLinks": True,
            "skipValidation": False,
        }
        created = self._call("images.bulk.add", body, project=project_id, idempotent=False)
        ids = {by_name[i["name"]]: str(i["id"]) for i in created if i.get("name") in by_name}
        if len(ids) != len(rows):
            raise RequestRejected(
                f"supervisely: images.bulk.add answered {len(created)} images for "
                f"{len(rows)} requested",
                platform=self.name,
                project=project_id,
            )
        return ids

    def _figure_payload(self, row: Row, entity_id: int, defs: _Definitions) -> dict[str, Any]:
        raw = _loads(row["raw"])
        class_id = defs.class_ids.get(row.get("class_name") or "")
        if class_id is None:
            raise RequestRejected(
                f"supervisely: annotation {row['key']} has class {row.get('class_name')!r}, "
                "which is not in the restored meta",
                platform=self.name,
            )
        geometry_type = raw.get("geometryType") or row.get("geometry_type")
        payload: dict[str, Any] = {
            "entityId": entity_id,
            "classId": class_id,
            "geometryType": geometry_type,
            "meta": raw.get("meta") or {},
        }
        if geometry_type != GeometryType.ALPHA_MASK.value:
            payload["geometry"] = _loads(row.get("geometry"))
        for key in ("priority", "customData", "description"):
            if raw.get(key) not in (None, {}, ""):
                payload[key] = raw[key]
        return payload

    def add_annotations(
        self,
        project_id: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        items: Mapping[str, str],
    ) -> dict[str, str]:
        """Add figures with exact geometry; alpha masks get their geometry uploaded after.

        ``figures.bulk.add`` answers only ids, in request order; each id is paired with the key
        of the row that made that element of the same request.
        """
        defs = self._defs(project_id)
        keyed = [
            (row["key"], self._figure_payload(row, int(items[row["item_key"]]), defs))
            for row in rows
        ]
        body = {
            "datasetId": self._dataset_id(dataset_id),
            "figures": [payload for _, payload in keyed],
        }
        created = self._call("figures.bulk.add", body, project=project_id, idempotent=False)
        if not isinstance(created, list) or len(created) != len(keyed):
            answered = len(created) if isinstance(created, list) else created
            raise RequestRejected(
                f"supervisely: figures.bulk.add answered {answered!r} ids for {len(keyed)} figures",
                platform=self.name,
                project=project_id,
            )
        ids = {key: str(answer["id"]) for (key, _), answer in zip(keyed, created, strict=True)}
        self._upload_alpha(project_id, rows, ids)
        return ids

    def _upload_alpha(self, project_id: str, rows: Sequence[Row], ids: Mapping[str, str]) -> None:
        masks = [
            (ids[row["key"]], row["geometry"])
            for row in rows
            if row["key"] in ids
            and row.get("geometry_type") == GeometryType.ALPHA_MASK.value
            and row.get("geometry") is not None
        ]
        if not masks:
            return
        self.api.request(
            "POST",
            "figures.bulk.upload.geometry",
            data={"figureId": [figure_id for figure_id, _ in masks]},
            files=[
                ("geometry", (figure_id, geometry.encode("utf-8"), "application/json"))
                for figure_id, geometry in masks
            ],
            project=project_id,
            idempotent=True,
        )

    def add_tags(
        self, project_id: str, rows: Sequence[Row], owners: Mapping[str, str]
    ) -> dict[str, str]:
        """Add image tags and figure tags with their values, duplicates included."""
        defs = self._defs(project_id)
        image_tags: list[tuple[str, dict[str, Any]]] = []
        figure_tags: list[tuple[str, dict[str, Any]]] = []
        for row in rows:
            tag_id = defs.tag_ids.get(row.get("name") or "")
            if tag_id is None:
                raise RequestRejected(
                    f"supervisely: tag {row['key']} is a {row.get('name')!r}, which is not in "
                    "the restored meta",
                    platform=self.name,
                    project=project_id,
                )
            value = _loads(row.get("value"))
            owner = int(owners[row["owner_key"]])
            if row["owner_type"] == OwnerType.ITEM.value:
                image_tags.append(
                    (row["key"], {"tagId": tag_id, "entityId": owner, "value": value})
                )
            else:
                figure_tags.append(
                    (row["key"], {"tagId": tag_id, "figureId": owner, "value": value})
                )
        ids: dict[str, str] = {}
        for method, keyed in (
            ("tags.entities.bulk.add", image_tags),
            ("figures.tags.bulk.add", figure_tags),
        ):
            if not keyed:
                continue
            body = {"projectId": int(project_id), "tags": [tag for _, tag in keyed]}
            created = self._call(method, body, project=project_id, idempotent=False)
            answers = created if isinstance(created, list) else []
            for index, (key, _) in enumerate(keyed):
                answer = answers[index] if index < len(answers) else None
                ids[key] = str(answer.get("id")) if isinstance(answer, dict) else ""
        return ids

    def already_restored(
        self,
        project_id: str,
        table: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        """Rows of ``table`` that an interrupted attempt created although its journal entry
        was never written: items by name, figures and tags by content. Returns key → id."""
        if table == "items":
            return self._landed_items(project_id, dataset_id, rows)
        if table == "annotations":
            return self._landed_annotations(project_id, dataset_id, rows, owners)
        if table == "tags":
            return self._landed_tags(project_id, dataset_id, rows, owners)
        return {}

    def _landed_items(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row]
    ) -> dict[str, str]:
        names = {row["name"]: row["key"] for row in rows}
        body = {
            "datasetId": self._dataset_id(dataset_id),
            "filter": [{"field": "name", "operator": "in", "value": sorted(names)}],
        }
        return {
            names[image["name"]]: str(image["id"])
            for page in self._list("images.list", body, project=project_id)
            for image in page
            if image.get("name") in names
        }

    def _figures_of(
        self, project_id: str, dataset_id: str | None, image_ids: list[int]
    ) -> list[Any]:
        body = {
            "datasetId": self._dataset_id(dataset_id),
            "fields": list(_FIGURE_FIELDS),
            "filter": [{"field": "entityId", "operator": "in", "value": image_ids}],
            "integerCoords": False,
        }
        return [f for page in self._list("figures.list", body, project=project_id) for f in page]

    def _landed_annotations(
        self, project_id: str, dataset_id: str | None, rows: Sequence[Row], items: Mapping[str, str]
    ) -> dict[str, str]:
        defs = self._defs(project_id)
        image_ids = sorted(
            {int(items[row["item_key"]]) for row in rows if row["item_key"] in items}
        )
        if not image_ids:
            return {}
        pool: dict[str, list[str]] = {}
        for figure in self._figures_of(project_id, dataset_id, image_ids):
            geometry = figure.get("geometry")
            signature = canonical_json(
                [
                    figure.get("entityId"),
                    figure.get("classId"),
                    figure.get("geometryType"),
                    None
                    if figure.get("geometryType") == GeometryType.ALPHA_MASK.value
                    else geometry,
                ]
            )
            pool.setdefault(signature, []).append(str(figure["id"]))
        landed: dict[str, str] = {}
        for row in rows:
            if row["item_key"] not in items:
                continue
            payload = self._figure_payload(row, int(items[row["item_key"]]), defs)
            signature = canonical_json(
                [
                    payload["entityId"],
                    payload["classId"],
                    payload["geometryType"],
                    payload.get("geometry"),
                ]
            )
            if pool.get(signature):
                landed[row["key"]] = pool[signature].pop(0)
        self._upload_alpha(project_id, rows, landed)  # the geometry upload may not have landed
        return landed

    def _landed_tags(
        self,
        project_id: str,
        dataset_id: str | None,
        rows: Sequence[Row],
        owners: Mapping[str, str],
    ) -> dict[str, str]:
        defs = self._defs(project_id)
        owner_ids = {int(owners[row["owner_key"]]) for row in rows if row["owner_key"] in owners}
        if not owner_ids:
            return {}
        existing: Counter[str] = Counter()
        item_ids = [
            int(owners[row["owner_key"]])
            for row in rows
            if row["owner_type"] == OwnerType.ITEM.value and row["owner_key"] in owners
        ]
        if item_ids:
            body = {
                "datasetId": self._dataset_id(dataset_id),
                "filter": [{"field": "id", "operator": "in", "value": sorted(set(item_ids))}],
            }
            for page in self._list("images.list", body, project=project_id):
                for image in page:
                    for tag in image.get("tags") or []:
                        existing[
                            canonical_json(
                                ["item", image["id"], tag.get("tagId"), tag.get("value")]
                            )
                        ] += 1
        figure_ids = {
            int(owners[row["owner_key"]])
            for row in rows
            if row["owner_type"] != OwnerType.ITEM.value and row["owner_key"] in owners
        }
        if figure_ids:
            entity_ids = sorted(
                {
                    int(f["entityId"])
                    for f in self._figures_by_ids(project_id, dataset_id, figure_ids)
                }
            )
            for figure in self._figures_of(project_id, dataset_id, entity_ids):
                if int(figure["id"]) not in figure_ids:
                    continue
                for tag in figure.get("tags") or []:
                    existing[
                        canonical_json(
                            ["annotation", figure["id"], tag.get("tagId"), tag.get("value")]
                        )
                    ] += 1
        landed: dict[str, str] = {}
        for row in rows:
            if row["owner_key"] not in owners:
                continue
            kind = "item" if row["owner_type"] == OwnerType.ITEM.value else "annotation"
            signature = canonical_json(
                [
                    kind,
                    int(owners[row["owner_key"]]),
                    defs.tag_ids.get(row.get("name") or ""),
                    _loads(row.get("value")),
                ]
            )
            if existing[signature] > 0:
                existing[signature] -= 1
                landed[row["key"]] = ""
        return landed

    def _figures_by_ids(self, project_id: str, dataset_id: str | None, ids: set[int]) -> list[Any]:
        body = {
            "datasetId": self._dataset_id(dataset_id),
            "fields": ["id", "entityId"],
            "filter": [{"field": "id", "operator": "in", "value": sorted(ids)}],
        }
        return [f for page in self._list("figures.list", body, project=project_id) for f in page]


if TYPE_CHECKING:

    def _is_a_restore_target(platform: SuperviselyPlatform) -> RestoreTarget:
        return platform


@dataclass(frozen=True)
class _CaptureContext:
    """What every batch of a capture needs to know about the project."""

    classes: Mapping[Any, dict[str, Any]]
    tag_metas: Mapping[Any, dict[str, Any]]
    project: str


def _figure_ref(item_ref: list[Any], class_name: Any, seen: Counter[Any]) -> dict[str, Any]:
    """An id-free reference to a figure that survives edits of its content: its item, its
    class and its place among the item's figures of that class in key order (``seen`` counts
    the ones before it). Restore creates figures in key order, so the place survives a restore,
    a restore of some classes too."""
    ordinal = seen[class_name]
    seen[class_name] += 1
    return {"item": item_ref, "class": class_name, "ordinal": ordinal}


def _tag_order(tag: Mapping[str, Any]) -> tuple[int, int]:
    assignment = tag.get("id")
    return (0, int(assignment)) if assignment is not None else (1, 0)
