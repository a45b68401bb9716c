"""Label Studio reconciliation: the tasks an earlier attempt of a restore already imported."""

from __future__ import annotations

from labelvault.errors import (
    RequestRejected,
)
from labelvault.http.pagination import PageNumberPaginator, PageRequest, paginate
from labelvault.platforms.labelstudio.api import LabelStudioApi
from labelvault.platforms.labelstudio.rows import (
    PLATFORM,
    SOURCE_META_KEY,
)


class LabelStudioReconcile(LabelStudioApi):
    """Finds what landed in a project a restore is finishing."""

    def _existing_tasks(self, project_id: str) -> dict[str, int]:
        """Source key → task id of the tasks a previous restore already imported."""
        number = self._project_number(project_id)
        paginator = PageNumberPaginator(
            per_page=self.options.page_size,
            per_page_param="page_size",
            entities_key="tasks",
            total_key="total",
            pages_key=None,
            per_page_key=None,
            in_body=False,
        )
        request = PageRequest("GET", "/api/tasks", params={"project": number})
        existing: dict[str, int] = {}
        for page in paginate(self.api, request, paginator, project=project_id):
            for task in page:
                marker = (task.get("meta") or {}).get(SOURCE_META_KEY)
                if isinstance(marker, dict) and isinstance(marker.get("source"), str):
                    existing[marker["source"]] = int(task["id"])
        return existing

    def _find_task(self, number: int, key: str, candidate: int) -> int:
        """The new task restored from ``key``: the import's id for it, checked by its marker."""
        task = self.api.request_json("GET", f"/api/tasks/{candidate}", project=str(number))
        marker = (task.get("meta") or {}).get(SOURCE_META_KEY) or {}
        if marker.get("source") == key and task.get("project") == number:
            return candidate
        found = self._existing_tasks(str(number)).get(key)
        if found is None:
            raise RequestRejected(
                f"{PLATFORM}: the task restored from {key} is not in project {number}",
                platform=PLATFORM,
                project=str(number),
            )
        return found
