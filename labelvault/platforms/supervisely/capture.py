"""Supervisely capture: a project's pages, batch by batch of images, in key order."""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labelvault.errors import (
    PaginationError,
    RequestRejected,
)
from labelvault.http import (
    iter_multipart,
)
from labelvault.platforms.base import HEAD_PARTITION, Partition, TablePage
from labelvault.platforms.streams import Row
from labelvault.platforms.supervisely.rows import (
    FIGURE_FIELDS,
    MULTIVIEW,
    CaptureContext,
    Dataset,
    annotation_row,
    dataset_row,
    figure_ref,
    item_row,
    pad,
    project_row,
    table_page,
    tag_order,
    tag_row,
    user_row,
)
from labelvault.platforms.supervisely.volume import VolumeCapture
from labelvault.snapshot.schema import (
    GeometryType,
    OwnerType,
)

logger = logging.getLogger("labelvault.platforms.supervisely")


@dataclass(frozen=True)
class _Reading:
    """A project as a capture (or one partition of it) starts reading it."""

    project_id: str
    info: dict[str, Any]
    meta: dict[str, Any]
    datasets: list[Dataset]
    context: CaptureContext


def _items_count(info: dict[str, Any]) -> int:
    count = info.get("imagesCount", info.get("itemsCount", 0))
    return count if isinstance(count, int) else 0


def _noting_authors(pages: list[TablePage], authors: set[str]) -> list[TablePage]:
    """``pages``, after adding the logins their ``author`` columns name to ``authors``."""
    for page in pages:
        if "author" in page.batch.schema.names:
            authors.update(a for a in page.batch.column("author").to_pylist() if a)
    return pages


