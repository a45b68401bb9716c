"""The ``labelvault`` command line against the fake Supervisely server on 127.0.0.1.

Every command's happy path, and the errors a user meets: unknown project or version, a bad
store URL, a missing or wrong token, an unreachable server. An error is one red line on stderr,
exit code 1 (2 for configuration errors), no traceback, and never the token.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from devstack.process import free_port
from labelvault.cli import app
from labelvault.models import ProjectRef
from labelvault.platforms.base import instance_from_url
from labelvault.storage import LocalStore
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, RichProject, generate_rich_project

HASH = re.compile(r"content hash\s+([0-9a-f]{64})")


@dataclass
class Cli:
    """Runs the CLI in-process with the fake server's URL and token in the environment."""

    fake: FakeSupervisely
    rich: RichProject
    url: str
    store: Path

    @property
    def project(self) -> str:
        return str(self.rich.project_id)

    @property
    def ref(self) -> ProjectRef:
        return ProjectRef(
            platform="supervisely", instance=instance_from_url(self.url), project_id=self.project
        )

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        values: dict[str, str | None] = {
            "LABELVAULT_STORE_URL": str(self.store),
            "LABELVAULT_SUPERVISELY_URL": self.url,
            "LABELVAULT_SUPERVISELY_TOKEN": self.fake.token,
            "COLUMNS": "200",
        }
        values.update(overrides)
        return values

    def run(self, *args: str, code: int = 0, **env: str | None) -> Result:
        """Invoke ``labelvault ARGS``; check the exit code and that no secret leaked."""
        result = CliRunner().invoke(app, list(args), env=self.env(**env))
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
        assert self.fake.token not in result.output
        assert "Traceback" not in result.output
        if code != 0:
            assert isinstance(result.exception, SystemExit), result.exception
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("error: ")
            assert result.stdout == ""
        return result

    def capture(self, *args: str, project: str | None = None) -> str:
        """Capture and return the content hash it printed."""
        result = self.run("create", project or self.project, *args)
        found = HASH.search(result.stdout)
        assert found is not None, result.stdout
        return found.group(1)

    @contextmanager
    def vault(self) -> Iterator[Vault]:
        store = LocalStore(self.store)
        try:
            yield Vault(store)
        finally:
            store.close()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for name in list(os.environ):
        if name.startswith("LABELVAULT_"):
            monkeypatch.delenv(name)
    fake = FakeSupervisely(default_per_page=7)
    rich = generate_rich_project(fake, images_per_dataset=3)
    with fake.serve() as url:
        yield Cli(fake=fake, rich=rich, url=url, store=tmp_path / "store")


def move_one_figure(fake: FakeSupervisely, project_id: int) -> int:
    """Move one rectangle by a pixel, as a labeler would; returns its id."""
    with fake.lock:
        for figure in sorted(fake.figures.values(), key=lambda f: f["id"]):
            if figure["projectId"] == project_id and figure["geometryType"] == "rectangle":
                exterior = figure["geometry"]["points"]["exterior"]
                figure["geometry"]["points"]["exterior"] = [[x + 1, y + 1] for x, y in exterior]
                figure["updatedAt"] = fake.tick()
                fake.touch_project(project_id)
                return int(figure["id"])
    raise AssertionError("no rectangle in the project")


def project_figures(fake: FakeSupervisely, project_id: int) -> int:
    return sum(1 for f in fake.figures.values() if f["projectId"] == project_id)


# --- capture, versions, show, update ------------------------------------------------------------


def test_capture_creates_a_version_then_reports_no_change(cli: Cli) -> None:
    first = cli.run("create", cli.project, "--title", "first")
    assert "created version 1 of supervisely project" in first.stdout
    assert re.search(r"items\s+18\b", first.stdout)
    assert re.search(
        r"annotations\s+" + str(project_figures(cli.fake, cli.rich.project_id)), first.stdout
    )
    assert "written" in first.stdout
    assert "(100.0%)" in first.stdout

    again = cli.run("capture", cli.project)  # the other name of create
    assert "no change since version 1" in again.stdout
    assert "written" not in again.stdout
    assert HASH.search(again.stdout) is not None
    assert HASH.search(again.stdout).group(1) == HASH.search(first.stdout).group(1)  # type: ignore[union-attr]


