"""Label Studio capture through snapshot exports, in task id ranges built side by side."""

from __future__ import annotations

import collections
import heapq
import itertools
import json
import logging
import os
import re
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from labelvault.errors import (
    PaginationError,
    PlatformError,
    PlatformUnavailable,
)
from labelvault.platforms.labelstudio.api import LabelStudioApi
from labelvault.platforms.labelstudio.rows import (
    PLATFORM,
    Users,
    in_order,
    ints,
    prediction_rows,
    task_head,
)

logger = logging.getLogger("labelvault.platforms.labelstudio")

#: The serialization the snapshot export is asked for: drafts expanded; predictions and
#: authors by id (prediction bodies come from the predictions listing, authors from the users
#: listing: both cost the server less than expanding them task by task).
EXPORT_OPTIONS: Final[dict[str, Any]] = {
    "drafts": {"only_id": False},
    "predictions": {"only_id": True},
    "annotations__completed_by": {"only_id": True},
    "include_annotation_history": False,
    "interpolate_key_frames": False,
}


#: Leftovers of a capture older than this are removed even when their owner may be alive
#: (another host, or a process id used again): no capture runs for a week.
STALE_AFTER: Final = 7 * 24 * 3600.0

_OWNER: Final = re.compile(r"^labelvault capture \[(?P<host>[^ \]]+) (?P<pid>\d+) (?P<start>\d+)\]")


@dataclass(frozen=True)
class Owner:
    """Who made a temporary view or export: host, process id and start time (epoch µs)."""

    host: str
    pid: int
    start: int

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        return cls(
            socket.gethostname().replace(" ", "_") or "host", os.getpid(), time.time_ns() // 1000
        )

    def title(self, what: str = "") -> str:
        """A title that names the owner (parsed back by :meth:`of`)."""
        return f"labelvault capture [{self.host} {self.pid} {self.start}]{what}"

    @classmethod
    def of(cls, title: Any) -> Owner | None:
        """The owner a title names, or None for a title labelvault did not write."""
        found = _OWNER.match(title) if isinstance(title, str) else None
        if found is None:
            return None
        return cls(found["host"], int(found["pid"]), int(found["start"]))

    def abandoned(self, me: Owner, now: float) -> bool:
        """True when what this owner left may be removed by ``me``: the owner is on this host
        and its process is gone, or it is older than :data:`STALE_AFTER`; never ``me``."""
        if self == me:
            return False
        if now - self.start / 1e6 > STALE_AFTER:
            return True
        return self.host == me.host and not _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def id_filter(low: int | None, high: int | None) -> dict[str, Any]:
    """A Data Manager filter on task ids ``low..high`` (``None``: open on that side)."""
    where: dict[str, Any] = {"filter": "filter:tasks:id", "type": "Number"}
    if low is not None and high is not None:
        return {**where, "operator": "in", "value": {"min": low, "max": high}}
    if low is not None:
        return {**where, "operator": "greater_or_equal", "value": low}
    return {**where, "operator": "less_or_equal", "value": high}


