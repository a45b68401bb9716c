"""The deployments on a real Prefect server with a real process worker.

``deployments/setup.py`` prepares a fresh server (pool, limits, blocks) and deploys
``prefect.yaml``; a worker runs the flows in subprocesses against a fake Supervisely server on
loopback and a local store. Runs are started the way the UI starts them (the REST API), and
events arrive through the webhook bridge.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.process import log_tail
from labelvault.capture import project_ref
from labelvault.catalog import Catalog
from labelvault.platforms.supervisely import SuperviselyPlatform
from labelvault.snapshot.writer import SnapshotWriter
from labelvault.storage import LocalStore, MemoryStore
from labelvault.webhooks import SECRET_HEADER, EventSink, create_app
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project
from tests.servers.asgi import serve_in_thread
from tests.servers.prefect import PrefectServer

pytestmark = pytest.mark.prefect_server

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Deployed:
    """A deployed Prefect server with a worker, and the platform and store its flows use."""

    server: PrefectServer
    api: httpx.Client
    fake: FakeSupervisely
    rich: RichProject
    sly_url: str
    store: LocalStore
    worker_log: Path

    @property
    def project_id(self) -> str:
        return str(self.rich.project_id)

    def deployment(self, flow: str, name: str) -> dict[str, Any]:
        response = self.api.get(f"/deployments/name/{flow}/{name}")
        response.raise_for_status()
        return dict(response.json())

    def run(self, flow: str, name: str, parameters: dict[str, Any]) -> str:
        """Start a run the way the UI's "Run" form does."""
        deployment = self.deployment(flow, name)
        response = self.api.post(
            f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": parameters}
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def block_ref(self, block_type: str, name: str) -> dict[str, Any]:
        """What the run form sends when a saved block is picked."""
        response = self.api.get(f"/block_types/slug/{block_type}/block_documents/name/{name}")
        response.raise_for_status()
        return {"$ref": {"block_document_id": response.json()["id"]}}

    def wait(self, run_id: str, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                run = self.api.get(f"/flow_runs/{run_id}").json()
            except httpx.TimeoutException:  # a poll the busy server did not answer: poll again
                continue
            if run["state_type"] in TERMINAL:
                return dict(run)
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} did not finish\n{log_tail(self.worker_log, 60)}")

    def runs_of(self, flow: str, name: str) -> list[dict[str, Any]]:
        deployment = self.deployment(flow, name)
        response = self.api.post(
            "/flow_runs/filter",
            json={"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}},
        )
        response.raise_for_status()
        return list(response.json())

    def catalog(self) -> Catalog:
        return Catalog(self.store)

    def platform(self) -> SuperviselyPlatform:
        return SuperviselyPlatform(self.sly_url, self.fake.token)

    def edit(self, n: int) -> None:
        """An annotator draws one more box; the platform's updatedAt moves."""
        pid = self.rich.project_id
        [box] = [c for c in self.fake.metas[pid]["classes"] if c["shape"] == "rectangle"]
        geometry = {"points": {"exterior": [[n + 0.5, 2.25], [n + 40.75, 60.125]], "interior": []}}
        with self.fake.lock:
            self.fake.create_figure(self.rich.hash_images[n % 3], box["id"], "rectangle", geometry)
            self.fake.touch_project(pid)

    def content_hash_now(self) -> str:
        """The content hash of the project as it is on the platform right now."""
        platform = self.platform()
        ref = project_ref(platform, self.project_id)
        writer = SnapshotWriter(MemoryStore(), ref.prefix, source=ref.model_dump())
        for page in platform.iter_pages(self.project_id):
            writer.write(page.table, page.batch)
        platform.close()
        return writer.finish().content_hash


@pytest.fixture(scope="module")
def deployed(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    fake = FakeSupervisely(seed=11)
    rich = generate_rich_project(fake, images_per_dataset=3)
    store_path = tmp_path_factory.mktemp("deployed-store")
    with fake.serve() as sly_url:
        prefect_server.setup_labelvault(
            {
                "LABELVAULT_SUPERVISELY_URL": sly_url,
                "LABELVAULT_SUPERVISELY_TOKEN": fake.token,
                "LABELVAULT_STORE_URL": str(store_path),
                "LABELVAULT_NIGHTLY_PROJECT_ID": str(rich.project_id),
            }
        )
        worker_log = prefect_server.start_worker("labelvault")
        with prefect_server.api() as api:
            yield Deployed(
                server=prefect_server,
                api=api,
                fake=fake,
                rich=rich,
                sly_url=sly_url,
                store=LocalStore(store_path),
                worker_log=worker_log,
            )
        prefect_server.stop_workers()


def test_setup_is_idempotent_and_deploys_everything(deployed: Deployed) -> None:
    again = deployed.server.setup_labelvault(
        {"LABELVAULT_STORE_URL": str(deployed.store.root)}, "--no-deploy"
    )
    assert "exists" in again.stdout
    for flow, name in [
        ("create_version", "nightly-version"),
        ("create_version", "create-version"),
        ("restore_version", "restore-version"),
        ("diff_versions", "diff-versions"),
        ("preview_version", "preview-version"),
        ("version_on_change", "version-on-change"),
        ("expire_versions", "expire-versions"),
        ("expire_versions", "expire-versions-apply"),
    ]:
        deployment = deployed.deployment(flow, name)
        assert deployment["enforce_parameter_schema"] is True
        assert deployment["work_pool_name"] == "labelvault"
        assert deployment["pull_steps"] == [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $LABELVAULT_CODE_DIR }}"
                }
            }
        ]
        schema = deployment["parameter_openapi_schema"]["properties"]
        undescribed = [key for key, field in schema.items() if not field.get("description")]
        assert not undescribed, f"{name}: parameters without a description: {undescribed}"
    apply = deployed.deployment("expire_versions", "expire-versions-apply")
    assert apply["parameters"]["dry_run"] is False
    assert [schedule["active"] for schedule in apply["schedules"]] == [False]


