"""``--json``: every command answers with one JSON document on stdout, on the fake
Supervisely server; the human output is what ``tests/test_cli.py`` checks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labelvault.cli import app
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project
from tests.test_cli import move_one_figure


@dataclass
class Json:
    fake: FakeSupervisely
    rich: RichProject
    url: str
    store: Path

    @property
    def project(self) -> str:
        return str(self.rich.project_id)

    def __call__(self, *args: str) -> Any:
        """``labelvault --json ARGS``: exit code 0, nothing but JSON on stdout."""
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LABELVAULT_")}
        env |= {
            "LABELVAULT_STORE_URL": str(self.store),
            "LABELVAULT_SUPERVISELY_URL": self.url,
            "LABELVAULT_SUPERVISELY_TOKEN": self.fake.token,
        }
        result = CliRunner().invoke(app, ["--json", *args], env=env)
        assert result.exit_code == 0, (result.output, result.exception)
        assert self.fake.token not in result.output
        return json.loads(result.stdout)


@pytest.fixture
def lv(tmp_path: Path) -> Iterator[Json]:
    fake = FakeSupervisely(default_per_page=7)
    rich = generate_rich_project(fake, images_per_dataset=2)
    with fake.serve() as url:
        yield Json(fake=fake, rich=rich, url=url, store=tmp_path / "store")


def test_create_versions_show_update_and_projects(lv: Json) -> None:
    created = lv("create", lv.project, "--title", "first", "--tag", "gold")
    assert created["created"] is True
    assert created["version"] == 1
    assert created["project_id"] == lv.project
    assert len(created["content_hash"]) == 64
    assert created["rows"]["items"] == 12

    again = lv("create", lv.project)
    assert again["created"] is False
    assert again["version"] == 1
    assert again["content_hash"] == created["content_hash"]
    assert "no change since version 1" in again["reason"]

    listed = lv("versions", lv.project)
    assert [v["number"] for v in listed["versions"]] == [1]
    first = listed["versions"][0]
    assert first["id"] == created["version_id"]
    assert first["title"] == "first"
    assert first["tags"] == ["gold"]
    assert first["rows"]["items"] == 12
    assert "commit_token" not in first

    shown = lv("show", lv.project, created["version_id"])
    assert shown["number"] == 1
    assert shown["content_hash"] == created["content_hash"]
    assert shown["tables"]["items"]["rows"] == 12
    assert shown["tables"]["items"]["chunks"] >= 1
    assert shown["data_bytes"] > 0

    updated = lv("update", lv.project, "latest", "--title", "golden", "--clear-tags")
    assert (updated["number"], updated["title"], updated["tags"]) == (1, "golden", [])
    assert updated["metadata_updated_at"] is not None

    projects = lv("projects")
    assert projects["projects"] == [
        {
            "project_id": lv.project,
            "versions": 1,
            "latest": 1,
            "created_at": first["created_at"],
        }
    ]


def test_no_versions_is_an_empty_list(lv: Json) -> None:
    assert lv("versions", "424242")["versions"] == []


def test_diff_query_and_expire(lv: Json) -> None:
    lv("create", lv.project)
    move_one_figure(lv.fake, lv.rich.project_id)
    second = lv("create", lv.project)
    assert second["version"] == 2

    changed = lv("diff", lv.project, "1", "2")
    assert changed["old"]["version"] == 1
    assert changed["new"]["version"] == 2
    assert changed["new"]["content_hash"] == second["content_hash"]
    assert changed["same_content"] is False
    annotations = changed["tables"]["annotations"]
    assert (annotations["added"], annotations["removed"], annotations["changed"]) == (0, 0, 1)
    assert changed["classes"]["cls rectangle ✓"] == {"added": 0, "removed": 0, "changed": 1}

    same = lv("diff", lv.project, "2")
    assert same["same_content"] is True
    assert same["empty"] is True

    rows = lv("query", lv.project, "SELECT count(*) AS n FROM items")
    assert rows == [{"n": 12}]

    dry = lv("expire", lv.project, "--keep-last", "1")
    assert dry["dry_run"] is True
    assert dry["expired"] == [1]
    assert dry["kept"] == [2]
    assert dry["versions_deleted"] == [1]  # would be deleted
    applied = lv("expire", lv.project, "--keep-last", "1", "--apply")
    assert applied["versions_deleted"] == [1]
    assert [v["number"] for v in lv("versions", lv.project)["versions"]] == [2]


def test_restore(lv: Json) -> None:
    created = lv("create", lv.project)
    restored = lv("restore", lv.project, "1", "--name", "copy", "--restore-id", "r-7")
    assert restored["version"] == 1
    assert restored["version_id"] == created["version_id"]
    assert restored["content_hash"] == created["content_hash"]
    assert restored["restore_id"] == "r-7"
    assert restored["project_name"] == "copy"
    assert restored["created"]["items"] == 12
    assert restored["resumed"] is False
    assert restored["skipped"] == []
    assert restored["failures"] == []

    copy = lv("create", restored["project_id"])
    assert copy["content_hash"] == created["content_hash"]

    resumed = lv("restore", lv.project, "1", "--restore-id", "r-7")
    assert resumed["resumed"] is True
    assert resumed["project_id"] == restored["project_id"]


def test_conflicting_output_flags_are_refused(lv: Json) -> None:
    lv("create", lv.project)
    env = {
        "LABELVAULT_STORE_URL": str(lv.store),
        "LABELVAULT_SUPERVISELY_URL": lv.url,
    }
    for args in (
        ["diff", lv.project, "1", "--markdown"],
        ["query", lv.project, "SELECT 1", "--format", "csv"],
    ):
        result = CliRunner().invoke(app, ["--json", *args], env=env)
        assert result.exit_code == 2, result.output
        assert json.loads(result.stdout)["exit_code"] == 2
        assert "not both" in result.stderr
