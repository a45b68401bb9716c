"""Supervisely restore: the project, its definitions, datasets, images, figures and tags."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from labelvault.errors import (
    ConfigurationError,
    PlatformError,
    RequestRejected,
)
from labelvault.platforms.base import ProjectInfo
from labelvault.platforms.streams import Row
from labelvault.platforms.supervisely.api import SuperviselyApi
from labelvault.platforms.supervisely.rows import (
    HASH_CHECK_BATCH,
    Definitions,
    loads,
    strip_ids,
    timestamp,
)
from labelvault.snapshot.schema import (
    GeometryType,
    OwnerType,
)

logger = logging.getLogger("labelvault.platforms.supervisely")


class SuperviselyWrites(SuperviselyApi):
    """Creates a project and its content, pairing every new id with the source row's key."""

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
                        updated_at=timestamp(project.get("updatedAt")),
                        workspace_id=str(workspace_id),
                    )
        return None

    def default_workspace(self, source: Row) -> str:
        """The source project's workspace (from its raw record)."""
        info = loads(source["raw"]).get("info", {})
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
        raw = loads(source["raw"])
        info = raw.get("info", {})
        # The grouping tag needs its new id (set in prepare_project); an explicit null is kept.
        settings = {
            k: v
            for k, v in (info.get("settings") or {}).items()
            if k != "groupImagesByTagId" or v is None
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

    def remember_project(self, project_id: str, source: Row) -> None:
        """What a restore into ``project_id`` needs to know of its source beside the meta
        (nothing, for images)."""

    def learn_project(self, project_id: str, source: Row) -> None:
        """Read back what :meth:`prepare_project` set up (the new class and tag ids), writing
        nothing: a partition restored in a process of its own starts here."""
        self.remember_project(project_id, source)
        wanted = loads(source["raw"]).get("meta", {})
        current = self._call("projects.meta", {"id": int(project_id)}, project=project_id)
        self._definitions[project_id] = self._defined(project_id, wanted, current)

    def _defined(
        self, project_id: str, wanted: dict[str, Any], current: dict[str, Any]
    ) -> Definitions:
        """The new ids of the classes and tag metas ``wanted``; every one must exist."""
        definitions = Definitions(
            class_ids={c["title"]: int(c["id"]) for c in current.get("classes", [])},
            tag_ids={t["name"]: int(t["id"]) for t in current.get("tags", [])},
        )
        classes = [c.get("title") for c in wanted.get("classes", [])]
        tags = [t.get("name") for t in wanted.get("tags", [])]
        missing = [name for name in classes if name not in definitions.class_ids]
        missing += [name for name in tags if name not in definitions.tag_ids]
        if missing:
            raise RequestRejected(
                f"supervisely: projects.meta.update did not create {missing[:5]}",
                platform=self.name,
                project=project_id,
            )
        return definitions

    def prepare_project(self, project_id: str, source: Row) -> None:
        """Meta (classes, tag metas) and settings that refer to them; safe to repeat."""
        self.remember_project(project_id, source)
        raw = loads(source["raw"])
        wanted = raw.get("meta", {})
        pid = int(project_id)
        current = self._call("projects.meta", {"id": pid}, project=project_id)
        have_classes = {c.get("title") for c in current.get("classes", [])}
        have_tags = {t.get("name") for t in current.get("tags", [])}
        want_classes = [c.get("title") for c in wanted.get("classes", [])]
        want_tags = [t.get("name") for t in wanted.get("tags", [])]
        if not (set(want_classes) <= have_classes and set(want_tags) <= have_tags):
            meta = {
                "classes": strip_ids(wanted.get("classes", [])),
                "tags": strip_ids(wanted.get("tags", [])),
            }
            current = self._call(
                "projects.meta.update",
                {"id": pid, "meta": meta},
                project=project_id,
                idempotent=True,
            )
        definitions = self._defined(project_id, wanted, current)
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

    def _defs(self, project_id: str) -> Definitions:
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
            "customData": loads(row.get("custom_data")) or {},
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
        for start in range(0, len(hashed), HASH_CHECK_BATCH):
            chunk = hashed[start : start + HASH_CHECK_BATCH]
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
            raw = loads(row["raw"])
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
            entry["meta"] = loads(row.get("meta")) or {}
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

    def _figure_payload(self, row: Row, entity_id: int, defs: Definitions) -> dict[str, Any]:
        raw = loads(row["raw"])
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
            payload["geometry"] = loads(row.get("geometry"))
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
            value = loads(row.get("value"))
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