def test_versions_lists_title_tags_and_rows(cli: Cli) -> None:
    cli.capture("--title", "baseline", "--tag", "gold", "--tag", "q1")
    move_one_figure(cli.fake, cli.rich.project_id)
    cli.capture("--title", "reviewed")

    out = cli.run("versions", cli.project).stdout
    rows = [line for line in out.splitlines() if re.match(r"^│\s*\d", line)]
    assert len(rows) == 2
    assert "baseline" in rows[0]
    assert "gold, q1" in rows[0]
    assert "reviewed" in rows[1]
    with cli.vault() as vault:
        versions = vault.catalog.list(cli.ref)
    assert [v.id in out for v in versions] == [True, True]


def test_versions_of_a_project_without_versions(cli: Cli) -> None:
    out = cli.run("versions", "424242").stdout
    assert "no versions" in out
    assert "labelvault create 424242" in out


def test_show_by_number_id_and_latest(cli: Cli) -> None:
    content_hash = cli.capture("--title", "one")
    by_number = cli.run("show", cli.project, "1").stdout
    assert content_hash in by_number
    assert re.search(r"annotations\s+\d+\s+\d+\s+[\d.]+ [KM]?i?B", by_number)
    version_id = re.search(r"id\s+([0-9a-f-]{36})", by_number).group(1)  # type: ignore[union-attr]
    assert content_hash in cli.run("show", cli.project, version_id).stdout
    assert content_hash in cli.run("show", cli.project, "latest").stdout


def test_update_title_tags_and_clear(cli: Cli) -> None:
    cli.capture()
    out = cli.run("update", cli.project, "1", "--title", "golden", "--tag", "a", "--tag", "b")
    assert "updated version 1" in out.stdout
    shown = cli.run("show", cli.project, "1").stdout
    assert re.search(r"title\s+golden", shown)
    assert re.search(r"tags\s+a, b", shown)

    cli.run("update", cli.project, "1", "--clear-tags")
    shown = cli.run("show", cli.project, "1").stdout
    assert re.search(r"title\s+golden", shown)
    assert "a, b" not in shown
    with cli.vault() as vault:
        assert vault.version(cli.ref, 1).tags == ()
        assert vault.version(cli.ref, 1).title == "golden"

    nothing = cli.run("update", cli.project, "1", code=2)
    assert "nothing to change" in nothing.stderr


def test_projects_lists_the_server_projects_with_versions(cli: Cli) -> None:
    cli.capture()
    out = cli.run("projects").stdout
    assert re.search(rf"^\s*│?\s*{cli.project}\b.*\b1\b", out, re.MULTILINE), out


# --- diff ---------------------------------------------------------------------------------------


def test_diff_counts_one_changed_annotation(cli: Cli) -> None:
    cli.capture()
    move_one_figure(cli.fake, cli.rich.project_id)
    cli.capture()

    out = cli.run("diff", cli.project, "1", "2").stdout
    assert "Changes from version 1 to version 2" in out
    annotations = next(line for line in out.splitlines() if "annotations " in line and "│" in line)
    cells = [cell.strip() for cell in annotations.strip("│ ").split("│")]
    assert cells[:6] == ["annotations", cells[1], cells[1], "0", "0", "1"], cells
    assert "cls rectangle ✓" in out

    markdown = cli.run("diff", cli.project, "1", "--markdown").stdout
    assert markdown.startswith("## Changes from version 1 to version 2")
    assert "| annotations |" in markdown

    same = cli.run("diff", cli.project, "2", "2").stdout
    assert "same content" in same
    assert "no differences" in same


