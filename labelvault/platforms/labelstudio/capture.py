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
from labelvault.platforms.base import TablePage
from labelvault.platforms.labelstudio.exports import LabelStudioExports
from labelvault.platforms.labelstudio.rows import (
    PLATFORM,
    Users,
    in_order,
    project_row,
    record_batch,
    task_rows,
    user_row,
)

logger = logging.getLogger("labelvault.platforms.labelstudio")


class LabelStudioCapture(LabelStudioExports):
    """Reads a project into labelvault's tables."""

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

    def _task_request(self, number: int) -> PageRequest:
        return PageRequest(
            "GET",
            "/api/tasks",
            params={
                "project": number,
                "fields": "all",
                "query": json.dumps({"ordering": ["tasks:id"]}),
            },
        )

    def _list_tasks(self, number: int, project_id: str) -> Iterator[dict[str, Any]]:
        """Tasks from ``/api/tasks?fields=all``, page by page, until ``total`` were seen."""
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
        pages = paginate(self.api, self._task_request(number), paginator)
        first = next(pages)
        yield from first
        if concurrency == 1 or first.total is None or first.total <= len(first):
            for page in pages:
                yield from page
            return
        total = first.total
        count = len(first)
        last_page = -(-total // page_size)
        request = self._task_request(number)

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
