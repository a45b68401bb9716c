"""Label Studio capture: a project's row, its tasks with their annotations, predictions and
drafts, then the users they name."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labelvault.errors import (
    ConfigurationError,
    PaginationError,
)
from labelvault.http.pagination import PageNumberPaginator, PageRequest, paginate
from labelvault.platforms.base import HEAD_PARTITION, WHOLE_PARTITION, Partition, TablePage
from labelvault.platforms.labelstudio.exports import LabelStudioExports, id_filter
from labelvault.platforms.labelstudio.rows import (
    PLATFORM,
    Users,
    in_order,
    key_of,
    project_row,
    record_batch,
    task_rows,
    user_row,
)

logger = logging.getLogger("labelvault.platforms.labelstudio")


class LabelStudioCapture(LabelStudioExports):
    """Reads a project into labelvault's tables."""

    #: Tables several partitions may hold the same row of: a user annotates many tasks.
    shared_tables = frozenset({"users"})
    #: Tables the head partition holds; a task range's partition holds its range of the others.
    head_tables = frozenset({"project"})

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        """Stream the project: its row, then items and annotations page by page, then users."""
        number = self._project_number(project_id)
        project = self._get_json(f"/api/projects/{number}", project_id)
        yield TablePage("project", record_batch("project", [project_row(project)]))
        users = Users(self._list_users(project_id), self._fetch_user)
        if self.options.capture_mode == "export":
            converted = self._export_rows(number, project_id, users)
        elif self.options.capture_mode == "list":
            tasks = in_order(self._list_tasks(number, project_id), number, project_id)
            converted = (task_rows(task, users) for task in tasks)
        else:
            raise ConfigurationError(f"unknown capture mode {self.options.capture_mode!r}")
        yield from self._converted_pages(converted, users, project_id)

    def capture_plan(self, project_id: str) -> list[Partition]:
        """The project's row, then task id ranges of about ``export_partition_tasks`` tasks
        each (list mode; the first and last range are open, so a task added meanwhile still
        falls in one). Export mode reads the project in one partition."""
        number = self._project_number(project_id)
        if self.options.capture_mode != "list":
            return [Partition(key=WHOLE_PARTITION, label="the whole project (export mode)")]
        head = Partition(key=HEAD_PARTITION, label="project")
        first, total = self._edge_task(number, project_id, "tasks:id")
        if first is None:
            return [head, Partition(key=key_of(0), label="tasks", spec={}, key_range=("", None))]
        last, _ = self._edge_task(number, project_id, "-tasks:id")
        last = first if last is None else last
        size = self.options.export_partition_tasks or total or 1
        count = max(1, min(-(-total // size), last - first + 1))
        step = -(-(last - first + 1) // count)
        lows = list(range(first, last + 1, step))
        partitions = [head]
        for index, low in enumerate(lows):
            high = lows[index + 1] - 1 if index + 1 < len(lows) else None
            partitions.append(
                Partition(
                    key=key_of(low),
                    label=f"tasks {low}…{'' if high is None else high}",
                    weight=total // len(lows),
                    spec={"low": low if index else None, "high": high},
                    key_range=(
                        key_of(low) if index else "",
                        None if high is None else key_of(high + 1),
                    ),
                )
            )
        return partitions

    def iter_partition(self, project_id: str, partition: Partition) -> Iterator[TablePage]:
        """One partition of :meth:`capture_plan`: the project's row, a task id range with the
        users it names, or (export mode) everything."""
        if partition.key == WHOLE_PARTITION:
            yield from self.iter_pages(project_id)
            return
        number = self._project_number(project_id)
        if partition.key == HEAD_PARTITION:
            project = self._get_json(f"/api/projects/{number}", project_id)
            yield TablePage("project", record_batch("project", [project_row(project)]))
            return
        low, high = partition.spec.get("low"), partition.spec.get("high")
        where = None if low is None and high is None else id_filter(low, high)
        users = Users(self._list_users(project_id), self._fetch_user)
        tasks = in_order(self._list_tasks(number, project_id, where), number, project_id)
        converted = (task_rows(task, users) for task in tasks)
        yield from self._converted_pages(converted, users, project_id)

    def _converted_pages(
        self,
        converted: Iterator[tuple[dict[str, Any], list[dict[str, Any]]]],
        users: Users,
        project_id: str,
    ) -> Iterator[TablePage]:
        """Items and annotations page by page, then the users they name."""
        items: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for item, item_rows in converted:
            items.append(item)
            annotations.extend(item_rows)
            if len(items) >= self.options.page_size:
                yield from self._task_pages(items, annotations)
                items, annotations = [], []
        if items:
            yield from self._task_pages(items, annotations)
        rows = self._user_rows(users, project_id)
        if rows:
            yield TablePage("users", record_batch("users", rows))

    def _task_pages(
        self, items: list[dict[str, Any]], annotations: list[dict[str, Any]]
    ) -> Iterator[TablePage]:
        yield TablePage("items", record_batch("items", items))
        if annotations:
            yield TablePage("annotations", record_batch("annotations", annotations))

    def _user_rows(self, users: Users, project_id: str) -> list[dict[str, Any]]:
        if users.unknown_emails:
            logger.warning(
                "%s project %s: %d draft author(s) are not users of the organization",
                PLATFORM,
                project_id,
                len(users.unknown_emails),
            )
        return [user_row(users.by_id[user_id]) for user_id in sorted(users.referenced)]

    def _task_request(self, number: int, where: dict[str, Any] | None = None) -> PageRequest:
        query: dict[str, Any] = {"ordering": ["tasks:id"]}
        if where is not None:
            query["filters"] = {"conjunction": "and", "items": [where]}
        return PageRequest(
            "GET",
            "/api/tasks",
            params={"project": number, "fields": "all", "query": json.dumps(query)},
        )

    def _list_tasks(
        self, number: int, project_id: str, where: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Tasks from ``/api/tasks?fields=all`` (those ``where`` selects), page by page, until
        ``total`` were seen."""
        page_size = self.options.page_size
        concurrency = max(1, self.options.list_concurrency)
        paginator = PageNumberPaginator(
            per_page=page_size,
            page_param="page",
            per_page_param="page_size",
            entities_key="tasks",
            total_key="total",
            pages_key=None,
            per_page_key=None,
            in_body=False,
        )
        pages = paginate(self.api, self._task_request(number, where), paginator)
        first = next(pages)
        yield from first
        if concurrency == 1 or first.total is None or first.total <= len(first):
            for page in pages:
                yield from page
            return
        total = first.total
        count = len(first)
        last_page = -(-total // page_size)
        request = self._task_request(number, where)

        def fetch(page_number: int) -> dict[str, Any]:
            params = {**request.params, "page": page_number, "page_size": page_size}
            payload: dict[str, Any] = self.api.request_json(
                "GET", request.url, params=params, project=project_id
            )
            return payload

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for payload in pool.map(fetch, range(2, last_page + 1)):
                if payload.get("total") != total:
                    raise PaginationError(
                        f"{PLATFORM}: project {number} had {total} tasks, then "
                        f"{payload.get('total')} while it was listed",
                        platform=PLATFORM,
                        project=project_id,
                    )
                tasks = payload.get("tasks") or []
                count += len(tasks)
                yield from tasks
        if count != total:
            raise PaginationError(
                f"{PLATFORM}: project {number} announced {total} tasks but listed {count}",
                platform=PLATFORM,
                project=project_id,
            )