def test_ui_run_with_blocks_picked_on_the_form_creates_a_version(deployed: Deployed) -> None:
    # The form's block picker sends a reference to the saved block, not its name.
    parameters = {
        "project_id": deployed.project_id,
        "connection": deployed.block_ref("labelvault-platform-connection", "supervisely"),
        "storage": deployed.block_ref("labelvault-store", "default"),
    }
    run_id = deployed.run("create_version", "create-version", parameters)
    run = deployed.wait(run_id)
    assert run["state_type"] == "COMPLETED", log_tail(deployed.worker_log, 60)
    assert run["name"] == f"create supervisely/{deployed.project_id}"
    ref = project_ref(deployed.platform(), deployed.project_id)
    latest = deployed.catalog().latest(ref)
    assert latest is not None
    assert latest.content_hash == deployed.content_hash_now()
    artifacts = deployed.api.post(
        "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    ).json()
    assert {artifact["type"] for artifact in artifacts} >= {"markdown", "progress"}


def test_parameters_are_validated_by_the_server(deployed: Deployed) -> None:
    deployment = deployed.deployment("create_version", "create-version")
    response = deployed.api.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": {"project_id": deployed.project_id, "quiet_seconds": "soon"}},
    )
    assert response.status_code == 409
    assert "quiet_seconds" in response.text


def test_burst_of_edits_makes_one_or_two_versions_with_the_last_edit(deployed: Deployed) -> None:
    sink = EventSink(f"{deployed.server.api_url}")
    secret = secrets.token_urlsafe(24)
    ref = project_ref(deployed.platform(), deployed.project_id)
    before = len(deployed.catalog().list(ref))
    app = create_app(sink, secret=secret)
    with (
        serve_in_thread(app) as bridge,
        httpx.Client(base_url=bridge, headers={SECRET_HEADER: secret}) as hooks,
    ):
        for n in range(5):
            deployed.edit(n)
            response = hooks.post(f"/webhooks/supervisely/{deployed.project_id}", json={})
            assert response.status_code == 202, response.text
    wanted = deployed.content_hash_now()

    deadline = time.monotonic() + 240
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = deployed.runs_of("version_on_change", "version-on-change")
        latest = deployed.catalog().latest(ref)
        finished = runs and all(run["state_type"] in TERMINAL for run in runs)
        if finished and latest is not None and latest.content_hash == wanted:
            break
        time.sleep(1.0)
    else:
        raise AssertionError(
            f"no version with the last edit; runs: {[r['state_type'] for r in runs]}\n"
            f"{log_tail(deployed.worker_log, 80)}"
        )
    assert 1 <= len(runs) <= 2, [run["state_type"] for run in runs]
    assert all(run["state_type"] == "COMPLETED" for run in runs)
    new_versions = len(deployed.catalog().list(ref)) - before
    assert 1 <= new_versions <= 2


