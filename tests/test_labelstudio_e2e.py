"""End to end: an annotation made in a real Label Studio becomes a new version.

Label Studio's webhook → the bridge → a ``labelvault.project.changed`` event on a real Prefect
server → the ``version-on-change`` deployment run by a process worker → a version in the store.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from devstack.process import free_port, log_tail, stop_process, wait_until
from labelvault.catalog import Catalog
from labelvault.models import ProjectRef
from labelvault.platforms.base import instance_from_url
from labelvault.storage import LocalStore
from labelvault.vault import Vault
from tests.servers.labelstudio import LabelStudio, ProjectFactory
from tests.servers.prefect import PrefectServer

pytestmark = [pytest.mark.labelstudio, pytest.mark.prefect_server]

LABELVAULT = (sys.executable, "-m", "labelvault")

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/><Label value="Bike"/>
  </RectangleLabels>
</View>"""


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_annotation_in_label_studio_makes_a_new_version(
    prefect_server: PrefectServer,
    labelstudio_server: LabelStudio,
    labelstudio_project: ProjectFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    ls = labelstudio_server
    project_id = labelstudio_project(label_config=CONFIG)
    with ls.client() as client:
        imported = client.post(
            f"/api/projects/{project_id}/import",
            json=[{"image": f"http://media.invalid/{n}.jpg"} for n in range(3)],
        )
        imported.raise_for_status()
        task_id = client.get("/api/tasks", params={"project": project_id}).json()["tasks"][0]["id"]

    store_path = tmp_path_factory.mktemp("ls-e2e-store")
    prefect_server.setup_labelvault(
        {
            "LABELVAULT_LABELSTUDIO_URL": ls.base_url,
            "LABELVAULT_LABELSTUDIO_TOKEN": ls.token,
            "LABELVAULT_STORE_URL": str(store_path),
        }
    )
    worker_log = prefect_server.start_worker("labelvault")
    ref = ProjectRef(
        platform="labelstudio", instance=instance_from_url(ls.base_url), project_id=str(project_id)
    )
    catalog = Catalog(LocalStore(store_path))
    secret = secrets.token_urlsafe(24)
    port = free_port()
    cli_env = {
        **prefect_server.env,
        "LABELVAULT_WEBHOOK_SECRET": secret,
        "LABELVAULT_LABELSTUDIO_URL": ls.base_url,
        "LABELVAULT_LABELSTUDIO_TOKEN": ls.token,
    }
    bridge_log = tmp_path_factory.mktemp("bridge") / "bridge.log"
    with bridge_log.open("wb") as handle:
        bridge_process = subprocess.Popen(
            [*LABELVAULT, "webhooks", "serve", "--port", str(port)],
            env=cli_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    bridge = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _answers(f"{bridge}/health"),
            timeout=60,
            what="labelvault webhooks serve",
            process=bridge_process,
            log=bridge_log,
        )
        registered = subprocess.run(
            [
                *LABELVAULT,
                "--platform",
                "labelstudio",
                "webhooks",
                "register",
                str(project_id),
                bridge,
            ],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert registered.returncode == 0, registered.stderr
        assert ls.token not in registered.stdout + registered.stderr
        assert secret not in registered.stdout + registered.stderr
        with httpx.Client(base_url=bridge) as unsigned:
            body = {"project": {"id": project_id}}
            refused = unsigned.post("/webhooks/labelstudio/labelstudio", json=body)
            assert refused.status_code == 401
        with ls.client() as client:
            created = client.post(
                f"/api/tasks/{task_id}/annotations/",
                json={
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "image",
                            "type": "rectanglelabels",
                            "value": {
                                "x": 10.5,
                                "y": 20.25,
                                "width": 30.125,
                                "height": 15.0,
                                "rotation": 0,
                                "rectanglelabels": ["Car"],
                            },
                        }
                    ]
                },
            )
            created.raise_for_status()

        deadline = time.monotonic() + 240
        latest = None
        while time.monotonic() < deadline and latest is None:
            latest = catalog.latest(ref)
            time.sleep(1.0)
        assert latest is not None, f"no version was made\n{log_tail(worker_log, 80)}"
        counts = (
            Vault(LocalStore(store_path))
            .query(
                ref,
                "SELECT kind, class_name, count(*) AS n FROM annotations GROUP BY ALL",
                latest.number,
            )
            .to_pylist()
        )
        assert counts == [{"kind": "annotation", "class_name": "Car", "n": 1}]
        assert latest.title == "on change"
        # The version is visible once committed; the run reports COMPLETED a moment later.
        wanted = f"labelvault.project.labelstudio.{project_id}"
        runs: list[dict[str, Any]] = []

        def run_completed() -> bool:
            with prefect_server.api() as api:
                deployment = api.get("/deployments/name/version_on_change/version-on-change").json()
                runs[:] = api.post(
                    "/flow_runs/filter",
                    json={"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}},
                ).json()
            finished = [r for r in runs if r["parameters"]["resource_id"] == wanted]
            return any(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in finished)

        wait_until(run_completed, timeout=120, what="the version-on-change run", interval=1.0)
        assert any(
            run["parameters"]["resource_id"] == wanted and run["state_type"] == "COMPLETED"
            for run in runs
        ), [(run["parameters"], run["state_type"]) for run in runs]
    finally:
        stop_process(bridge_process)
        prefect_server.stop_workers()
