"""Label Studio restore: users, the project, tasks imported in bulk with their annotations
and predictions, then drafts."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa

from labelvault import jsonfast
from labelvault.errors import (
    ConfigurationError,
    PlatformError,
    PlatformUnavailable,
    RequestRejected,
    RestoreError,
)
from labelvault.models import RESTORE_COUNTS, RestoreReport
from labelvault.platforms.base import (
    RestoreJournal,
    RestoreProgress,
    RestoreRequest,
    TableReader,
)
from labelvault.platforms.labelstudio.reconcile import (
    ImportJournal,
    LabelStudioReconcile,
    task_content,
)
from labelvault.platforms.labelstudio.rows import PLATFORM, SETTINGS_FIELDS
from labelvault.platforms.streams import rows as row_dicts
from labelvault.platforms.streams import source_row
from labelvault.snapshot.schema import (
    AnnotationKind,
)

logger = logging.getLogger("labelvault.platforms.labelstudio")

T = TypeVar("T")


class LabelStudioRestore(LabelStudioReconcile):
    """Restores a version as a new project."""

    #: Restore options Label Studio cannot honour: it has no workspaces (Community edition)
    #: and no datasets, and an import takes every task or none.
    restore_ignores: tuple[str, ...] = (
        "workspace_id",
        "skip_missed_entities",
        "allow_failures",
        "datasets",
        "classes",
    )

    def restore(
        self,
        tables: TableReader,
        request: RestoreRequest,
        journal: RestoreJournal,
        progress: RestoreProgress | None = None,
    ) -> RestoreReport:
        """Restore a version's tables as a new project, or finish the one the journal names.

        Users named by annotations are created when missing; tasks are imported in bulk with
        annotations and predictions embedded, one import at a time, and each import's new task
        ids are journaled with the source keys they came from; drafts are created per task.
        Nothing of labelvault's stays in the project: a write whose answer was lost (5xx,
        timeout, broken connection) is looked for on the server before it is sent again, and a
        run with the same journal imports only what is missing. A failure raises
        :class:`RestoreError` naming the project created so far.
        """
        origin, options = request.origin, request.options
        row = source_row(tables)
        source_key = str(row["key"])
        new_title = (
            options.project_name if options.project_name is not None else str(row.get("name") or "")
        )
        if not 3 <= len(new_title) <= 50:
            raise ConfigurationError(
                f"a Label Studio project title must be 3 to 50 characters, got {new_title!r}"
            )
        description = options.project_description
        if description is None:
            description = str(row.get("description") or "")
        counts = dict.fromkeys(RESTORE_COUNTS, 0)
        tally = _Tally(counts, progress)
        warnings: list[str] = []
        started = journal.read("project.json")
        resume = str(started["project_id"]) if started else None
        created: str | None = resume
        imports = ImportJournal(journal)
        # A title asked for must be free (the default, the source's own title, is not checked).
        if resume is None and options.project_name is not None and not options.allow_duplicate_name:
            self._refuse_taken_title(new_title)
        try:
            self._restore_users(tables("users"), tally)
            definitions = json.loads(row.get("definitions") or "{}")
            settings = json.loads(row.get("settings") or "{}")
            if resume is None:
                created = self._create_project(
                    new_title,
                    description,
                    definitions.get("label_config"),
                    settings,
                    _restore_mark(journal.prefix),
                )
                journal.record("project.json", {"project_id": created})
            else:
                self._project_number(resume)
                imports.load()
            assert created is not None
            number = int(created)
            # The settings again: Label Studio resets some of them when others are sent in
            # the same create request (min_annotations_to_start_training with
            # start_training_on_annotation_update), and the description drops its mark.
            fields = {k: v for k, v in settings.items() if k != "model_version"}
            self._patch_project(number, {**fields, "description": description})
            self._restore_tasks(
                number,
                tables("items"),
                tables("annotations"),
                imports,
                tally,
                check_first=resume is not None,
            )
            model_version = settings.get("model_version")
            if model_version:
                try:
                    self._patch_project(number, {"model_version": model_version})
                except RequestRejected as exc:
                    warnings.append(f"model_version {model_version!r} not set: {exc.message}")
            warnings.extend(self._settings_differences(number, settings, description))
        except (PlatformError, ConfigurationError) as exc:
            raise RestoreError(
                f"restore of {PLATFORM} project {origin.source_project_id} version "
                f"{origin.version_number} stopped"
                + (f" in project {created}" if created else "")
                + f": {exc.message}. Run it again with the same restore id (journal "
                f"{journal.prefix}) to resume.",
                project=source_key,
                created_project=created,
                progress=counts,
            ) from exc
        if tally.drafts_reassigned:
            warnings.append(
                f"{tally.drafts_reassigned} draft(s) by other users now belong to the "
                "restoring user: Label Studio makes the caller the author of every draft"
            )
        for warning in warnings:
            logger.warning("%s", warning)
        return RestoreReport(
            project=self.get_project(created),
            journal=journal.prefix,
            created=counts,
            resumed=resume is not None,
            warnings=tuple(warnings),
        )

    def _unless_landed(self, what: str, send: Callable[[], T], landed: Callable[[], T | None]) -> T:
        """``send()`` a write that cannot be repeated blindly. When its answer is lost (5xx,
        timeout, broken connection), ``landed()`` looks for it on the server; only a write
        that did not land is sent again, within the request settings' retry budget."""
        attempts = self.settings.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                return send()
            except PlatformUnavailable as exc:
                found = landed()
                if found is not None:
                    logger.info("%s: %s landed although its answer was lost", PLATFORM, what)
                    return found
                if attempt >= attempts:
                    raise
                logger.warning("%s: %s did not land (%s); sending it again", PLATFORM, what, exc)
                self._pause(attempt)

    def _pause(self, attempt: int) -> None:
        settings = self.settings
        self.api.sleep(min(settings.backoff_max, settings.backoff_factor * 2 ** (attempt - 1)))

    def _refuse_taken_title(self, title: str) -> None:
        """Refuse a title the server already has (``--allow-duplicate-name`` allows it)."""
        page: int | None = 1
        while page is not None:
            listing = self.api.request_json(
                "GET", "/api/projects", params={"title": title, "page": page}
            )
            found = listing.get("results", []) if isinstance(listing, dict) else listing
            clash = next((p for p in found or [] if p.get("title") == title), None)
            if clash is not None:
                raise ConfigurationError(
                    f"{PLATFORM} already has a project titled {title!r} (id "
                    f"{clash.get('id')}); pass another --name, or --allow-duplicate-name"
                )
            more = isinstance(listing, dict) and listing.get("next")
            page = page + 1 if more else None

    def _restore_users(self, batches: Iterator[pa.RecordBatch], tally: _Tally) -> None:
        known = {u.get("email") for u in self._list_users(None)}
        for user in row_dicts(batches):
            email = user.get("email")
            if not email or email in known:
                continue
            raw = json.loads(user.get("raw") or "{}")
            login = user.get("login") or email
            body = {
                "email": email,
                "username": login,
                "first_name": raw.get("first_name") or "",
                "last_name": raw.get("last_name") or "",
            }

            def create(body: dict[str, Any] = body) -> bool:
                self.api.request_json("POST", "/api/users/", json=body)
                return True

            def landed(email: str = email) -> bool | None:
                users = self._list_users(None)
                return True if any(u.get("email") == email for u in users) else None

            self._unless_landed(f"creating user {email}", create, landed)
            known.add(email)
            tally.add("users")

    def _create_project(
        self,
        title: str,
        description: str,
        label_config: Any,
        settings: dict[str, Any],
        mark: str,
    ) -> str:
        """Create the project, or find the one an earlier attempt of this restore created.

        Until the project is journaled its description ends with ``mark`` (unique to this
        restore), so a project whose creation answer was lost, or whose run was killed before
        journaling it, is found and finished instead of made twice; the description is set
        to the source's right after.
        """
        found = self._marked_project(title, mark)
        if found is not None:
            return found
        body = {k: v for k, v in settings.items() if k != "model_version"}
        body.update(title=title, description=f"{description}\n\n{mark}")
        if isinstance(label_config, str) and label_config:
            body["label_config"] = label_config
        return self._unless_landed(
            f"creating project {title!r}",
            lambda: str(self.api.request_json("POST", "/api/projects", json=body)["id"]),
            lambda: self._marked_project(title, mark),
        )

    def _marked_project(self, title: str, mark: str) -> str | None:
        """The project titled ``title`` whose description ends with ``mark``, if any."""
        page = 1
        while True:
            answer = self.api.request_json(
                "GET",
                "/api/projects",
                params={"page": page, "page_size": 100, "title": title},
            )
            results = answer.get("results") if isinstance(answer, dict) else None
            for project in results or []:
                text = project.get("description")
                if isinstance(text, str) and text.endswith(mark):
                    return str(project["id"])
            if not results or not answer.get("next"):
                return None
            page += 1

    def _patch_project(self, number: int, fields: dict[str, Any]) -> None:
        self.api.request(
            "PATCH", f"/api/projects/{number}", json=fields, idempotent=True, project=str(number)
        )

    def _settings_differences(
        self, number: int, settings: dict[str, Any], description: str
    ) -> list[str]:
        """Warnings for every setting the new project does not hold as the version does."""
        project = self._get_json(f"/api/projects/{number}", str(number))
        wanted = {name: settings[name] for name in SETTINGS_FIELDS if name in settings}
        wanted["description"] = description
        return [
            f"project setting {name} is {project.get(name)!r} after the restore, the version "
            f"has {value!r}"
            for name, value in wanted.items()
            if project.get(name) != value
        ]

    def _restore_tasks(
        self,
        number: int,
        items: Iterator[pa.RecordBatch],
        annotations: Iterator[pa.RecordBatch],
        imports: ImportJournal,
        tally: _Tally,
        *,
        check_first: bool,
    ) -> None:
        """Import the tasks batch by batch. One worker thread sends every write, in order and
        one at a time, while this thread reads and serializes the next batch.

        ``check_first``: an earlier run may have imported batches it could not journal, so
        the project's tasks after the last journaled one are matched against the next batch
        before it is sent."""
        pending = Pending(row_dicts(annotations))
        batch: list[TaskImport] = []
        size = 0
        limit = max(1, min(self.options.import_first_batch_tasks, self.options.import_batch_tasks))
        state = _ImportState(imports, check_first)
        existing = dict(imports.done)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ls-import") as writer:
            inflight: Future[None] | None = None

            def send(task: Callable[..., None], *args: Any) -> None:
                nonlocal inflight
                if inflight is not None:
                    inflight.result()
                inflight = writer.submit(task, *args)

            for item in row_dicts(items):
                key = str(item["key"])
                rows = pending.take(key)
                if key in existing:
                    drafts = [r for r in rows if r["kind"] == AnnotationKind.DRAFT.value]
                    if drafts:
                        send(self._restore_drafts, existing[key], key, drafts, tally)
                    continue
                task = TaskImport.build(item, rows)
                batch.append(task)
                size += len(task.body) + 1
                if len(batch) >= limit or size >= self.options.import_batch_bytes:
                    send(self._import, number, batch, state, tally)
                    batch, size = [], 0
                    limit = self.options.import_batch_tasks
            pending.finish()
            if batch:
                send(self._import, number, batch, state, tally)
            if inflight is not None:
                inflight.result()

    def _import(
        self, number: int, batch: list[TaskImport], state: _ImportState, tally: _Tally
    ) -> None:
        """Import ``batch``: what already landed is journaled, the rest is sent, and sent
        again only when it did not land."""
        remaining = batch
        attempt = 0
        while remaining:
            ids: list[int] = []
            if state.check:
                ids = self._landed(number, state.imports.last_id, remaining)
                # Tasks past this batch may have landed too: check the next batch as well.
                state.check = len(ids) == len(remaining)
            if not ids:
                attempt += 1
                try:
                    ids = self._post_import(number, remaining)
                except PlatformUnavailable as exc:
                    state.check = True
                    if attempt > self.settings.max_retries:
                        raise
                    logger.warning(
                        "%s: an import into project %s failed (%s); looking for what landed",
                        PLATFORM,
                        number,
                        exc.message,
                    )
                    self._pause(attempt)
                    continue
            done, remaining = remaining[: len(ids)], remaining[len(ids) :]
            state.imports.record([task.key for task in done], ids)
            tally.add("items", len(done))
            tally.add("annotations", sum(task.annotations + task.predictions for task in done))
            for task_id, task in zip(ids, done, strict=True):
                if task.drafts:
                    self._restore_drafts(task_id, task.key, task.drafts, tally)

    def _post_import(self, number: int, batch: list[TaskImport]) -> list[int]:
        body = b"[" + b",".join(task.body for task in batch) + b"]"
        answer = self.api.request_json(
            "POST",
            f"/api/projects/{number}/import",
            params={"return_task_ids": "true"},
            content=body,
            headers={"Content-Type": "application/json"},
            project=str(number),
        )
        task_ids = answer.get("task_ids") if isinstance(answer, dict) else None
        if not isinstance(task_ids, list) or len(task_ids) != len(batch):
            raise RequestRejected(
                f"{PLATFORM}: the import into project {number} answered "
                f"{len(task_ids) if isinstance(task_ids, list) else 'no'} task ids for "
                f"{len(batch)} tasks",
                platform=PLATFORM,
                project=str(number),
            )
        return [int(task_id) for task_id in task_ids]

    def _restore_drafts(
        self, task_id: int, key: str, drafts: list[dict[str, Any]], tally: _Tally
    ) -> None:
        """Create the drafts of one restored task that it does not have yet (told by their
        ``import_id``); a draft whose answer was lost is looked for before it is sent again."""
        attempt = 0
        while True:
            attempt += 1
            try:
                self._restore_drafts_once(task_id, key, drafts, tally)
                return
            except PlatformUnavailable:
                if attempt > self.settings.max_retries:
                    raise
                self._pause(attempt)

    def _restore_drafts_once(
        self, task_id: int, key: str, drafts: list[dict[str, Any]], tally: _Tally
    ) -> None:
        task = self.api.request_json("GET", f"/api/tasks/{task_id}")
        have = {d.get("import_id") for d in task.get("drafts") or [] if isinstance(d, dict)}
        annotations = {
            a.get("import_id"): a.get("id")
            for a in task.get("annotations") or []
            if isinstance(a, dict)
        }
        for row in drafts:
            raw = jsonfast.loads(row["raw"])
            if raw.get("id") in have:
                continue
            path = f"/api/tasks/{task_id}/drafts"
            parent = raw.get("annotation")
            if isinstance(parent, int):
                new_parent = annotations.get(parent)
                if new_parent is None:
                    raise RequestRejected(
                        f"{PLATFORM}: the annotation of draft {raw.get('id')} (task {key}) "
                        "was not restored",
                        platform=PLATFORM,
                    )
                path = f"/api/tasks/{task_id}/annotations/{new_parent}/drafts"
            created = self.api.request_json(
                "POST",
                path,
                json={
                    "result": raw.get("result"),
                    "lead_time": raw.get("lead_time"),
                    "was_postponed": bool(raw.get("was_postponed", False)),
                    "import_id": raw.get("id"),
                },
            )
            tally.add("annotations")
            # Label Studio makes the caller the author of a draft.
            if row.get("author") and created.get("user") != row["author"]:
                tally.drafts_reassigned += 1


