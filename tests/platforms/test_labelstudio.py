"""The Label Studio adapter against a real Label Studio server (``-m labelstudio``)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pyarrow as pa
import pytest

from devstack.process import free_port
from labelvault.errors import (
    AuthenticationError,
    PaginationError,
    PlatformNotFound,
    PlatformUnavailable,
    RestoreError,
)
from labelvault.http.settings import RequestSettings
from labelvault.models import RestoreOptions, RestoreReport, VersionOrigin
from labelvault.platforms.base import TableReader
from labelvault.platforms.labelstudio import (
    LabelStudioOptions,
    LabelStudioPlatform,
    register_webhook,
)
from labelvault.restore import journal_prefix, restore_version
from labelvault.snapshot.reader import SnapshotReader
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage.memory import MemoryStore
from tests.servers.labelstudio import LabelStudio, ProjectFactory

pytestmark = pytest.mark.labelstudio

FAST = RequestSettings(max_retries=0, connection_retries=0, backoff_factor=0.0, backoff_jitter=0.0)

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="cat"/><Label value="dog"/><Label value="Ünïcode 猫"/>
  </RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="road"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="eye"/></KeyPointLabels>
  <Choices name="weather" toName="image"><Choice value="sunny"/><Choice value="rainy"/></Choices>
  <TextArea name="note" toName="image"/>
  <Rating name="rating" toName="image"/>
  <Text name="text" value="$caption"/>
  <Labels name="ner" toName="text"><Label value="PER"/></Labels>
</View>"""


def _region(kind: str, name: str, value: dict[str, Any], rid: str, to: str = "image") -> dict:
    region = {"id": rid, "from_name": name, "to_name": to, "type": kind, "value": value}
    if to == "image":
        region.update(original_width=640, original_height=480, image_rotation=0)
    return region


def _box(label: str, x: float, rid: str) -> dict[str, Any]:
    value = {"x": x, "y": 20.000000000000004, "width": 30.5, "height": 1e-7, "rotation": 0}
    return _region("rectanglelabels", "box", {**value, "rectanglelabels": [label]}, rid)


POLYGON = _region(
    "polygonlabels",
    "poly",
    {"points": [[0.1, 0.2], [50.123456789, 60.0], [99.9, -0.0]], "polygonlabels": ["road"]},
    "p1",
)
KEYPOINT = _region(
    "keypointlabels", "kp", {"x": 1.5, "y": 2.5, "width": 0.3, "keypointlabels": ["eye"]}, "k1"
)
CHOICE = _region("choices", "weather", {"choices": ["rainy"]}, "c1")
NOTE = _region("textarea", "note", {"text": ["Grüße aus Köln — 東京 🚀"]}, "t1")
RATING = _region("rating", "rating", {"rating": 4}, "s1")
SPAN = _region(
    "labels", "ner", {"start": 0, "end": 5, "text": "Grüße", "labels": ["PER"]}, "n1", to="text"
)


@dataclass
class Rich:
    """A project with several label types, authors, predictions, drafts and unicode."""

    project_id: str
    users: list[str]
    tasks: int


def _client(server: LabelStudio) -> httpx.Client:
    return server.client()


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.status_code}: {response.text[:500]}"
    return response.json()