# --- query --------------------------------------------------------------------------------------


SQL = "SELECT class_name, count(*) AS n FROM annotations GROUP BY 1 ORDER BY 1"


def test_query_as_table_csv_and_json(cli: Cli) -> None:
    cli.capture()
    figures = project_figures(cli.fake, cli.rich.project_id)

    table = cli.run("query", cli.project, SQL).stdout
    assert "class_name" in table
    assert "cls rectangle ✓" in table
    assert "rows" in table

    rows = list(
        csv.DictReader(io.StringIO(cli.run("query", cli.project, SQL, "--format", "csv").stdout))
    )
    assert sum(int(row["n"]) for row in rows) == figures
    assert {row["class_name"] for row in rows} >= {"cls rectangle ✓", "anything"}

    parsed = json.loads(
        cli.run("query", cli.project, SQL, "--format", "json", "--version", "1").stdout
    )
    assert sum(row["n"] for row in parsed) == figures

    empty = cli.run("query", cli.project, "SELECT key FROM items WHERE false", "--format", "json")
    assert json.loads(empty.stdout) == []


def test_query_table_output_is_capped(cli: Cli) -> None:
    cli.capture()
    out = cli.run("query", cli.project, "SELECT key FROM items", "--max-rows", "5").stdout
    assert "5 rows shown, 13 more" in out


def test_query_with_bad_sql_fails_cleanly(cli: Cli) -> None:
    cli.capture()
    result = cli.run("query", cli.project, "SELECT nope FROM annotations", code=1)
    assert "the query failed" in result.stderr
    assert "annotations" in result.stderr


# --- restore ------------------------------------------------------------------------------------


def test_restore_round_trip_gives_the_same_content_hash(cli: Cli) -> None:
    original = cli.capture()
    out = cli.run("restore", cli.project, "1", "--name", "copy of the project").stdout
    found = re.search(r"restored version 1 as project (\d+) \('copy of the project'\)", out)
    assert found is not None, out
    restored = found.group(1)
    assert "skipped" not in out
    assert "failed" not in out
    assert cli.capture(project=restored) == original


def test_restore_in_partitions_gives_the_same_content_hash(cli: Cli) -> None:
    original = cli.capture()
    out = cli.run("restore", cli.project, "1", "--name", "in parts", "--parallel", "3").stdout
    found = re.search(r"restored version 1 as project (\d+) \('in parts'\)", out)
    assert found is not None, out
    assert cli.capture(project=found.group(1)) == original
    refused = cli.run("restore", cli.project, "1", "--parallel", "0", code=2)
    assert "--parallel" in refused.stderr


def test_restore_only_some_datasets_and_classes(cli: Cli) -> None:
    cli.capture()
    out = cli.run(
        "restore", cli.project, "latest", "--dataset", "city", "--class", "cls rectangle ✓"
    ).stdout
    restored = int(re.search(r"as project (\d+)", out).group(1))  # type: ignore[union-attr]
    fake = cli.fake
    datasets = {d["id"]: d for d in fake.datasets.values() if d["projectId"] == restored}
    assert sorted(d["name"] for d in datasets.values()) == sorted(["train", "city", "night 🌙"])
    with_items = {
        datasets[i["datasetId"]]["name"] for i in fake.images.values() if i["projectId"] == restored
    }
    assert with_items == {"city", "night 🌙"}
    images = [i for i in fake.images.values() if i["projectId"] == restored]
    assert len(images) == 6
    classes = {c["id"]: c["title"] for c in fake.metas[restored]["classes"]}
    figures = [f for f in fake.figures.values() if f["projectId"] == restored]
    assert figures
    assert {classes[f["classId"]] for f in figures} == {"cls rectangle ✓"}
    assert "skipped" not in out
    assert re.search(r"left out by --dataset/--class: .*items 12\b", out)