class LabelStudioExports(LabelStudioApi):
    """Reads a project's tasks from snapshot exports, in id order.

    Every temporary view and export is titled with its owner (:class:`Owner`: host, process
    id, start time), so a capture that was killed can be cleaned up after: the next export
    capture of the project removes what dead owners left (:meth:`_remove_leftovers`).
    Label Studio 1.23 keeps an export's file on its disk when the export is deleted (the
    setting that deletes it is fixed off): capture mode ``export`` leaves one file per
    export in the server's ``media/export`` folder; mode ``list`` leaves nothing.
    """

    _owner: Owner | None = None

    @property
    def owner(self) -> Owner:
        """Who this adapter's temporary views and exports belong to."""
        if self._owner is None or self._owner.pid != os.getpid():
            self._owner = Owner.current()
        return self._owner

    def _remove_leftovers(self, number: int, project_id: str, *, own: bool = False) -> int:
        """Delete the views and exports of project ``number`` that killed captures left (or,
        with ``own``, this adapter's own, after a write whose answer was lost); how many."""
        me, now, removed = self.owner, time.time(), 0

        def abandoned(owner: Owner | None) -> bool:
            if owner is None:
                return False
            return owner == me if own else owner.abandoned(me, now)

        views = self.api.request_json("GET", "/api/dm/views/", params={"project": number})
        for view in views if isinstance(views, list) else []:
            data = view.get("data") if isinstance(view, dict) else None
            owner = Owner.of(data.get("title") if isinstance(data, dict) else None)
            if abandoned(owner):
                self._delete_view(int(view["id"]), project_id)
                removed += 1
        exports = self.api.request_json(
            "GET", f"/api/projects/{number}/exports/", project=project_id
        )
        for export in exports if isinstance(exports, list) else []:
            owner = Owner.of(export.get("title") if isinstance(export, dict) else None)
            if abandoned(owner):
                self._delete_export(number, int(export["id"]), project_id)
                removed += 1
        if removed:
            logger.info(
                "%s project %s: removed %d view(s) and export(s) left by killed captures",
                PLATFORM,
                project_id,
                removed,
            )
        return removed

    def _delete_view(self, view_id: int, project_id: str) -> None:
        try:
            self.api.request("DELETE", f"/api/dm/views/{view_id}/", project=project_id)
        except PlatformError as exc:
            logger.warning("could not delete Data Manager view %s: %s", view_id, exc.message)

    def _export_rows(
        self, number: int, project_id: str, users: Users
    ) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Rows of the project's tasks from snapshot exports, in id order.

        The project is exported in task id ranges (:meth:`_export_ranges`), built up to
        ``export_concurrency`` at a time and read in order, each deleted once read: the client
        converts one range while the server builds the next, and no request has to hold the
        whole project. Exports name predictions by id only (expanding them costs the server a
        query and a serializer per task); their bodies come from one streamed
        ``/api/predictions`` listing, run first and spooled to a local SQLite file, and are
        merged back by task.
        """
        self._remove_leftovers(number, project_id)
        ranges = self._export_ranges(number, project_id)
        live: set[int] = set()  # built and not deleted yet
        lock = threading.Lock()

        def build(low: int | None, high: int | None) -> tuple[int, int | None]:
            export_id, count = self._build_export(number, project_id, low, high)
            with lock:
                live.add(export_id)
            return export_id, count

        with (
            tempfile.TemporaryDirectory(prefix="labelvault-ls-") as tmp,
            ThreadPoolExecutor(
                max_workers=self.options.export_concurrency, thread_name_prefix="ls-export"
            ) as pool,
        ):
            spool = PredictionSpool(Path(tmp) / "predictions.sqlite3")
            predictions = self._stream_array(
                "/api/predictions/", {"project": number}, project_id, "predictions"
            )
            loading = pool.submit(spool.load, predictions)
            # One range more than the pool builds at once: the next is built while one is read.
            ahead = self.options.export_concurrency + 1
            builds = collections.deque(pool.submit(build, *r) for r in ranges[:ahead])
            waiting = collections.deque(ranges[ahead:])

            def exported() -> Iterator[dict[str, Any]]:
                for low, high in ranges:
                    export_id, count = builds.popleft().result()
                    if waiting:
                        builds.append(pool.submit(build, *waiting.popleft()))
                    yield from self._exported(
                        number, export_id, project_id, low=low, high=high, count=count
                    )
                    self._delete_export(number, export_id, project_id)
                    with lock:
                        live.discard(export_id)

            failed = True
            try:
                loading.result()
                merge = spool.merger()
                for task in in_order(exported(), number, project_id):
                    item, rows = task_head(task, users)
                    rows.extend(prediction_rows(merge(task["id"], task.get("predictions")), item))
                    yield item, rows
                failed = False
            finally:
                spool.stop()
                for future in builds:
                    future.cancel()
                pool.shutdown(wait=True)
                failure = loading.exception()
                if failure is not None:  # the capture's own error is the one raised
                    logger.debug("predictions listing stopped: %s", failure)
                spool.close()
                for export_id in sorted(live):
                    self._delete_export(number, export_id, project_id)
                if failed:
                    try:
                        self._remove_leftovers(number, project_id, own=True)
                    except PlatformError as exc:
                        logger.warning("could not look for leftover views: %s", exc.message)

    def _export_ranges(self, number: int, project_id: str) -> list[tuple[int | None, int | None]]:
        """Task id ranges that cover every id, each of at most about
        ``export_partition_tasks`` tasks.

        Several builds at once (``export_concurrency`` > 1) get at least two ranges each, so
        the server builds while the client reads; no range is cut below
        ``export_min_range_tasks``, where the fixed cost of an export (about 0.1 s) would
        outweigh it. The ranges split the span from the first to the last task id evenly (a
        project's ids are mostly dense); the first range is open below and the last open
        above, so a task created meanwhile still falls in exactly one. A project that needs
        one range is exported without a view.
        """
        size = self.options.export_partition_tasks
        concurrency = self.options.export_concurrency
        if size == 0:
            return [(None, None)]
        first, total = self._edge_task(number, project_id, "tasks:id")
        parts = max(-(-total // size), 2 * concurrency if concurrency > 1 else 1)
        parts = min(parts, total // self.options.export_min_range_tasks)
        if first is None or parts <= 1:
            return [(None, None)]
        last, _ = self._edge_task(number, project_id, "-tasks:id")
        if last is None or last - first + 1 < parts:
            return [(None, None)]
        width = (last - first + 1) / parts
        cuts = sorted({first + round(width * i) for i in range(1, parts)})
        return list(zip([None, *cuts], [cut - 1 for cut in cuts] + [None], strict=True))

    def _edge_task(self, number: int, project_id: str, ordering: str) -> tuple[int | None, int]:
        """The id of the first task in ``ordering`` and the project's task count."""
        page = self.api.request_json(
            "GET",
            "/api/tasks",
            params={
                "project": number,
                "page": 1,
                "page_size": 1,
                "query": json.dumps({"ordering": [ordering]}),
            },
            project=project_id,
        )
        tasks = page.get("tasks") if isinstance(page, dict) else None
        total = page.get("total") if isinstance(page, dict) else None
        if not isinstance(tasks, list) or not isinstance(total, int):
            raise PaginationError(
                f"{PLATFORM}: the task listing of project {number} has no 'tasks' and 'total'",
                platform=PLATFORM,
                project=project_id,
            )
        task_id = tasks[0].get("id") if tasks and isinstance(tasks[0], dict) else None
        return (task_id if ints(task_id) else None), total

    def _build_export(
        self, number: int, project_id: str, low: int | None, high: int | None
    ) -> tuple[int, int | None]:
        """Build the snapshot export of tasks ``low..high`` (``None``: open); its id and its
        task count. A range is selected through a Data Manager view, deleted afterwards."""
        if low is None and high is None:
            return self._create_export(number, project_id, view_id=None)
        view = self.api.request_json(
            "POST",
            "/api/dm/views/",
            json={
                "project": number,
                "data": {
                    "title": self.owner.title(f" {low or ''}..{high or ''}"),
                    "filters": {"conjunction": "and", "items": [id_filter(low, high)]},
                },
            },
            project=project_id,
        )
        view_id = int(view["id"])
        try:
            return self._create_export(number, project_id, view_id=view_id)
        finally:
            self._delete_view(view_id, project_id)

    def _create_export(
        self, number: int, project_id: str, *, view_id: int | None
    ) -> tuple[int, int | None]:
        body: dict[str, Any] = {
            "title": self.owner.title(),
            "serialization_options": EXPORT_OPTIONS,
        }
        if view_id is not None:
            body["task_filter_options"] = {"view": view_id}
        export = self.api.request_json(
            "POST", f"/api/projects/{number}/exports/", json=body, project=project_id
        )
        export_id = int(export["id"])
        try:
            export = self._wait_for_export(number, export_id, export, project_id)
        except BaseException:
            self._delete_export(number, export_id, project_id)
            raise
        counters = export.get("counters")
        count = counters.get("task_number") if isinstance(counters, dict) else None
        return export_id, (count if ints(count) else None)

    def _delete_export(self, number: int, export_id: int, project_id: str) -> None:
        try:
            self.api.request(
                "DELETE", f"/api/projects/{number}/exports/{export_id}", project=project_id
            )
        except PlatformError as exc:
            logger.warning("could not delete export %s: %s", export_id, exc.message)

    def _exported(
        self,
        number: int,
        export_id: int,
        project_id: str,
        *,
        low: int | None,
        high: int | None,
        count: int | None,
    ) -> Iterator[dict[str, Any]]:
        """The tasks of export ``export_id`` (of ids ``low..high``), put back in id order
        within ``export_reorder_window`` and checked against the range and the count."""
        window: list[tuple[int, int, dict[str, Any]]] = []
        emitted = -1
        seen = 0
        download = self._stream_array(
            f"/api/projects/{number}/exports/{export_id}/download",
            {"exportType": "JSON"},
            project_id,
            f"export {export_id}",
        )
        for seen, task in enumerate(download, start=1):
            task_id = task.get("id") if isinstance(task, dict) else None
            if not isinstance(task_id, int) or task_id <= emitted:
                raise PaginationError(
                    f"{PLATFORM}: the export of project {number} is not in task id order "
                    f"(task {task_id!r} after {emitted}); capture with "
                    "capture_mode='list' or a larger export_reorder_window",
                    platform=PLATFORM,
                    project=project_id,
                )
            if (low is not None and task_id < low) or (high is not None and task_id > high):
                raise PaginationError(
                    f"{PLATFORM}: the export of tasks {low}..{high} of project {number} holds "
                    f"task {task_id}: the server did not apply the Data Manager view; export "
                    "in one request with LABELVAULT_LABELSTUDIO_EXPORT_PARTITION_TASKS=0",
                    platform=PLATFORM,
                    project=project_id,
                )
            heapq.heappush(window, (task_id, seen, task))
            if len(window) > self.options.export_reorder_window:
                emitted, _, first = heapq.heappop(window)
                yield first
        while window:
            emitted, _, first = heapq.heappop(window)
            yield first
        if count is not None and seen != count:
            raise PaginationError(
                f"{PLATFORM}: export {export_id} of project {number} announced {count} tasks "
                f"but held {seen}",
                platform=PLATFORM,
                project=project_id,
            )

    def _wait_for_export(
        self, number: int, export_id: int, export: dict[str, Any], project_id: str
    ) -> dict[str, Any]:
        """The export once the server says it is completed (polled with backoff)."""
        deadline = time.monotonic() + self.options.export_timeout
        delay = 0.2
        while export.get("status") != "completed":
            if export.get("status") == "failed":
                raise PlatformUnavailable(
                    f"{PLATFORM}: the export of project {number} failed on the server",
                    platform=PLATFORM,
                    project=project_id,
                )
            if time.monotonic() > deadline:
                raise PlatformUnavailable(
                    f"{PLATFORM}: the export of project {number} did not complete in "
                    f"{self.options.export_timeout:.0f} s",
                    platform=PLATFORM,
                    project=project_id,
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            export = self.api.request_json(
                "GET", f"/api/projects/{number}/exports/{export_id}", project=project_id
            )
        return export


class PredictionSpool:
    """Predictions of a project, spooled to a local SQLite file and read back by task."""

    def __init__(self, path: Path) -> None:
        self._stopped = threading.Event()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE p (task INTEGER, id INTEGER, body TEXT, PRIMARY KEY (task, id))"
            " WITHOUT ROWID"
        )

    def load(self, predictions: Iterator[Any]) -> None:
        """Store every prediction (a JSON object with ``id`` and ``task``) until stopped."""
        try:
            rows = (
                (p["task"], p["id"], json.dumps(p, ensure_ascii=False))
                for p in itertools.takewhile(lambda _: not self._stopped.is_set(), predictions)
                if isinstance(p, dict) and ints(p.get("task"), p.get("id"))
            )
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO p VALUES (?, ?, ?)", rows)
        finally:
            close = getattr(predictions, "close", None)
            if close is not None:
                close()

    def merger(self) -> Callable[[int, Any], Any]:
        """A function of a task's id and its ``predictions`` (ids) that answers the
        predictions themselves; called with task ids in increasing order."""
        cursor = self._db.execute("SELECT task, id, body FROM p ORDER BY task, id")
        current = cursor.fetchone()

        def merge(task_id: int, wanted: Any) -> Any:
            nonlocal current
            while current is not None and current[0] < task_id:
                current = cursor.fetchone()
            found: list[dict[str, Any]] = []
            while current is not None and current[0] == task_id:
                found.append(json.loads(current[2]))
                current = cursor.fetchone()
            if not isinstance(wanted, list):
                return wanted
            ids = {p if isinstance(p, int) else p.get("id") for p in wanted}
            return [p for p in found if p["id"] in ids]

        return merge

    def stop(self) -> None:
        """Make a running :meth:`load` skip the rest (the capture failed or was closed)."""
        self._stopped.set()

    def close(self) -> None:
        """Close the database (its directory is removed by the caller)."""
        self._db.close()