def build_rich_project(server: LabelStudio, create: Callable[..., int]) -> Rich:
    """Fill a fresh project through Label Studio's own API."""
    suffix = secrets.token_hex(3)
    ann = f"Ann.{suffix}@Example.com"
    bob = f"bob.{suffix}@example.com"
    project_id = create(
        LABEL_CONFIG,
        title=f"Round trip Ünïcode {suffix}",
        description="Beschreibung: ünïcode, <b>html</b>, 東京",
        color="#FF8800",
        maximum_annotations=2,
        show_skip_button=False,
        expert_instruction="<p>Label every cat 🐱</p>",
        sampling="Uniform sampling",
    )
    with _client(server) as client:
        for email, username, first, last in (
            (ann, f"ann-{suffix}", "Ann", "Ångström"),
            (bob, f"bob-{suffix}", "Bob", ""),
        ):
            _ok(
                client.post(
                    "/api/users/",
                    json={
                        "email": email,
                        "username": username,
                        "first_name": first,
                        "last_name": last,
                    },
                )
            )
        image = "http://example.invalid/img/{}.jpg"
        tasks = [
            {
                "data": {"image": image.format(0), "caption": "Grüße, 世界 🚀 e\u0301"},
                "meta": {"nested": {"a": [1, 2.5, None], "s": "ß"}},
                "allow_skip": False,
            },
            {
                "data": {"image": image.format(1), "caption": "two authors"},
                "annotations": [
                    {
                        "result": [_box("cat", 10.123456789012345, "b1"), POLYGON],
                        "completed_by": {"email": ann},
                        "ground_truth": False,
                        "was_cancelled": False,
                        "lead_time": 12.25,
                    },
                    {
                        "result": [_box("Ünïcode 猫", 0.5, "b2"), CHOICE],
                        "completed_by": {"email": bob},
                        "ground_truth": False,
                        "lead_time": 3.0,
                    },
                ],
                "predictions": [
                    {"result": [_box("dog", 11.0, "b3")], "score": 0.87, "model_version": "m1"}
                ],
            },
            {
                "data": {"image": image.format(2), "caption": "cancelled and ground truth"},
                "annotations": [
                    {
                        "result": [],
                        "completed_by": {"email": bob},
                        "was_cancelled": True,
                        "ground_truth": False,
                    },
                    {
                        "result": [KEYPOINT, RATING],
                        "completed_by": {"email": ann},
                        "ground_truth": True,
                        "lead_time": 0.001,
                    },
                ],
            },
            {
                "data": {"image": image.format(3), "caption": "Grüße from text"},
                "annotations": [
                    {"result": [SPAN, NOTE], "completed_by": {"email": ann}, "ground_truth": False}
                ],
                "predictions": [
                    {"result": [SPAN], "model_version": "m1"},
                    {"result": [CHOICE], "score": 0.1, "model_version": "m2"},
                ],
            },
            {
                "data": {"image": image.format(4), "caption": "restored before"},
                "meta": {"_labelvault": {"source": "000000000777"}, "kept": True},
                "annotations": [{"result": [_box("cat", 1.0, "b4")], "ground_truth": False}],
            },
            *[{"data": {"image": image.format(n), "caption": f"plain {n}"}} for n in range(5, 9)],
        ]
        answer = _ok(
            client.post(
                f"/api/projects/{project_id}/import",
                params={"return_task_ids": "true"},
                json=tasks,
            )
        )
        ids = answer["task_ids"]
        # An annotation made in the editor (by the owner), with a relation between regions.
        relation = {"from_id": "e1", "to_id": "e2", "type": "relation", "direction": "right"}
        _ok(
            client.post(
                f"/api/tasks/{ids[5]}/annotations/",
                json={
                    "result": [_box("cat", 5.0, "e1"), _box("dog", 6.0, "e2"), relation],
                    "lead_time": 7.5,
                    "ground_truth": False,
                    "was_cancelled": False,
                },
            )
        )
        # Drafts: one on a task, one that edits an existing annotation.
        _ok(
            client.post(
                f"/api/tasks/{ids[6]}/drafts",
                json={"result": [_box("dog", 42.0, "d1")], "lead_time": 1.25},
            )
        )
        first = _ok(client.get(f"/api/tasks/{ids[1]}/annotations/"))[0]
        _ok(
            client.post(
                f"/api/tasks/{ids[1]}/annotations/{first['id']}/drafts",
                json={"result": [POLYGON], "lead_time": 2.0, "was_postponed": True},
            )
        )
        _ok(client.patch(f"/api/projects/{project_id}", json={"model_version": "m2"}))
    return Rich(project_id=str(project_id), users=[ann, bob], tasks=len(tasks))


@dataclass
class Capture:
    """What ``iter_pages`` produced, by table."""

    batches: dict[str, list[pa.RecordBatch]]

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [row for batch in self.batches.get(table, []) for row in batch.to_pylist()]

    def fingerprints(self) -> dict[str, Counter[str]]:
        return {t: Counter(r["fingerprint"] for r in self.rows(t)) for t in self.batches}

    def columns(self, table: str, *names: str) -> Counter[tuple[Any, ...]]:
        return Counter(tuple(row[n] for n in names) for row in self.rows(table))

    def source(self, table: str) -> Iterator[pa.RecordBatch]:
        return iter(self.batches.get(table, []))


def capture(platform: LabelStudioPlatform, project_id: str) -> Capture:
    batches: dict[str, list[pa.RecordBatch]] = {}
    last: dict[str, str] = {}
    for page in platform.iter_pages(project_id):
        keys = page.batch.column("key").to_pylist()
        assert keys == sorted(keys)
        assert len(set(keys)) == len(keys)
        assert last.get(page.table, "") < keys[0]
        last[page.table] = keys[-1]
        batches.setdefault(page.table, []).append(page.batch)
    return Capture(batches)


