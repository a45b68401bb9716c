"""A Label Studio restore equals its source, a capture leaves nothing on the server, and both
finish under injected faults (``-m labelstudio``).

``LABELVAULT_LS_FAULT_RUNS`` sets how many restores and captures run under faults (3 each by
default; the issue's 50 by hand).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from labelvault.http.settings import RequestSettings
from labelvault.platforms.labelstudio import LabelStudioOptions, LabelStudioPlatform
from labelvault.storage import LocalStore
from labelvault.storage.memory import MemoryStore
from labelvault.vault import Vault
from tests.platforms.test_labelstudio import (
    _ok,
    assert_same_content,
    build_rich_project,
    capture,
    platform_for,
    restore_tables,
)
from tests.servers.labelstudio import LabelStudio, ProjectFactory

pytestmark = pytest.mark.labelstudio

FAULT_RUNS = int(os.environ.get("LABELVAULT_LS_FAULT_RUNS", "3"))

#: Read back through Label Studio's own export, these are what the server assigns: ids, the
#: clock, counters it computes, and links to rows that only exist on that server.
SERVER_TASK_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "inner_id",
        "project",
        "updated_by",
        "file_upload",
        "storage_filename",
        "comment_authors",
        "last_comment_updated_at",
        "predictions",
    }
)
SERVER_ANNOTATION_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "draft_created_at",
        "task",
        "project",
        "import_id",
        "unique_id",
        "result_count",
        "bulk_created",
        "last_action",
        "last_created_by",
        "updated_by",
        "parent_prediction",
        "parent_annotation",
        "prediction",
        "completed_by",
        "created_ago",
        "created_username",
        "history",
    }
)
SERVER_DRAFT_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "task",
        "project",
        "annotation",
        "import_id",
        "user",
        "created_username",
        "created_ago",
    }
)
SERVER_PREDICTION_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "task",
        "project",
        "created_ago",
        "model",
        "model_run",
        "mislabeling",
    }
)


def _read_back(server: LabelStudio, project_id: str) -> list[dict[str, Any]]:
    """Every task as Label Studio exports it, with authors as emails and full predictions,
    stripped of what the server assigns, in source order."""
    with server.client() as client:
        tasks = _ok(
            client.get(
                f"/api/projects/{project_id}/export",
                params={"exportType": "JSON", "download_all_tasks": "true"},
            )
        )
        predictions = _ok(client.get("/api/predictions/", params={"project": project_id}))
        users = {u["id"]: u["email"] for u in _ok(client.get("/api/users/"))}
    by_task: dict[int, list[dict[str, Any]]] = {}
    for prediction in sorted(predictions, key=lambda p: p["id"]):
        kept = {k: v for k, v in prediction.items() if k not in SERVER_PREDICTION_FIELDS}
        by_task.setdefault(prediction["task"], []).append(kept)
    out = []
    for task in sorted(tasks, key=lambda t: t["id"]):
        row = {k: v for k, v in task.items() if k not in SERVER_TASK_FIELDS}
        row["annotations"] = [
            {
                **{k: v for k, v in a.items() if k not in SERVER_ANNOTATION_FIELDS},
                "author": users.get(a["completed_by"]),
            }
            for a in sorted(task.get("annotations") or [], key=lambda a: a["id"])
        ]
        # Label Studio makes the restoring user the author of every draft (reported).
        row["drafts"] = [
            {k: v for k, v in d.items() if k not in SERVER_DRAFT_FIELDS}
            for d in sorted(task.get("drafts") or [], key=lambda d: d["id"])
        ]
        row["predictions"] = by_task.get(task["id"], [])
        out.append(row)
    return out


def _project_settings(server: LabelStudio, project_id: str) -> dict[str, Any]:
    from labelvault.platforms.labelstudio.rows import SETTINGS_FIELDS

    with server.client() as client:
        project = _ok(client.get(f"/api/projects/{project_id}"))
    return {name: project.get(name) for name in (*SETTINGS_FIELDS, "description", "label_config")}


def _enrich(server: LabelStudio, project_id: str) -> None:
    """What build_rich_project lacks: hostile numbers and strings, duplicates, odd settings."""
    big = "x" * 100_000
    tasks = [
        {"data": {"image": "http://example.invalid/dup.jpg", "caption": "dup"}},
        {"data": {"image": "http://example.invalid/dup.jpg", "caption": "dup"}},
        {
            "data": {
                "image": "http://example.invalid/n.jpg",
                "caption": "e\u0301 NFD",
                "big": big,
                "n": 2**53 + 1,
                "z": -0.0,
                "f": 0.30000000000000004,
            },
            "predictions": [{"result": [], "score": 0.123456789012345, "model_version": "m3"}],
        },
    ]
    with server.client() as client:
        _ok(client.post(f"/api/projects/{project_id}/import", json=tasks))
        _ok(
            client.patch(
                f"/api/projects/{project_id}",
                json={
                    "min_annotations_to_start_training": 7,
                    "start_training_on_annotation_update": True,
                    "model_version": "m2",
                },
            )
        )


@pytest.mark.parametrize("where", ["same", "second"])
def test_restore_equals_its_source_field_by_field(
    where: str,
    labelstudio_server: LabelStudio,
    labelstudio_second_server: LabelStudio,
    labelstudio_project: ProjectFactory,
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    _enrich(labelstudio_server, rich.project_id)
    target = labelstudio_server if where == "same" else labelstudio_second_server
    with platform_for(labelstudio_server, capture_mode="export") as source:
        before = capture(source, rich.project_id)
    with platform_for(target) as ls:
        report = restore_tables(ls, before.source, name="restored field by field")
        created = report.project.project_id
        try:
            assert report.warnings == ()
            assert _project_settings(target, created) == _project_settings(
                labelstudio_server, rich.project_id
            )
            assert _read_back(target, created) == _read_back(labelstudio_server, rich.project_id)
            with platform_for(target, capture_mode="export") as again:
                after = capture(again, created)
            assert_same_content(before, after)
        finally:
            ls.api.request("DELETE", f"/api/projects/{created}/")


def _leftovers(server: LabelStudio, project_id: str) -> tuple[int, int, int]:
    with server.client() as client:
        views = _ok(client.get("/api/dm/views/", params={"project": project_id}))
        exports = _ok(client.get(f"/api/projects/{project_id}/exports/"))
    folder = server.data_dir / "media" / "export" / str(project_id)
    files = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    return len(views), len(exports), files


def test_unchanged_captures_write_nothing_and_leave_nothing(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory, tmp_path: Path
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    _enrich(labelstudio_server, rich.project_id)
    before = _leftovers(labelstudio_server, rich.project_id)
    written = []
    with platform_for(labelstudio_server) as ls, Vault(LocalStore(str(tmp_path))) as vault:
        for _ in range(3):
            result = vault.capture(ls, rich.project_id)
            written.append(result.bytes_written)
    assert written[0] > 0
    assert written[1:] == [0, 0]
    assert _leftovers(labelstudio_server, rich.project_id) == before == (0, 0, 0)


class FaultyTransport(httpx.HTTPTransport):
    """The real server, with a fault in ``rate`` of the requests: 503 or 429 with
    Retry-After before the request reaches the server, or a timeout or a dropped connection
    after the server did the work."""

    def __init__(self, rate: float, seed: int) -> None:
        super().__init__()
        self.rate = rate
        self.random = random.Random(seed)
        self.faults: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.random.random() >= self.rate:
            return super().handle_request(request)
        kind = self.random.choice(["503", "429", "timeout", "dropped"])
        self.faults[kind] += 1
        if kind == "503":
            return httpx.Response(503, json={"detail": "injected"}, request=request)
        if kind == "429":
            return httpx.Response(429, headers={"Retry-After": "0"}, request=request)
        response = super().handle_request(request)
        response.read()
        response.close()
        if kind == "timeout":
            raise httpx.ReadTimeout("injected: the answer was lost", request=request)
        raise httpx.RemoteProtocolError("injected: connection dropped", request=request)


FAULT_SETTINGS = RequestSettings(
    max_retries=6,
    connection_retries=6,
    backoff_factor=0.01,
    backoff_jitter=0.0,
    retry_after_min=0.0,
)


def _faulty(server: LabelStudio, seed: int, **options: Any) -> LabelStudioPlatform:
    return LabelStudioPlatform(
        server.base_url,
        server.token,
        settings=FAULT_SETTINGS,
        transport=FaultyTransport(0.10, seed),
        options=LabelStudioOptions(**options),
    )


def test_restores_and_captures_finish_under_faults(
    labelstudio_server: LabelStudio,
    labelstudio_project: ProjectFactory,
    labelstudio_cleanup: list[int],
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    _enrich(labelstudio_server, rich.project_id)
    with platform_for(labelstudio_server) as ls:
        before = capture(ls, rich.project_id)
    faults: Counter[str] = Counter()
    for run in range(FAULT_RUNS):
        with _faulty(labelstudio_server, seed=run, import_batch_tasks=3) as ls:
            report = restore_tables(
                ls, before.source, store=MemoryStore(f"faults-{run}"), name=f"faults {run}"
            )
            labelstudio_cleanup.append(int(report.project.project_id))
            faults.update(ls.api.client._transport.faults)  # type: ignore[attr-defined]
        with platform_for(labelstudio_server) as ls:
            after = capture(ls, report.project.project_id)
        assert len(after.rows("items")) == rich.tasks + 3
        assert_same_content(before, after)
        with _faulty(labelstudio_server, seed=1000 + run) as ls:
            again = capture(ls, rich.project_id)
            faults.update(ls.api.client._transport.faults)  # type: ignore[attr-defined]
        assert_same_content(before, again)
    print(f"\n{FAULT_RUNS} restores and {FAULT_RUNS} captures under faults: {dict(faults)}")
    assert sum(faults.values()) > 0