def test_restore_of_an_unknown_class_names_the_classes(cli: Cli) -> None:
    cli.capture()
    result = cli.run("restore", cli.project, "1", "--class", "zebra", code=2)
    assert "no class 'zebra'" in result.stderr
    assert "cls rectangle ✓" in result.stderr


def test_restore_of_an_unknown_dataset_names_the_datasets(cli: Cli) -> None:
    cli.capture()
    result = cli.run("restore", cli.project, "1", "--dataset", "nope", code=2)
    assert "no dataset 'nope'" in result.stderr
    assert "train/city" in result.stderr


def test_restore_resumes_with_the_same_restore_id(cli: Cli) -> None:
    cli.capture()
    first = cli.run("restore", cli.project, "1", "--restore-id", "r-1").stdout
    again = cli.run("restore", cli.project, "1", "--restore-id", "r-1").stdout
    project = re.search(r"as project (\d+)", first).group(1)  # type: ignore[union-attr]
    assert f"finished restoring version 1 as project {project} " in again
    assert sum(1 for p in cli.fake.projects.values() if p["name"].endswith("from ver. 1")) == 1


# --- expire -------------------------------------------------------------------------------------


def test_expire_is_a_dry_run_unless_applied(cli: Cli) -> None:
    cli.capture("--tag", "keep-me")
    for _ in range(2):
        move_one_figure(cli.fake, cli.rich.project_id)
        cli.capture()

    dry = cli.run("expire", cli.project, "--keep-last", "1").stdout
    assert "would delete version 2 and" in dry
    assert "dry run" in dry
    assert re.search(r"│ 1 .*keep.*tagged keep-me", dry)
    with cli.vault() as vault:
        assert len(vault.catalog.list(cli.ref)) == 3

    untagged = cli.run("expire", cli.project, "--keep-last", "1", "--no-keep-tagged").stdout
    assert "would delete versions 1, 2 and" in untagged

    applied = cli.run("expire", cli.project, "--keep-last", "1", "--apply").stdout
    assert "deleted version 2 and" in applied
    assert "dry run" not in applied
    with cli.vault() as vault:
        assert [v.number for v in vault.catalog.list(cli.ref)] == [1, 3]
    assert cli.run("show", cli.project, "3").exit_code == 0


def test_expire_needs_a_rule(cli: Cli) -> None:
    result = cli.run("expire", cli.project, code=2)
    assert "--keep-last" in result.stderr


# --- errors -------------------------------------------------------------------------------------


def test_unknown_project(cli: Cli) -> None:
    result = cli.run("capture", "999999", code=1)
    assert "999999" in result.stderr
    assert "check the project id" in result.stderr


def test_unknown_version(cli: Cli) -> None:
    cli.capture()
    for command in (["show", cli.project, "7"], ["diff", cli.project, "1", "7"]):
        result = cli.run(*command, code=1)
        assert "has no version" in result.stderr
        assert f"labelvault versions {cli.project}" in result.stderr


def test_no_versions_yet(cli: Cli) -> None:
    result = cli.run("query", cli.project, SQL, code=1)
    assert "no versions yet" in result.stderr


def test_bad_store_url(cli: Cli) -> None:
    result = cli.run("--store", "ftp://somewhere/x", "versions", cli.project, code=2)
    assert "unknown store URL scheme 'ftp'" in result.stderr


def test_missing_token(cli: Cli) -> None:
    result = cli.run("capture", cli.project, code=2, LABELVAULT_SUPERVISELY_TOKEN=None)
    assert "LABELVAULT_SUPERVISELY_TOKEN" in result.stderr
    assert "--token" in result.stderr


def test_missing_server_url_even_without_a_token(cli: Cli) -> None:
    result = cli.run(
        "versions", cli.project, code=2, LABELVAULT_SUPERVISELY_URL=None,
        LABELVAULT_SUPERVISELY_TOKEN=None,
    )  # fmt: skip
    assert "LABELVAULT_SUPERVISELY_URL" in result.stderr
    assert "--server-url" in result.stderr