def _restore_mark(journal_prefix: str) -> str:
    """The mark a new project's description carries until the project is journaled."""
    digest = hashlib.sha256(journal_prefix.encode("utf-8")).hexdigest()[:16]
    return f"[labelvault restore {digest}]"


@dataclass
class _ImportState:
    """The import journal and whether the next batch may have landed already."""

    imports: ImportJournal
    check: bool


class Pending:
    """Annotation rows grouped by item, consumed in step with the items stream."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self._rows = rows
        self._next = next(rows, None)

    def take(self, item_key: str) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        while self._next is not None and self._next["item_key"] == item_key:
            taken.append(self._next)
            self._next = next(self._rows, None)
        if self._next is not None and self._next["item_key"] < item_key:
            raise RequestRejected(
                f"annotation {self._next['key']} names item {self._next['item_key']}, which is "
                "not in the version (or the tables are out of key order)",
                platform=PLATFORM,
            )
        return taken

    def finish(self) -> None:
        if self._next is not None:
            raise RequestRejected(
                f"annotation {self._next['key']} names item {self._next['item_key']}, which is "
                "not in the version",
                platform=PLATFORM,
            )


@dataclass
class TaskImport:
    """One task of a bulk import, already serialized."""

    key: str
    body: bytes
    content: str
    annotations: int
    predictions: int
    drafts: list[dict[str, Any]]

    @classmethod
    def build(cls, item: dict[str, Any], rows: list[dict[str, Any]]) -> TaskImport:
        raw = jsonfast.loads(item["raw"])
        meta = raw.get("meta")
        meta = dict(meta) if isinstance(meta, dict) else {}
        task: dict[str, Any] = {"data": raw.get("data"), "meta": meta}
        if "allow_skip" in raw:
            task["allow_skip"] = raw["allow_skip"]
        annotations: list[dict[str, Any]] = []
        predictions: list[dict[str, Any]] = []
        drafts: list[dict[str, Any]] = []
        for row in rows:
            kind = row["kind"]
            if kind == AnnotationKind.DRAFT.value:
                drafts.append(row)
                continue
            source = jsonfast.loads(row["raw"])
            if kind == AnnotationKind.PREDICTION.value:
                prediction = {"result": source.get("result")}
                for name in ("score", "model_version"):
                    if source.get(name) is not None:
                        prediction[name] = source[name]
                predictions.append(prediction)
            elif kind == AnnotationKind.ANNOTATION.value:
                annotation: dict[str, Any] = {
                    "id": source.get("id"),
                    "result": source.get("result"),
                    "was_cancelled": bool(source.get("was_cancelled", False)),
                    "ground_truth": bool(source.get("ground_truth", False)),
                    "lead_time": source.get("lead_time"),
                }
                if row.get("author"):
                    annotation["completed_by"] = {"email": row["author"]}
                annotations.append(annotation)
        if annotations:
            task["annotations"] = annotations
        if predictions:
            task["predictions"] = predictions
        body = json.dumps(task, ensure_ascii=False, allow_nan=True).encode("utf-8")
        return cls(
            key=str(item["key"]),
            body=body,
            content=task_content(task["data"], meta),
            annotations=len(annotations),
            predictions=len(predictions),
            drafts=drafts,
        )


class _Tally:
    """Rows created per table, told to the progress callback as they land."""

    def __init__(self, counts: dict[str, int], progress: RestoreProgress | None) -> None:
        self.counts = counts
        self.progress = progress
        self.drafts_reassigned = 0
        self._lock = threading.Lock()

    def add(self, table: str, count: int = 1) -> None:
        """Count ``count`` new rows of ``table``."""
        with self._lock:
            self.counts[table] += count
            snapshot = dict(self.counts)
        if self.progress is not None:
            self.progress(snapshot)