def test_nightly_schedule_has_scheduled_runs(deployed: Deployed) -> None:
    deadline = time.monotonic() + 120
    scheduled: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not scheduled:
        scheduled = [
            run
            for run in deployed.runs_of("create_version", "nightly-version")
            if run["state_type"] == "SCHEDULED"
        ]
        time.sleep(1.0)
    assert scheduled, "the scheduler created no nightly runs"
    for run in scheduled:
        when = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
        assert (when.hour, when.minute) == (2, 0)
        assert run["parameters"]["project_id"] == deployed.project_id


def test_concurrency_limits_exist_and_runs_on_one_project_do_not_overlap(
    deployed: Deployed,
) -> None:
    limits = {
        limit["name"]: limit for limit in deployed.api.post("/v2/concurrency_limits/filter").json()
    }
    assert limits["tag:platform:supervisely"]["limit"] >= 1
    assert limits["tag:platform:labelstudio"]["limit"] >= 1

    deployed.edit(7)
    parameters = {"project_id": deployed.project_id}
    run_ids = [deployed.run("create_version", "create-version", parameters) for _ in range(2)]
    runs = [deployed.wait(run_id) for run_id in run_ids]
    assert [run["state_type"] for run in runs] == ["COMPLETED", "COMPLETED"], log_tail(
        deployed.worker_log, 80
    )
    captures = deployed.api.post(
        "/task_runs/filter",
        json={
            "flow_runs": {"id": {"any_": run_ids}},
            "task_runs": {"name": {"like_": "capture-version"}},
        },
    ).json()
    assert len(captures) == 2
    spans = sorted(
        (datetime.fromisoformat(t["start_time"]), datetime.fromisoformat(t["end_time"]))
        for t in captures
    )
    assert spans[0][1] <= spans[1][0], f"capture tasks overlapped: {spans}"
    assert f"labelvault-project-supervisely-{deployed.project_id}" in {
        limit["name"] for limit in deployed.api.post("/v2/concurrency_limits/filter").json()
    }


def run_logs(deployed: Deployed, run_id: str) -> list[dict[str, Any]]:
    response = deployed.api.post(
        "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}
    )
    response.raise_for_status()
    return list(response.json())


