"""Captures killed with SIGKILL at random points, on a real Label Studio: no version becomes
visible, the next capture takes over the dead holder's lease at once and succeeds, and the
server keeps no labelvault views, exports or export files.

``LABELVAULT_LS_KILLS`` sets how many kills (5 in the suite; run 20 by hand).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.process import wait_until
from labelvault.catalog import Catalog, lease_key
from labelvault.models import ProjectRef, instance_from_url
from labelvault.storage import LocalStore
from labelvault.verify import verify_project
from tests.platforms.test_labelstudio_fidelity import _leftovers
from tests.servers.labelstudio import LabelStudio, ProjectFactory

pytestmark = pytest.mark.labelstudio

KILLS = int(os.environ.get("LABELVAULT_LS_KILLS", "5"))
TASKS = 300
LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels></View>'
)


def _command(project_id: int) -> list[str]:
    create = ["create", str(project_id)]
    return [sys.executable, "-m", "labelvault", "--platform", "labelstudio", *create]


def _run(env: dict[str, str], project_id: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(project_id), env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _project_with_tasks(server: LabelStudio, factory: ProjectFactory) -> int:
    project_id = factory(LABEL_CONFIG)
    tasks = [
        {
            "data": {"image": f"https://example.test/{n}.jpg", "n": n},
            "annotations": [
                {
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "image",
                            "type": "rectanglelabels",
                            "value": {
                                "x": n / 7,
                                "y": 1.5,
                                "width": 3.25,
                                "height": 4.0,
                                "rectanglelabels": ["Car"],
                            },
                        }
                    ]
                }
            ],
        }
        for n in range(TASKS)
    ]
    with server.client() as client:
        client.post(f"/api/projects/{project_id}/import", json=tasks).raise_for_status()
    return project_id


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("mode", ["list", "export"])
def test_killed_captures_leave_nothing_and_the_next_one_succeeds(
    labelstudio_server: LabelStudio,
    labelstudio_project: ProjectFactory,
    tmp_path: Path,
    mode: str,
) -> None:
    project_id = _project_with_tasks(labelstudio_server, labelstudio_project)
    before = _leftovers(labelstudio_server, str(project_id))
    store_path = tmp_path / "store"
    env = {
        **os.environ,
        "LABELVAULT_LABELSTUDIO_URL": labelstudio_server.base_url,
        "LABELVAULT_LABELSTUDIO_TOKEN": labelstudio_server.token,
        "LABELVAULT_STORE_URL": str(store_path),
        "LABELVAULT_LABELSTUDIO_CAPTURE_MODE": mode,
        # Small pages and ranges: many requests, so a kill lands anywhere in the capture.
        "LABELVAULT_LABELSTUDIO_PAGE_SIZE": "40",
        "LABELVAULT_LABELSTUDIO_EXPORT_PARTITION_TASKS": "100",
        "LABELVAULT_LABELSTUDIO_EXPORT_MIN_RANGE_TASKS": "50",
    }
    ref = ProjectRef(
        platform="labelstudio",
        instance=instance_from_url(labelstudio_server.base_url),
        project_id=str(project_id),
    )
    # How long an uninterrupted capture runs, into a scratch store: kills land within it.
    started = time.monotonic()
    scratch = _run({**env, "LABELVAULT_STORE_URL": str(tmp_path / "scratch")}, project_id)
    assert scratch.returncode == 0, scratch.stderr
    span = time.monotonic() - started

    rng = random.Random(20261202)
    killed_with_lease = 0
    committed_before_kill = 0
    for _ in range(KILLS):
        process = subprocess.Popen(
            _command(project_id), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # A random point of the capture, from the start of the process to its end.
        deadline = time.monotonic() + rng.uniform(0.05, 1.0) * span
        wait_until(
            lambda: time.monotonic() >= deadline or process.poll() is not None,  # noqa: B023
            timeout=span + 60,
            what="the kill point",
            interval=0.02,
        )
        if process.poll() is not None:  # it finished first: not a kill; start over clean
            process.wait()
            shutil.rmtree(store_path, ignore_errors=True)
            continue
        process.kill()
        process.wait()
        store = LocalStore(str(store_path))
        try:
            # The kill can land after the commit: then the version must be whole. Anything
            # else visible would be a half-done version.
            latest = Catalog(store).latest(ref)
            if latest is not None:
                report = verify_project(store, ref, latest.number, deep=True)
                assert [d for d in report.damage if d.kind != "lease"] == []
                committed_before_kill += 1
            killed_with_lease += store.exists(lease_key(ref))
        finally:
            store.close()
        if latest is not None:
            shutil.rmtree(store_path, ignore_errors=True)

    final = subprocess.run(
        [
            sys.executable,
            "-m",
            "labelvault",
            "--platform",
            "labelstudio",
            "create",
            str(project_id),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    assert "created version 1" in final.stdout
    assert "waiting" not in final.stderr.lower()
    views, exports, files = _leftovers(labelstudio_server, str(project_id))
    assert (views, exports) == before[:2]
    if mode == "list":  # reading the task listing makes no file on the server
        assert files == before[2]
    print(
        f"{mode}: {KILLS} kills, {killed_with_lease} left a lease, "
        f"{committed_before_kill} landed after the commit, leftovers {views, exports}"
    )
