"""``labelvault restore`` against fake Supervisely servers: into another server, name clashes,
a refused token, a wrong server URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from labelvault.cli import app
from labelvault.platforms.base import instance_from_url
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project


@dataclass
class Servers:
    source: FakeSupervisely
    target: FakeSupervisely
    rich: RichProject
    source_url: str
    target_url: str
    store: Path

    @property
    def project(self) -> str:
        return str(self.rich.project_id)

    def run(self, *args: str, code: int = 0, **env: str | None) -> Result:
        values: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LABELVAULT_")}
        values |= {
            "LABELVAULT_STORE_URL": str(self.store),
            "LABELVAULT_SUPERVISELY_URL": self.source_url,
            "LABELVAULT_SUPERVISELY_TOKEN": self.source.token,
            "COLUMNS": "200",
        }
        values |= env
        result = CliRunner().invoke(app, list(args), env=values)
        assert result.exit_code == code, (result.output, result.exception)
        for secret in (self.source.token, self.target.token):
            assert secret not in result.output
        assert "Traceback" not in result.output
        if code:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    source, target = FakeSupervisely(default_per_page=7), FakeSupervisely(default_per_page=7)
    rich = generate_rich_project(source, images_per_dataset=2)
    # media is referenced, never copied: the target instance must hold the same hashes and links
    target.hashes.update(source.hashes)
    target.links.update(source.links)
    with source.serve() as source_url, target.serve() as target_url:
        yield Servers(source, target, rich, source_url, target_url, tmp_path / "store")


def projects_named(fake: FakeSupervisely, name: str) -> list[int]:
    return [pid for pid, p in fake.projects.items() if p["name"] == name]


def test_restore_into_another_server(servers: Servers) -> None:
    servers.run("create", servers.project)
    before = len(servers.source.projects)
    out = servers.run(
        "restore",
        servers.project,
        "1",
        "--to-server-url",
        servers.target_url,
        "--to-token",
        servers.target.token,
        "--workspace",
        str(servers.target.workspace_id),
        "--name",
        "moved",
    ).stdout
    assert "restored version 1 as project" in out
    assert len(servers.source.projects) == before  # nothing on the source server
    (moved,) = projects_named(servers.target, "moved")
    assert len([i for i in servers.target.images.values() if i["projectId"] == moved]) == 12


def test_restore_into_another_server_from_the_environment(servers: Servers) -> None:
    servers.run("create", servers.project)
    servers.run(
        "restore",
        servers.project,
        "1",
        "--workspace",
        str(servers.target.workspace_id),
        LABELVAULT_SUPERVISELY_TO_URL=servers.target_url,
        LABELVAULT_SUPERVISELY_TO_TOKEN=servers.target.token,
    )
    assert projects_named(servers.target, "Проект λ — rich 🚀, from ver. 1")


def test_a_target_server_needs_its_token(servers: Servers) -> None:
    servers.run("create", servers.project)
    line = servers.run(
        "restore", servers.project, "1", "--to-server-url", servers.target_url, code=2
    ).stderr
    assert "no token for the target server" in line
    assert "--to-token" in line
    assert "LABELVAULT_SUPERVISELY_TO_TOKEN" in line


def test_a_taken_name_is_refused_unless_allowed(servers: Servers) -> None:
    servers.run("create", servers.project)
    servers.source.create_project(name="taken", workspace_id=servers.source.workspace_id)
    line = servers.run("restore", servers.project, "1", "--name", "taken", code=2).stderr
    assert "already has a project named 'taken'" in line
    assert "--allow-duplicate-name" in line
    assert "--restore-id" not in line
    assert len(projects_named(servers.source, "taken")) == 1
    servers.run("restore", servers.project, "1", "--name", "taken", "--allow-duplicate-name")
    assert projects_named(servers.source, "taken_001")


def test_a_refused_token_offers_no_restore_id(servers: Servers) -> None:
    servers.run("create", servers.project)
    line = servers.run(
        "restore", servers.project, "1", code=1, LABELVAULT_SUPERVISELY_TOKEN="wrong-token"
    ).stderr
    assert "check the token" in line
    assert "--restore-id" not in line


def test_a_wrong_server_url_lists_the_servers_the_store_knows(servers: Servers) -> None:
    servers.run("create", servers.project)
    line = servers.run(
        "--server-url", servers.target_url, "restore", servers.project, "1", code=1
    ).stderr
    assert f"no versions exist for supervisely project {servers.project} on server" in line
    assert instance_from_url(servers.target_url) in line
    assert f"it has supervisely versions from {instance_from_url(servers.source_url)}" in line
    assert "has no version 1" not in line
