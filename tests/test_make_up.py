"""``make up`` / ``make down`` (``python -m devstack``): the local stack works end to end.

``up`` brings the stack up in a temporary state dir on free ports; an annotation made through
Label Studio's API becomes a new version (webhook → bridge → event → automation → worker), whose
flow run completes with a diff artifact; ``down`` stops every process ``up`` started, and what
they started in turn. Both are idempotent.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devstack.process import log_tail, wait_until
from devstack.stack import CREATE_TIME_TOLERANCE, NAMES, REPO, State
from labelvault.catalog import Catalog
from labelvault.models import ProjectRef
from labelvault.storage import LocalStore

pytestmark = [pytest.mark.labelstudio, pytest.mark.prefect_server, pytest.mark.timeout(1200)]

LABELVAULT = (sys.executable, "-m", "labelvault")
#: A cold machine installs Label Studio first (a few minutes on two busy cores).
UP_TIMEOUT = 900.0
VERSION_TIMEOUT = 240.0
RUN_TIMEOUT = 120.0


def devstack(
    state_dir: Path, *args: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python -m devstack ARGS`` from the repository, as ``make up`` runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args, "--state-dir", str(state_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stack_logs(state_dir: Path) -> str:
    """The tails of the stack's process logs, for a failure message."""
    state = State(state_dir)
    return "".join(f"\n--- {name}\n{log_tail(state.log_of(name))}" for name in NAMES)


def gone(pid: int, create_time: float) -> bool:
    """Whether the process is no more: no such pid, another process by now, or a zombie (which
    runs nothing; whoever adopted it reaps it)."""
    try:
        process = psutil.Process(pid)
        other = abs(process.create_time() - create_time) >= CREATE_TIME_TOLERANCE
        return other or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_make_up_versions_an_annotation_and_make_down_stops_everything(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    started = devstack(state_dir, "up", "--free-ports", timeout=UP_TIMEOUT)
    record: dict[str, Any] = {}
    down_done = False
    try:
        assert started.returncode == 0, f"{started.stdout}\n{started.stderr}"
        record = json.loads((state_dir / "stack.json").read_text())
        assert (state_dir / "stack.json").stat().st_mode & 0o077 == 0
        login = record["labelstudio_login"]
        for shown in (record["prefect_ui"], record["labelstudio_url"], record["bridge_url"]):
            assert shown.startswith("http://127.0.0.1:")
            assert shown in started.stdout
        assert login["password"] in started.stdout
        pids = {
            name: int((state_dir / "pids" / f"{name}.pid").read_text())
            for name in record["processes"]
        }
        assert set(pids) == {"prefect-server", "labelstudio", "worker", "bridge"}
        assert pids == {name: entry["pid"] for name, entry in record["processes"].items()}

        again = devstack(state_dir, "up", "--free-ports")
        assert again.returncode == 0, again.stderr + stack_logs(state_dir)
        assert "already up" in again.stdout

        with httpx.Client(base_url=record["prefect_ui"]) as ui:
            assert ui.get("/").status_code == 200, "the Prefect UI is not served"
        with httpx.Client(base_url=record["labelstudio_url"]) as ls_page:
            login_page = ls_page.get("/user/login/")
            assert login_page.status_code == 200

        ref = ProjectRef.model_validate(record["project_ref"])
        catalog = Catalog(LocalStore(Path(record["store"])))
        [baseline] = catalog.list(ref)
        with httpx.Client(
            base_url=record["labelstudio_url"],
            headers={"Authorization": f"Token {record['labelstudio_token']}"},
            timeout=60,
        ) as ls:
            tasks = ls.get("/api/tasks", params={"project": record["project_id"]}).json()["tasks"]
            unlabelled = next(task for task in tasks if not task["total_annotations"])
            created = ls.post(
                f"/api/tasks/{unlabelled['id']}/annotations/",
                json={
                    "result": [
                        {
                            "from_name": "sentiment",
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": ["Neutral"]},
                        }
                    ]
                },
            )
            created.raise_for_status()

        logs = Path(record["logs"])
        wait_until(
            lambda: len(catalog.list(ref)) > 1,
            timeout=VERSION_TIMEOUT,
            what="a version after the annotation",
            log=logs / "worker.log",
            interval=1.0,
        )
        latest = catalog.latest(ref)
        assert latest is not None
        assert latest.number == baseline.number + 1
        assert latest.title == "on change"

        # The CLI finds the same servers and store through `python -m devstack env`.
        exports = devstack(state_dir, "env")
        assert exports.returncode == 0, exports.stderr
        cli_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LABELVAULT_"))
        }
        for line in exports.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            cli_env[name] = shlex.split(value)[0]
        listed = subprocess.run(
            [*LABELVAULT, "--platform", "labelstudio", "--json", "versions", ref.project_id],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        numbers = [v["number"] for v in json.loads(listed.stdout)["versions"]]
        assert numbers == [baseline.number, latest.number]

        runs: list[dict[str, Any]] = []
        with httpx.Client(base_url=record["prefect_api_url"], timeout=30) as api:
            deployment = api.get("/deployments/name/version_on_change/version-on-change").json()
            # A Label Studio-only stack: the run forms offer its connection, not an absent one.
            form = api.get("/deployments/name/create_version/create-version").json()
            assert form["parameters"]["connection"] == "labelstudio"

            def run_finished() -> bool:
                runs[:] = api.post(
                    "/flow_runs/filter",
                    json={"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}},
                ).json()
                return any(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in runs)

            wait_until(
                run_finished,
                timeout=RUN_TIMEOUT,
                what="the version-on-change run",
                log=logs / "worker.log",
                interval=1.0,
            )
            assert [run["state_type"] for run in runs] == ["COMPLETED"], log_tail(
                logs / "worker.log", 60
            )
            artifacts = api.post(
                "/artifacts/filter",
                json={
                    "artifacts": {
                        "key": {"any_": [f"labelvault-labelstudio-{ref.project_id}-diff"]}
                    }
                },
            ).json()
            assert artifacts, "the new version has no diff artifact"
            assert (
                f"Version {latest.number} against version {baseline.number}"
                in (artifacts[0]["data"])
            )

        family = {
            (child.pid, child.create_time())
            for name in pids
            for child in psutil.Process(pids[name]).children(recursive=True)
        } | {(entry["pid"], entry["create_time"]) for entry in record["processes"].values()}

        stopped = devstack(state_dir, "down")
        down_done = True
        assert stopped.returncode == 0, f"{stopped.stdout}\n{stopped.stderr}"
        assert "the stack is down" in stopped.stdout
        left = [pid for pid, create_time in family if not gone(pid, create_time)]
        assert not left, f"still running after make down: {left}"
        assert not (state_dir / "pids").exists()

        again = devstack(state_dir, "down")
        assert again.returncode == 0
        assert "already down" in again.stdout
    finally:
        if not down_done:
            devstack(state_dir, "down")
