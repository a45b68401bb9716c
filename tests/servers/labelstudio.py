"""Session fixtures: a real Label Studio server (started by :mod:`devstack.labelstudio`), and
projects on it that are deleted after each test."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.labelstudio import LabelStudio, start_server_retrying

__all__ = ["LabelStudio", "ProjectFactory"]


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    """A Label Studio server for the whole session, with generated credentials."""
    server = start_server_retrying(tmp_path_factory.mktemp("labelstudio"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def labelstudio_second_server(
    tmp_path_factory: pytest.TempPathFactory, labelstudio_server: LabelStudio
) -> Iterator[LabelStudio]:
    """Another, independent Label Studio server: a restore target that has none of the first
    server's users except its owner (same email, other password and token)."""
    server = start_server_retrying(
        tmp_path_factory.mktemp("labelstudio-second"), username=labelstudio_server.username
    )
    try:
        yield server
    finally:
        server.stop()


ProjectFactory = Callable[..., int]


def _project_factory(
    request: pytest.FixtureRequest, server: LabelStudio
) -> Iterator[ProjectFactory]:
    if request.node.get_closest_marker("labelstudio") is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses Label Studio without the marker")
    created: list[int] = []

    def create(label_config: str = "<View></View>", title: str | None = None, **fields: Any) -> int:
        with server.client() as client:
            response = client.post(
                "/api/projects",
                json={
                    "title": title or f"test {secrets.token_hex(3)}",
                    "label_config": label_config,
                    **fields,
                },
            )
            response.raise_for_status()
            project_id = int(response.json()["id"])
        created.append(project_id)
        return project_id

    yield create
    with server.client() as client:
        for project_id in created:
            client.delete(f"/api/projects/{project_id}/")


@pytest.fixture
def labelstudio_project(
    request: pytest.FixtureRequest, labelstudio_server: LabelStudio
) -> Iterator[ProjectFactory]:
    """Create fresh projects on the session server; they are deleted after the test."""
    yield from _project_factory(request, labelstudio_server)


@pytest.fixture
def labelstudio_cleanup(labelstudio_server: LabelStudio) -> Iterator[list[int]]:
    """Project ids (on the session server) to delete after the test, e.g. restore targets."""
    ids: list[int] = []
    yield ids
    with labelstudio_server.client() as client:
        for project_id in ids:
            client.delete(f"/api/projects/{project_id}/")
