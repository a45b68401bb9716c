"""The preview flow under the Prefect test harness, on the fake Supervisely server."""

from __future__ import annotations

import asyncio

from prefect.client.orchestration import get_client

from flows.create_version import create_version
from flows.preview_version import preview_version
from labelvault.preview import PREVIEW_WORKSPACE
from tasks.artifacts import artifact_key
from tests.flows.conftest import FlowWorld


async def _artifact_markdown(key: str) -> str:
    async with get_client() as client:
        found = await client.read_latest_artifacts()
    return next(str(a.data) for a in found if a.key == key)


def test_preview_flow_links_reuses_and_publishes_the_summary(world: FlowWorld) -> None:
    created = create_version(project_id=world.project_id, title="first")
    first = preview_version(project_id=world.project_id)
    assert first["created"] is True
    assert first["version"] == created["version"] == 1
    made = world.fake.projects[int(first["preview_project_id"])]
    assert world.fake.workspaces[made["workspaceId"]]["name"] == PREVIEW_WORKSPACE
    assert world.catalog().preview(world.ref(), 1) is not None

    again = preview_version(project_id=world.project_id, version=1)
    assert again["created"] is False
    assert again["preview_project_id"] == first["preview_project_id"]

    replaced = preview_version(project_id=world.project_id, version=1, overwrite=True)
    assert replaced["replaced"] == first["preview_project_id"]
    assert int(first["preview_project_id"]) not in world.fake.projects

    markdown = asyncio.run(
        _artifact_markdown(artifact_key("labelvault", "supervisely", world.project_id, "preview"))
    )
    assert "# Version 1 of supervisely project" in markdown
    assert "## Classes" in markdown