def wait_for_log(deployed: Deployed, run_id: str, text: str, timeout: float = 60.0) -> str:
    """The first log line of the run that contains ``text`` (logs arrive in batches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in run_logs(deployed, run_id):
            if text in log["message"]:
                return str(log["message"])
        time.sleep(0.5)
    lines = [log["message"] for log in run_logs(deployed, run_id)]
    raise AssertionError(f"no log line with {text!r} in run {run_id}: {lines}")


def run_artifacts(deployed: Deployed, run_id: str) -> list[dict[str, Any]]:
    response = deployed.api.post(
        "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    )
    response.raise_for_status()
    return list(response.json())


def test_run_that_committed_a_version_says_so_when_a_catch_up_round_found_nothing_new(
    deployed: Deployed,
) -> None:
    """The project's updated_at moves while the capture reads it, its content does not: the
    catch-up round finds the same content, and the run still reports the version it made."""
    # A version to diff against, whatever ran before this test.
    first = deployed.run("create_version", "create-version", {"project_id": deployed.project_id})
    assert deployed.wait(first)["state_type"] == "COMPLETED", log_tail(deployed.worker_log, 60)
    deployed.edit(11)
    touched: list[str] = []
    original = deployed.fake.methods["figures.list"]

    def touch_once(user: Any, body: Any) -> Any:
        if not touched:
            touched.append(deployed.fake.touch_project(deployed.rich.project_id))
        return original(user, body)

    deployed.fake.methods["figures.list"] = touch_once
    try:
        run_id = deployed.run(
            "create_version", "create-version", {"project_id": deployed.rich.project_id}
        )
        run = deployed.wait(run_id)
    finally:
        deployed.fake.methods["figures.list"] = original
    assert run["state_type"] == "COMPLETED", log_tail(deployed.worker_log, 60)
    assert touched
    assert run["name"] == f"create supervisely/{deployed.project_id}"
    assert {"supervisely", f"project:supervisely/{deployed.project_id}"} <= set(run["tags"])
    latest = deployed.catalog().latest(project_ref(deployed.platform(), deployed.project_id))
    assert latest is not None
    line = wait_for_log(deployed, run_id, "created version")
    assert f"created version {latest.number} (2 captures" in line
    keys = {artifact["key"] for artifact in run_artifacts(deployed, run_id)}
    assert f"labelvault-supervisely-{deployed.project_id}-diff" in keys


def test_a_run_waiting_for_its_project_says_so_and_holds_no_platform_slot(
    deployed: Deployed,
) -> None:
    name = f"labelvault-project-supervisely-{deployed.project_id}"
    created = deployed.api.post("/v2/concurrency_limits/", json={"name": name, "limit": 1})
    assert created.status_code in (201, 409), created.text
    deployed.api.patch(f"/v2/concurrency_limits/{name}", json={"active_slots": 1})
    run_id = None
    try:
        deployed.edit(12)
        run_id = deployed.run(
            "create_version", "create-version", {"project_id": deployed.project_id}
        )
        line = wait_for_log(deployed, run_id, "waiting for project", timeout=120)
        assert f"supervisely/{deployed.project_id}" in line
        run = deployed.api.get(f"/flow_runs/{run_id}").json()
        assert (run["state_type"], run["state_name"]) == ("RUNNING", "AwaitingProjectSlot")
        platform_limit = deployed.api.get("/v2/concurrency_limits/tag:platform:supervisely")
        assert platform_limit.json()["active_slots"] == 0
        tasks = deployed.api.post(
            "/task_runs/filter",
            json={
                "flow_runs": {"id": {"any_": [run_id]}},
                "task_runs": {"name": {"like_": "capture-version"}},
            },
        ).json()
        assert tasks == []
    finally:
        deployed.api.patch(f"/v2/concurrency_limits/{name}", json={"active_slots": 0})
        # Whatever happened above, the run ends here, so that it cannot take the next test's
        # platform calls.
        run = deployed.wait(run_id) if run_id else {}
    assert run["state_type"] == "COMPLETED", log_tail(deployed.worker_log, 60)
    wait_for_log(deployed, run_id, "got project")


def test_a_retried_capture_moves_one_progress_bar_and_library_warnings_reach_the_run_log(
    deployed: Deployed,
) -> None:
    deployed.edit(13)
    # As many 503s as the HTTP client makes attempts (one call, not parallel ones): the
    # capture task fails transiently once and Prefect retries it; the client's retry warnings
    # come from the labelvault.http logger.
    deployed.fake.fail_next("projects.info", 503, times=4)
    run_id = deployed.run("create_version", "create-version", {"project_id": deployed.project_id})
    run = deployed.wait(run_id, timeout=240)
    assert run["state_type"] == "COMPLETED", log_tail(deployed.worker_log, 60)
    captures = deployed.api.post(
        "/task_runs/filter",
        json={
            "flow_runs": {"id": {"any_": [run_id]}},
            "task_runs": {"name": {"like_": "capture-version"}},
        },
    ).json()
    assert [task["run_count"] for task in captures] == [2]
    progress = [a for a in run_artifacts(deployed, run_id) if a["type"] == "progress"]
    assert [artifact["data"] for artifact in progress] == [100.0]
    line = wait_for_log(deployed, run_id, "answered 503")
    assert line.startswith("labelvault.http: ")
    assert "projects.info" in line
