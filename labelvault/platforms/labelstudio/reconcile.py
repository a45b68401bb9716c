"""Label Studio reconciliation: which tasks of a restore landed, told by the journal and, after
an answer that was lost, by the project's newest tasks compared with what was sent."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from labelvault.errors import RequestRejected
from labelvault.http.pagination import PageNumberPaginator, PageRequest, paginate
from labelvault.platforms.base import RestoreJournal
from labelvault.platforms.labelstudio.api import LabelStudioApi
from labelvault.platforms.labelstudio.rows import PLATFORM
from labelvault.snapshot.schema import canonical_json


class Sent(Protocol):
    """A task as an import sent it: its source key and the text of its data and meta."""

    key: str
    content: str


def task_content(data: Any, meta: Any) -> str:
    """What a landed task is recognised by: its data and meta, as canonical JSON."""
    return canonical_json({"data": data, "meta": meta if isinstance(meta, dict) else {}})


def match_landed(landed: Iterable[dict[str, Any]], batch: Sequence[Sent]) -> list[int]:
    """Ids of the tasks of ``batch`` that landed, in order (a prefix of ``batch``).

    ``landed`` are the project's tasks after the last journaled one, in id order: an import
    adds its tasks in order, so they match the batch's head task by task, by content. A task
    that matches nothing means someone else wrote into the project: refused.
    """
    ids: list[int] = []
    for task in landed:
        if len(ids) < len(batch) and task_content(task.get("data"), task.get("meta")) == (
            batch[len(ids)].content
        ):
            ids.append(int(task["id"]))
            continue
        raise RequestRejected(
            f"{PLATFORM}: task {task.get('id')} of the project being restored is not one the "
            "restore imported (someone else added tasks); restore again into a new project",
            platform=PLATFORM,
        )
    return ids


class ImportJournal:
    """The restore journal's import records: ``steps/labelstudio-import-NNNNNN.json``, each
    the source keys of one import and the task ids it created, in order."""

    def __init__(self, journal: RestoreJournal) -> None:
        self.journal = journal
        self.count = 0
        self.last_id = 0
        self.done: dict[str, int] = {}

    @staticmethod
    def name(number: int) -> str:
        """The record of import ``number``."""
        return f"steps/labelstudio-import-{number:06d}.json"

    def load(self) -> None:
        """Read every import record (once, when resuming)."""
        self.journal.load_names()
        while self.journal.has(self.name(self.count)):
            record = self.journal.read(self.name(self.count)) or {}
            self._note(list(record.get("keys") or []), list(record.get("ids") or []))
            self.count += 1

    def record(self, keys: list[str], ids: list[int]) -> None:
        """Journal one import that landed."""
        self.journal.record(self.name(self.count), {"keys": keys, "ids": ids})
        self.count += 1
        self._note(keys, ids)

    def _note(self, keys: list[str], ids: list[int]) -> None:
        self.done.update(zip(keys, ids, strict=True))
        self.last_id = max([self.last_id, *ids])


class LabelStudioReconcile(LabelStudioApi):
    """Finds what landed in a project a restore is writing."""

    def _tasks_after(self, number: int, last_id: int) -> Iterator[dict[str, Any]]:
        """The project's tasks with ids above ``last_id``, in id order (data and meta)."""
        paginator = PageNumberPaginator(
            per_page=self.options.page_size,
            per_page_param="page_size",
            entities_key="tasks",
            total_key="total",
            pages_key=None,
            per_page_key=None,
            in_body=False,
        )
        query = {
            "filters": {
                "conjunction": "and",
                "items": [
                    {
                        "filter": "filter:tasks:id",
                        "operator": "greater",
                        "type": "Number",
                        "value": last_id,
                    }
                ],
            },
            "ordering": ["tasks:id"],
        }
        request = PageRequest(
            "GET", "/api/tasks", params={"project": number, "query": json.dumps(query)}
        )
        for page in paginate(self.api, request, paginator, project=str(number)):
            yield from page

    def _landed(self, number: int, last_id: int, batch: Sequence[Sent]) -> list[int]:
        """Ids of the head of ``batch`` that is already in the project."""
        return match_landed(self._tasks_after(number, last_id), batch)