def platform_for(server: LabelStudio, **options: Any) -> LabelStudioPlatform:
    return LabelStudioPlatform(server.base_url, server.token, options=LabelStudioOptions(**options))


def assert_same_content(before: Capture, after: Capture) -> None:
    assert before.fingerprints() == after.fingerprints()
    assert before.columns("items", "link", "meta", "kind") == after.columns(
        "items", "link", "meta", "kind"
    )
    columns = ("kind", "class_name", "geometry_type", "geometry", "author")
    assert before.columns("annotations", *columns) == after.columns("annotations", *columns)
    assert before.columns("users", "email", "name") == after.columns("users", "email", "name")


def test_capture_maps_every_kind_of_entity(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    with platform_for(labelstudio_server, capture_mode="export") as ls:
        info = ls.get_project(rich.project_id)
        exported = capture(ls, rich.project_id)
    # Label Studio counts annotations without the cancelled one.
    assert info.counts == {"items": rich.tasks, "annotations": 6, "predictions": 3}
    assert set(exported.batches) == {"project", "items", "annotations", "users"}
    assert len(exported.rows("items")) == rich.tasks
    kinds = Counter(row["kind"] for row in exported.rows("annotations"))
    assert kinds == {"annotation": 7, "prediction": 3, "draft": 2}
    geometry = Counter(row["geometry_type"] for row in exported.rows("annotations"))
    assert geometry["rectangle"] >= 3
    assert geometry["any"] >= 3  # box + polygon, box + choice, keypoint + rating …
    classes = {row["class_name"] for row in exported.rows("annotations")}
    assert {"cat|road", "rainy|Ünïcode 猫", "eye", "PER", "dog"} <= classes
    authors = Counter(row["author"] for row in exported.rows("annotations"))
    assert authors[rich.users[0]] == 3
    assert authors[rich.users[1]] == 2
    assert authors[labelstudio_server.username] == 4  # 2 annotations, 2 drafts
    assert {row["email"] for row in exported.rows("users")} == {
        *rich.users,
        labelstudio_server.username,
    }
    project = exported.rows("project")[0]
    assert json.loads(project["definitions"]) == {"label_config": LABEL_CONFIG}
    assert json.loads(project["settings"])["model_version"] == "m2"
    metas = [json.loads(row["meta"]) for row in exported.rows("items")]
    # A key named like an old restore marker is the user's content like any other.
    assert {"_labelvault": {"source": "000000000777"}, "kept": True} in metas

    # Exports of task id ranges (built one or two at a time) give the same rows as one
    # export, and leave no view and no export behind.
    def leftovers() -> tuple[list[Any], list[Any]]:
        with labelstudio_server.client() as client:
            views = _ok(client.get("/api/dm/views/", params={"project": rich.project_id}))
            exports = _ok(client.get(f"/api/projects/{rich.project_id}/exports/"))
        return views, exports

    before = leftovers()
    for options in (
        {"export_partition_tasks": 2, "export_concurrency": 1},
        {"export_partition_tasks": 1, "export_concurrency": 2},
        {"export_concurrency": 3},
    ):
        with platform_for(
            labelstudio_server, capture_mode="export", export_min_range_tasks=1, **options
        ) as ls:
            ranged = capture(ls, rich.project_id)
        for table in exported.batches:
            assert ranged.rows(table) == exported.rows(table)
        assert leftovers() == before

    # Paging /api/tasks?fields=all gives the same rows as the export, sequentially and with
    # concurrent pages, whatever the page size.
    for options in ({"page_size": 3}, {"page_size": 2, "list_concurrency": 3}):
        with platform_for(labelstudio_server, capture_mode="list", **options) as ls:
            listed = capture(ls, rich.project_id)
        assert listed.fingerprints() == exported.fingerprints()
        strip = lambda rows: [{k: v for k, v in r.items() if k != "raw"} for r in rows]  # noqa: E731
        for table in exported.batches:
            assert strip(listed.rows(table)) == strip(exported.rows(table))


def restore_tables(
    platform: LabelStudioPlatform,
    tables: TableReader,
    *,
    name: str | None = None,
    store: MemoryStore | None = None,
    journal: str = "labelstudio/x/1/restores/test",
) -> RestoreReport:
    """Restore through the engine, as the CLI and the flows do."""
    return restore_version(
        platform,
        tables,
        store=store or MemoryStore("labelstudio-restore"),
        journal=journal,
        origin=VersionOrigin(source_project_id="1", version_number=1),
        options=RestoreOptions(project_name=name),
    )


def test_round_trip_on_the_same_server(
    labelstudio_server: LabelStudio,
    labelstudio_project: ProjectFactory,
    labelstudio_cleanup: list[int],
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    with platform_for(labelstudio_server) as ls:
        before = capture(ls, rich.project_id)
        result = restore_tables(ls, before.source)
        labelstudio_cleanup.append(int(result.project.project_id))
        after = capture(ls, result.project.project_id)
    assert result.project.project_id != rich.project_id
    assert result.project.name == before.rows("project")[0]["name"]
    # 7 annotations, 3 predictions and 2 drafts are rows of the annotations table.
    assert result.created == {
        "users": 0,
        "datasets": 0,
        "items": rich.tasks,
        "annotations": 12,
        "tags": 0,
    }
    assert result.warnings == ()
    assert_same_content(before, after)


def test_round_trip_to_another_server_creates_the_users(
    labelstudio_server: LabelStudio,
    labelstudio_second_server: LabelStudio,
    labelstudio_project: ProjectFactory,
) -> None:
    """Through the real snapshot format: capture → write → read → restore elsewhere."""
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    store = MemoryStore("labelstudio")
    with platform_for(labelstudio_server) as source:
        before = capture(source, rich.project_id)
        writer = SnapshotWriter(
            store,
            "labelstudio/source",
            source={"platform": "labelstudio", "instance": source.instance, "project_id": "1"},
        )
        for page in source.iter_pages(rich.project_id):
            writer.write(page.table, page.batch)
        manifest = writer.finish()
    reader = SnapshotReader(store, manifest)
    with platform_for(labelstudio_second_server) as target:
        result = restore_tables(target, reader.iter_batches, name="restored elsewhere")
        try:
            after = capture(target, result.project.project_id)
        finally:
            target.api.request("DELETE", f"/api/projects/{result.project.project_id}/")
    assert result.created["users"] == 2
    assert result.project.name == "restored elsewhere"
    # The title differs, the project's content does not.
    assert before.fingerprints()["project"] == after.fingerprints()["project"]
    before.batches.pop("project")
    after.batches.pop("project")
    assert_same_content(before, after)


class _FailingImports(httpx.HTTPTransport):
    """Sends requests for real, but loses the answer of the n-th import (as a timeout)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.imports = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/import"):
            self.imports += 1
            if self.imports == self.fail_at:
                response.read()
                raise httpx.ReadTimeout("lost the answer", request=request)
        return response


def _losing_second_import(server: LabelStudio) -> LabelStudioPlatform:
    """A platform that imports 3 tasks a batch and loses the answer to its second import."""
    return LabelStudioPlatform(
        server.base_url,
        server.token,
        settings=FAST,
        transport=_FailingImports(fail_at=2),
        options=LabelStudioOptions(import_batch_tasks=3),
    )


def test_retried_restore_resumes_without_duplicates(
    labelstudio_server: LabelStudio,
    labelstudio_project: ProjectFactory,
    labelstudio_cleanup: list[int],
) -> None:
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    with platform_for(labelstudio_server) as ls:
        before = capture(ls, rich.project_id)
    store = MemoryStore("labelstudio-retried")
    flaky = _losing_second_import(labelstudio_server)
    with flaky, pytest.raises(RestoreError) as stopped:
        restore_tables(flaky, before.source, store=store)
    created = stopped.value.created_project
    assert created is not None
    labelstudio_cleanup.append(int(created))
    assert stopped.value.progress["items"] == 3  # the first batch; the second landed unseen
    assert "ReadTimeout" in stopped.value.message
    with platform_for(labelstudio_server, import_batch_tasks=3) as ls:
        result = restore_tables(ls, before.source, store=store)
        after = capture(ls, created)
    assert result.resumed
    assert result.project.project_id == created
    # 3 were journaled by the first run; the 3 that landed unseen are found by content and
    # journaled, not imported again.
    assert result.created["items"] == rich.tasks - 3
    assert len(after.rows("items")) == rich.tasks
    assert_same_content(before, after)


def test_journaled_restore_finishes_the_project_it_started(
    labelstudio_server: LabelStudio,
    labelstudio_project: ProjectFactory,
    labelstudio_cleanup: list[int],
) -> None:
    """Through the journal (what the CLI and the flows use): the same restore id resumes."""
    rich = build_rich_project(labelstudio_server, labelstudio_project)
    with platform_for(labelstudio_server) as ls:
        before = capture(ls, rich.project_id)
    store = MemoryStore("labelstudio-journal")
    journal = journal_prefix("labelstudio/x/1", "run-1")
    flaky = _losing_second_import(labelstudio_server)
    with flaky, pytest.raises(RestoreError) as stopped:
        restore_tables(flaky, before.source, store=store, journal=journal, name="journaled")
    created = stopped.value.created_project
    assert created is not None
    labelstudio_cleanup.append(int(created))
    with platform_for(labelstudio_server, import_batch_tasks=3) as ls:
        report = restore_tables(ls, before.source, store=store, journal=journal)
        after = capture(ls, created)
    assert report.resumed
    assert report.project.project_id == created
    assert report.project.name == "journaled"
    assert len(after.rows("items")) == rich.tasks
    before.batches.pop("project")  # the title differs on purpose
    after.batches.pop("project")
    assert_same_content(before, after)


def test_empty_project_and_a_listing_that_loses_tasks(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory
) -> None:
    project_id = labelstudio_project(title="paging")
    for mode in ("export", "list"):
        with platform_for(labelstudio_server, capture_mode=mode) as ls:
            empty = capture(ls, str(project_id))
        assert list(empty.batches) == ["project"]
    with labelstudio_server.client() as client:
        answer = _ok(
            client.post(
                f"/api/projects/{project_id}/import",
                params={"return_task_ids": "true"},
                json=[{"data": {"n": n}} for n in range(25)],
            )
        )
    ids: list[int] = answer["task_ids"]
    with platform_for(labelstudio_server, capture_mode="list", page_size=10) as ls:
        pages = list(capture(ls, str(project_id)).batches["items"])
        assert [batch.num_rows for batch in pages] == [10, 10, 5]
        with pytest.raises(PaginationError, match="past the last page"):
            ls.api.request_json(
                "GET", "/api/tasks", params={"project": project_id, "page": 99, "page_size": 10}
            )
        listing = ls.iter_pages(str(project_id))
        assert next(listing).table == "project"
        assert next(listing).batch.num_rows == 10  # page 1 was read, page 2 was not
        with labelstudio_server.client() as client:
            for task_id in ids[-12:]:
                client.delete(f"/api/tasks/{task_id}/")
        with pytest.raises(PaginationError, match=r"total changed|went missing|past the last"):
            list(listing)


def _assert_secret_free(exc: BaseException, *secret: str) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = f"{current} {current!r} {getattr(current, 'message', '')}"
        for value in secret:
            assert value not in text
        current = current.__cause__ or current.__context__


def test_bad_input_gives_clear_errors_without_the_token(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory
) -> None:
    project_id = str(labelstudio_project(title="errors"))
    url = labelstudio_server.base_url
    wrong = secrets.token_hex(20)
    with (
        LabelStudioPlatform(url, wrong, settings=FAST) as ls,
        pytest.raises(AuthenticationError, match="refused the API token") as refused,
    ):
        ls.get_project(project_id)
    _assert_secret_free(refused.value, wrong)

    with platform_for(labelstudio_server) as ls:
        with pytest.raises(PlatformNotFound, match="project 99999 does not exist") as missing:
            ls.get_project("99999")
        with pytest.raises(PlatformNotFound):
            list(ls.iter_pages("99999"))
        with pytest.raises(PlatformNotFound, match="not a Label Studio project id"):
            ls.get_project("../1")
    _assert_secret_free(missing.value, labelstudio_server.token)

    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with (
        LabelStudioPlatform(closed, labelstudio_server.token, settings=FAST) as ls,
        pytest.raises(PlatformUnavailable, match="ConnectError") as down,
    ):
        ls.get_project(project_id)
    assert time.monotonic() - started < 10
    _assert_secret_free(down.value, labelstudio_server.token)

    pat = labelstudio_server.personal_access_token()
    forged = pat[:-4] + ("AAAA" if not pat.endswith("AAAA") else "BBBB")
    with (
        LabelStudioPlatform(url, forged, settings=FAST) as ls,
        pytest.raises(AuthenticationError, match="personal access token") as bad_pat,
    ):
        ls.get_project(project_id)
    _assert_secret_free(bad_pat.value, forged, pat)

    labelstudio_server.set_legacy_tokens(False)
    try:
        with (
            platform_for(labelstudio_server) as ls,
            pytest.raises(AuthenticationError, match="legacy tokens are disabled") as legacy,
        ):
            ls.get_project(project_id)
        _assert_secret_free(legacy.value, labelstudio_server.token)
        # A personal access token still works, and refreshes its access token on a 401.
        with LabelStudioPlatform(url, pat, settings=FAST) as ls:
            assert ls.get_project(project_id).name == "errors"
            assert ls._pat_auth is not None
            ls._pat_auth._access = "not-a-valid-access-token"
            assert [page.table for page in ls.iter_pages(project_id)] == ["project"]
    finally:
        labelstudio_server.set_legacy_tokens(True)


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.received.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def wait_for(self, action: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, _, body in self.received:
                if body.get("action") == action:
                    return body
            time.sleep(0.05)
        raise AssertionError(f"no {action} webhook in {timeout} s: {self.received}")


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_webhook_registration_is_idempotent_and_fires(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory, receiver: _Receiver
) -> None:
    project_id = labelstudio_project(title="hooks")
    with labelstudio_server.client() as client:
        task = _ok(client.post("/api/tasks", json={"project": project_id, "data": {"n": 1}}))
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    first = register_webhook(
        labelstudio_server.base_url,
        labelstudio_server.token,
        str(project_id),
        url,
        headers={"X-Labelvault": "bridge"},
    )
    with platform_for(labelstudio_server) as ls:
        again = ls.register_webhook(str(project_id), url, headers={"X-Labelvault": "bridge"})
        assert (first.created, again.created, again.id) == (True, False, first.id)
        narrowed = ls.register_webhook(
            str(project_id), url, actions=["ANNOTATION_CREATED"], headers={"X-Labelvault": "b2"}
        )
        assert (narrowed.created, narrowed.id, narrowed.actions) == (
            False,
            first.id,
            ("ANNOTATION_CREATED",),
        )
        back = ls.register_webhook(str(project_id), url, headers={"X-Labelvault": "bridge"})
        assert back.actions == tuple(sorted(first.actions))
        hooks = ls.api.request_json("GET", "/api/webhooks/", params={"project": project_id})
    assert [hook["url"] for hook in hooks] == [url]
    assert receiver.received == []

    with labelstudio_server.client() as client:
        _ok(
            client.post(
                f"/api/tasks/{task['id']}/annotations/",
                json={"result": [CHOICE], "ground_truth": False},
            )
        )
    body = receiver.wait_for("ANNOTATION_CREATED")
    assert body["project"]["id"] == project_id
    path, headers, _ = receiver.received[-1]
    assert path == "/hook"
    assert headers.get("X-Labelvault") == "bridge"


def test_webhook_reaches_the_event_bridge(
    labelstudio_server: LabelStudio, labelstudio_project: ProjectFactory
) -> None:
    from labelvault.events import PROJECT_CHANGED
    from labelvault.webhooks import SECRET_HEADER, create_app
    from tests.servers.asgi import serve_in_thread

    events: list[dict[str, Any]] = []

    class Sink:
        def send(self, event: dict[str, Any]) -> None:
            events.append(event)

    project_id = labelstudio_project(title="bridge")
    with labelstudio_server.client() as client:
        task = _ok(client.post("/api/tasks", json={"project": project_id, "data": {"n": 1}}))
    secret = secrets.token_urlsafe(24)
    app = create_app(Sink(), secret=secret)  # type: ignore[arg-type]
    with serve_in_thread(app) as bridge:
        with platform_for(labelstudio_server) as ls:
            ls.register_webhook(
                str(project_id),
                f"{bridge}/webhooks/labelstudio/ls-test",
                headers={SECRET_HEADER: secret},
            )
        with labelstudio_server.client() as client:
            _ok(
                client.post(
                    f"/api/tasks/{task['id']}/annotations/",
                    json={"result": [CHOICE], "ground_truth": False},
                )
            )
        deadline = time.monotonic() + 15
        while not events and time.monotonic() < deadline:
            time.sleep(0.05)
    assert events, "the bridge received no webhook"
    event = events[0]
    assert event["event"] == PROJECT_CHANGED
    assert event["resource"]["prefect.resource.id"] == f"labelvault.project.ls-test.{project_id}"
    assert event["payload"]["action"] == "ANNOTATION_CREATED"
