"""``labelvault versions`` on narrow consoles: the number, title and counts always show."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelvault.cli import app
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project

TITLE = "a fairly long title for the first version"


@pytest.mark.parametrize("columns", ["80", None])  # None: piped, no COLUMNS (rich uses 80)
def test_versions_keeps_its_key_columns(tmp_path: Path, columns: str | None) -> None:
    fake = FakeSupervisely(default_per_page=7)
    rich = generate_rich_project(fake, images_per_dataset=2)
    project = str(rich.project_id)
    with fake.serve() as url:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LABELVAULT_")}
        env |= {
            "LABELVAULT_STORE_URL": str(tmp_path / "store"),
            "LABELVAULT_SUPERVISELY_URL": url,
            "LABELVAULT_SUPERVISELY_TOKEN": fake.token,
            "COLUMNS": columns,
        }
        runner = CliRunner()
        created = runner.invoke(
            app, ["create", project, "--title", TITLE, "--tag", "gold"], env=env
        )
        assert created.exit_code == 0, created.output
        result = runner.invoke(app, ["versions", project], env=env)
    assert result.exit_code == 0, result.output
    lines = [line.replace("│", " ").replace("┃", " ") for line in result.stdout.splitlines()]
    assert all(len(line.rstrip()) <= 80 for line in lines), result.stdout
    header = next(line for line in lines if "title" in line)
    for name in ("#", "title", "items", "annotations", "rows"):
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", header), (name, result.stdout)
    row = next(line for line in lines if re.match(r"\s*1\s", line))
    assert re.search(r"\s12\s+48\s+\d+\s*$", row), result.stdout  # items, annotations, rows
    words = " ".join(
        line[header.index("title") :].split("  ")[0].strip() for line in lines[lines.index(row) :]
    )
    assert all(word in words for word in TITLE.split()), result.stdout
