"""Supervisely reconciliation: what an interrupted restore created but never journaled."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from labelvault.platforms.streams import Row
from labelvault.platforms.supervisely.rows import (
    FIGURE_FIELDS,
    loads,
)
from labelvault.platforms.supervisely.writes import SuperviselyWrites
from labelvault.snapshot.schema import (
    GeometryType,
    OwnerType,
    canonical_json,
)

logger = logging.getLogger("labelvault.platforms.supervisely")


class SuperviselyReconcile(SuperviselyWrites):
    """Finds rows that landed on the platform: items by name, figures and tags by content."""

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
            "fields": list(FIGURE_FIELDS),
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
                    loads(row.get("value")),
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