class SuperviselyCapture(VolumeCapture):
    """Reads a project into labelvault's tables (videos through :mod:`.video`, volumes
    through :mod:`.volume`)."""

    #: Tables several partitions may hold the same row of: a login labels in many datasets.
    shared_tables = frozenset({"users"})
    #: Tables the head partition holds; a dataset's partition holds its range of the others.
    head_tables = frozenset({"project", "datasets"})

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        """Stream the project: ``project``, ``datasets``, then per batch of images its
        ``items``, ``annotations`` and ``tags`` pages (of videos: ``items``, ``videos``,
        ``objects``, ``figures`` and ``video_tags``), then ``users`` (every login that
        labeled a figure or assigned a tag), each table in key order."""
        reading = self._reading(project_id)
        yield from self._head_pages(reading)
        yield from self._dataset_pages(reading, reading.datasets)

    def capture_plan(self, project_id: str) -> list[Partition]:
        """The project's partitions in key order: its ``project`` and ``datasets`` rows, then
        each dataset's items and what hangs off them (a dataset's rows sort before its
        children's: ``#`` before ``/``). A dataset's key range runs from its items' keys
        (``<key>#``) to the next dataset's, the first from the lowest key."""
        reading = self._reading(project_id)
        head = Partition(key=HEAD_PARTITION, label="project and datasets")
        datasets = reading.datasets
        starts = ["", *(f"{dataset.key}#" for dataset in datasets[1:])]
        stops: list[str | None] = [*starts[1:], None]
        return [
            head,
            *(
                Partition(
                    key=dataset.key,
                    label=dataset.path,
                    weight=_items_count(dataset.info),
                    spec={"dataset_id": int(dataset.info["id"])},
                    key_range=(start, stop),
                )
                for dataset, start, stop in zip(datasets, starts, stops, strict=True)
            ),
        ]

    def iter_partition(self, project_id: str, partition: Partition) -> Iterator[TablePage]:
        """The pages of one partition of :meth:`capture_plan`, each table in key order."""
        reading = self._reading(project_id)
        if partition.key == HEAD_PARTITION:
            yield from self._head_pages(reading)
            return
        chosen = [dataset for dataset in reading.datasets if dataset.key == partition.key]
        if not chosen:
            raise RequestRejected(
                f"supervisely: dataset {partition.label!r} of project {project_id} is gone "
                "since the capture was planned; capture again",
                platform=self.name,
                project=project_id,
            )
        yield from self._dataset_pages(reading, chosen)

    def _reading(self, project_id: str) -> _Reading:
        """What every part of a capture reads first: the project, its meta, its datasets."""
        info = self._project_json(project_id)
        self._info(info, project_id)
        pid = int(info["id"])
        meta = self._call("projects.meta", {"id": pid}, project=project_id)
        classes = {c.get("id"): c for c in meta.get("classes", [])}
        tag_metas = {t.get("id"): t for t in meta.get("tags", [])}
        return _Reading(
            project_id=project_id,
            info=info,
            meta=meta,
            datasets=self._datasets(pid, project_id),
            context=CaptureContext(
                classes=classes,
                tag_metas=tag_metas,
                project=project_id,
                multiview=MULTIVIEW
                in (
                    (info.get("settings") or {}).get("labelingInterface"),
                    (meta.get("projectSettings") or {}).get("labelingInterface"),
                ),
            ),
        )

    def _head_pages(self, reading: _Reading) -> Iterator[TablePage]:
        yield table_page(
            "project", [project_row(reading.info, reading.meta, reading.context.tag_metas)]
        )
        datasets = reading.datasets
        for start in range(0, len(datasets), self.batch_size):
            rows = [dataset_row(ds) for ds in datasets[start : start + self.batch_size]]
            yield table_page("datasets", rows)

    def _dataset_pages(self, reading: _Reading, datasets: Sequence[Dataset]) -> Iterator[TablePage]:
        """Items and what hangs off them, of ``datasets`` in key order, then their ``users``."""
        project_id = reading.project_id
        listing: Callable[[Dataset, str], Iterator[list[dict[str, Any]]]]
        capture: Callable[[Dataset, list[dict[str, Any]], CaptureContext], list[TablePage]]
        if reading.info.get("type") == "videos":
            listing, capture = self._video_batches, self._capture_video_batch
        elif reading.info.get("type") == "volumes":
            listing, capture = self._volume_batches, self._capture_volume_batch
        else:
            listing, capture = self._image_batches, self._capture_batch
        jobs = (
            (dataset, entities) for dataset in datasets for entities in listing(dataset, project_id)
        )
        authors: set[str] = set()
        context = reading.context
        slots = self._batch_slots

        def taken(window: deque[Future[list[TablePage]]]) -> list[TablePage]:
            future = window.popleft()
            try:
                return _noting_authors(future.result(), authors)
            finally:
                slots.release()

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="supervisely") as pool:
            window: deque[Future[list[TablePage]]] = deque()
            try:
                for dataset, entities in jobs:
                    # A reader holding no slot waits for one; a reader holding some hands out
                    # its oldest batch instead of waiting, so no two readers wait on each other.
                    while not slots.acquire(blocking=not window):
                        yield from taken(window)
                    window.append(pool.submit(capture, dataset, entities, context))
                while window:
                    yield from taken(window)
            finally:
                for pending in window:
                    pending.cancel()
                    slots.release()
        logins = sorted(authors)
        for start in range(0, len(logins), self.batch_size):
            yield table_page(
                "users", [user_row(login) for login in logins[start : start + self.batch_size]]
            )

    def _datasets(self, pid: int, project: str) -> list[Dataset]:
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
                key, path = pad(dataset_id), str(ds.get("name"))
            else:
                parent_key, parent_path = resolve(int(parent), (*trail, dataset_id))
                key = f"{parent_key}/{pad(dataset_id)}"
                path = f"{parent_path}/{ds.get('name')}"
            resolved[dataset_id] = (key, path)
            return key, path

        datasets = []
        for dataset_id, ds in infos.items():
            key, path = resolve(dataset_id)
            parent_key = key.rpartition("/")[0] or None
            datasets.append(Dataset(info=ds, key=key, path=path, parent_key=parent_key))
        datasets.sort(key=lambda d: d.key)
        return datasets

    def _image_batches(self, dataset: Dataset, project: str) -> Iterator[list[dict[str, Any]]]:
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
        self, dataset: Dataset, images: list[dict[str, Any]], context: CaptureContext
    ) -> list[TablePage]:
        """Items, annotations and tags of one batch of images (runs in a worker thread)."""
        dataset_id = int(dataset.info["id"])
        image_ids = [int(image["id"]) for image in images]
        figures: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in image_ids}
        body = {
            "datasetId": dataset_id,
            "fields": list(FIGURE_FIELDS),
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
        self._add_authors(dataset_id, figures, context.project)

        items: list[Row] = []
        annotations: list[Row] = []
        tags: list[Row] = []
        for image in images:
            item_key = f"{dataset.key}#{pad(image['id'])}"
            item_ref = [dataset.path, image.get("name")]
            items.append(item_row(image, item_key, dataset, item_ref))
            item_owner = {"item": item_ref}
            for n, tag in enumerate(sorted(image.get("tags") or [], key=tag_order)):
                tags.append(tag_row(tag, n, item_key, OwnerType.ITEM, item_owner, context=context))
            of_class: Counter[Any] = Counter()
            for figure in sorted(figures[int(image["id"])], key=lambda f: int(f["id"])):
                row = annotation_row(figure, item_key, item_ref, alpha, context)
                annotations.append(row)
                owner = {"annotation": figure_ref(item_ref, row["class_name"], of_class)}
                for n, tag in enumerate(sorted(figure.get("tags") or [], key=tag_order)):
                    tags.append(
                        tag_row(tag, n, row["key"], OwnerType.ANNOTATION, owner, context=context)
                    )
        pages = [table_page("items", items)]
        if annotations:
            pages.append(table_page("annotations", annotations))
        if tags:
            pages.append(table_page("tags", tags))
        return pages

    def _add_authors(
        self, dataset_id: int, figures: dict[int, list[dict[str, Any]]], project: str
    ) -> None:
        """Set ``labelerLogin`` on the figures of one batch and on their tags."""
        with_figures = [image_id for image_id, owned in figures.items() if owned]
        if not with_figures:
            return
        authors = self._labelers(dataset_id, with_figures, project)
        for owned in figures.values():
            for figure in owned:
                figure_authors = authors.get(int(figure["id"]), {})
                figure["labelerLogin"] = figure_authors.get("figure")
                for tag in figure.get("tags") or []:
                    if tag.get("id") is not None and tag.get("labelerLogin") is None:
                        tag["labelerLogin"] = figure_authors.get(int(tag["id"]))

    def _labelers(
        self, dataset_id: int, image_ids: list[int], project: str
    ) -> dict[int, dict[Any, str | None]]:
        """Who labeled each figure, and each of its tags: figure id → {"figure": login,
        tag assignment id: login}. ``figures.list`` does not say; annotation info does."""
        body = {
            "datasetId": dataset_id,
            "imageIds": image_ids,
            "withCustomBigData": False,
            "forceMetadataForLinks": False,
            "integerCoords": False,
        }
        answer = self._call("annotations.bulk.info", body, project=project)
        found: dict[int, dict[Any, str | None]] = {}
        for entry in answer if isinstance(answer, list) else []:
            annotation = entry.get("annotation") if isinstance(entry, dict) else None
            for obj in (annotation or {}).get("objects") or []:
                if not isinstance(obj, dict) or obj.get("id") is None:
                    continue
                logins: dict[Any, str | None] = {"figure": obj.get("labelerLogin")}
                for tag in obj.get("tags") or []:
                    if isinstance(tag, dict) and tag.get("id") is not None:
                        logins[int(tag["id"])] = tag.get("labelerLogin")
                found[int(obj["id"])] = logins
        return found

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
