"""``labelvault preview`` and ``labelvault summary`` on the served fake Supervisely server, and
``expire`` taking previews with their versions."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from labelvault.cli import app
from labelvault.cli.boundary import EXIT_BAD_INPUT, EXIT_FAILED
from labelvault.preview import PREVIEW_WORKSPACE
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project
from tests.test_cli import move_one_figure


@dataclass
class Cli:
    fake: FakeSupervisely
    rich: RichProject
    url: str
    store: Path

    @property
    def project(self) -> str:
        return str(self.rich.project_id)

    def run(self, *args: str, token: bool = True) -> Result:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LABELVAULT_")}
        env |= {"LABELVAULT_STORE_URL": str(self.store), "LABELVAULT_SUPERVISELY_URL": self.url}
        if token:
            env["LABELVAULT_SUPERVISELY_TOKEN"] = self.fake.token
        result = CliRunner().invoke(app, list(args), env=env)
        assert self.fake.token not in result.output
        assert "Traceback" not in result.output
        return result

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))


@pytest.fixture
def lv(tmp_path: Path) -> Iterator[Cli]:
    fake = FakeSupervisely(default_per_page=7)
    rich = generate_rich_project(fake, images_per_dataset=2)
    with fake.serve() as url:
        cli = Cli(fake=fake, rich=rich, url=url, store=tmp_path / "store")
        cli.ok("create", cli.project, "--title", "first")
        move_one_figure(fake, rich.project_id)
        cli.ok("create", cli.project, "--title", "second")
        yield cli


def test_preview_reuse_overwrite_and_expire(lv: Cli) -> None:
    said = lv.ok("preview", lv.project, "1")
    assert "previewed: version 1 as project" in said
    first = lv.json("preview", lv.project, "1")
    assert first["created"] is False
    assert lv.fake.workspaces[int(first["workspace_id"])]["name"] == PREVIEW_WORKSPACE
    assert "already previewed" in lv.ok("preview", lv.project, "1")

    replaced = lv.json("preview", lv.project, "1", "--overwrite")
    assert replaced["created"] is True
    assert replaced["replaced"] == first["preview_project_id"]
    assert int(first["preview_project_id"]) not in lv.fake.projects

    dry = lv.json("expire", lv.project, "--keep-last", "1", "--no-keep-tagged")
    assert dry["previews"] == {"1": replaced["preview_project_id"]}
    assert "would delete their previews on the platform: project" in lv.ok(
        "expire", lv.project, "--keep-last", "1", "--no-keep-tagged"
    )
    assert int(replaced["preview_project_id"]) in lv.fake.projects

    refused = lv.run(
        "expire", lv.project, "--keep-last", "1", "--no-keep-tagged", "--apply", token=False
    )
    assert refused.exit_code == EXIT_BAD_INPUT
    assert len(refused.stderr.strip().splitlines()) == 1
    assert int(replaced["preview_project_id"]) in lv.fake.projects

    applied = lv.json("expire", lv.project, "--keep-last", "1", "--no-keep-tagged", "--apply")
    assert applied["versions_deleted"] == [1]
    assert int(replaced["preview_project_id"]) not in lv.fake.projects


def test_summary_prints_the_markdown_and_json(lv: Cli) -> None:
    markdown = lv.ok("summary", lv.project)
    assert markdown.startswith(f"# Version 2 of supervisely project {lv.project}")
    assert "## Items with the most annotations" in markdown
    assert "Changes against version 1" in markdown
    found = lv.json("summary", lv.project, "1", "--top", "2")
    assert found["version"] == 1
    assert found["diff"] is None
    assert len(found["largest_items"]) == 2
    assert sum(found["classes"].values()) == found["rows"]["annotations"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("preview", "{p}", "7"), "has no version 7"),
        (("summary", "{p}", "7"), "has no version 7"),
        (("preview", "{p}", "0"), "version numbers start at 1"),
    ],
)
def test_bad_input_is_one_line(lv: Cli, args: tuple[str, ...], says: str) -> None:
    result = lv.run(*(a.format(p=lv.project) for a in args))
    assert result.exit_code in (EXIT_BAD_INPUT, EXIT_FAILED)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert says in lines[0]


def test_a_team_without_rights_is_one_line(lv: Cli) -> None:
    lv.fake.fail_next(
        "workspaces.add",
        403,
        body={"error": "Permission denied", "details": {"message": "not a team admin"}},
    )
    result = lv.run("preview", lv.project, "2")
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert "may not create the previews workspace" in line
    assert not [p for p in lv.fake.projects.values() if "[preview]" in p["name"]]


def test_create_with_preview_previews_the_new_version(lv: Cli) -> None:
    move_one_figure(lv.fake, lv.rich.project_id)
    made = lv.json("create", lv.project, "--title", "third", "--preview")
    assert made["version"] == 3
    preview = made["preview"]
    assert preview["created"] is True
    assert int(preview["preview_project_id"]) in lv.fake.projects
    said = lv.ok("create", lv.project, "--preview")  # no change: the same version, same preview
    assert f"project {preview['preview_project_id']}" in said


def test_versions_and_show_name_the_preview(lv: Cli) -> None:
    made = lv.json("preview", lv.project, "1")
    listed = lv.json("versions", lv.project)["versions"]
    assert [v["preview_project_id"] for v in listed] == [made["preview_project_id"], None]
    assert f"project {made['preview_project_id']}" in lv.ok("show", lv.project, "1")
    assert "preview" not in lv.ok("show", lv.project, "2")