def test_read_commands_need_no_token(cli: Cli) -> None:
    cli.capture()
    out = cli.run("versions", cli.project, LABELVAULT_SUPERVISELY_TOKEN=None).stdout
    assert "versions of supervisely:" in out


def test_wrong_token_is_never_printed(cli: Cli) -> None:
    cli.fake.echo_token_in_errors = True  # a server that echoes the token back in errors
    wrong = "wrong-token-" + "x" * 40
    result = CliRunner().invoke(
        app,
        ["--token", wrong, "capture", cli.project],
        env=cli.env(LABELVAULT_SUPERVISELY_TOKEN=None),
    )
    assert result.exit_code == 1, result.output
    assert wrong not in result.output
    assert "Traceback" not in result.output
    assert "check the token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_platform(cli: Cli) -> None:
    result = cli.run("--platform", "encord", "versions", cli.project, code=2)
    assert "unknown platform 'encord'" in result.stderr
    assert "supervisely" in result.stderr


def test_unreachable_server(cli: Cli) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = cli.run(
        "--server-url", down, "capture", cli.project, code=1,
        LABELVAULT_HTTP_CONNECTION_RETRIES="0", LABELVAULT_HTTP_MAX_RETRIES="0",
    )  # fmt: skip
    assert "check that the server is reachable" in result.stderr


def test_python_dash_m_labelvault(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELVAULT_")}
    done = subprocess.run(
        [sys.executable, "-m", "labelvault", "--store", "ftp://x", "versions", "1"],
        env={**env, "LABELVAULT_SUPERVISELY_URL": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.strip().startswith("error: unknown store URL scheme 'ftp'")
    assert len(done.stderr.strip().splitlines()) == 1


def test_titles_are_printed_verbatim(cli: Cli) -> None:
    title = "[bold]draft[/] :smile: [/oops]"
    cli.capture("--title", title)
    assert title in cli.run("versions", cli.project).stdout
    assert title in cli.run("show", cli.project, "1").stdout


def test_other_platforms_have_their_own_history(cli: Cli) -> None:
    cli.capture()
    out = cli.run(
        "--platform", "labelstudio", "versions", cli.project,
        LABELVAULT_LABELSTUDIO_URL=cli.url, LABELVAULT_SUPERVISELY_TOKEN=None,
    ).stdout  # fmt: skip
    assert "no versions of labelstudio:127.0.0.1:" in out


def test_version_flag() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"labelvault \S+\n", result.stdout)


def test_webhooks_register_needs_a_platform_with_webhooks(cli: Cli) -> None:
    result = cli.run(
        "webhooks",
        "register",
        cli.project,
        "http://127.0.0.1:9",
        code=2,
        LABELVAULT_WEBHOOK_SECRET="s" * 24,
    )
    assert "supervisely has no webhooks labelvault can register" in result.stderr


def test_webhooks_serve_refuses_a_short_secret(cli: Cli) -> None:
    result = cli.run(
        "webhooks",
        "serve",
        "--prefect-api-url",
        "http://127.0.0.1:9/api",
        "--secret",
        "short",
        code=2,
    )
    assert "at least 16 characters" in result.stderr


def test_create_in_parallel_gives_the_version_a_serial_create_gives(
    cli: Cli, tmp_path: Path
) -> None:
    serial = cli.capture()
    split = cli.run(
        "create", cli.project, "--parallel", "3", LABELVAULT_STORE_URL=str(tmp_path / "split")
    )
    found = HASH.search(split.stdout)
    assert found is not None, split.stdout
    assert found.group(1) == serial
    assert "created version 1" in split.stdout

    refused = cli.run("create", cli.project, "--parallel", "0", code=2)
    assert "--parallel" in refused.stderr
