"""``labelvault query --output``: results go to a new file, never through SQL, never into the
store; ``--timeout`` bounds a query."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.test_cli import SQL, Cli, cli, project_figures

__all__ = ["cli"]


def test_output_writes_csv_json_and_parquet(cli: Cli, tmp_path: Path) -> None:
    cli.capture()
    figures = project_figures(cli.fake, cli.rich.project_id)
    out = tmp_path / "results"
    out.mkdir()

    cli.run("query", cli.project, SQL, "--output", str(out / "r.csv"))
    with (out / "r.csv").open(encoding="utf-8") as handle:
        assert sum(int(row["n"]) for row in csv.DictReader(handle)) == figures

    cli.run("query", cli.project, SQL, "--output", str(out / "r.json"))
    assert sum(row["n"] for row in json.loads((out / "r.json").read_text("utf-8"))) == figures

    result = cli.run("--json", "query", cli.project, SQL, "--output", str(out / "r.parquet"))
    assert json.loads(result.stdout)["format"] == "parquet"
    assert sum(pq.read_table(out / "r.parquet").column("n").to_pylist()) == figures
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.json", "r.parquet"]


def test_output_refuses_an_existing_file_unless_forced(cli: Cli, tmp_path: Path) -> None:
    cli.capture()
    target = tmp_path / "r.csv"
    target.write_text("keep me", encoding="utf-8")
    result = cli.run("query", cli.project, SQL, "--output", str(target), code=2)
    assert "--force" in result.stderr
    assert target.read_text(encoding="utf-8") == "keep me"
    cli.run("query", cli.project, SQL, "--output", str(target), "--force")
    assert target.read_text(encoding="utf-8").startswith('"class_name"')


def test_output_refuses_the_store_and_unknown_formats(cli: Cli, tmp_path: Path) -> None:
    cli.capture()
    before = sorted(p.relative_to(cli.store) for p in cli.store.rglob("*"))
    inside = cli.store / "results.csv"
    result = cli.run("query", cli.project, SQL, "--output", str(inside), code=2)
    assert "inside the store" in result.stderr
    assert sorted(p.relative_to(cli.store) for p in cli.store.rglob("*")) == before
    result = cli.run("query", cli.project, SQL, "--output", str(tmp_path / "r.txt"), code=2)
    assert "--format" in result.stderr
    result = cli.run("query", cli.project, SQL, "--format", "parquet", code=2)
    assert "--output" in result.stderr


def test_timeout_stops_an_endless_query(cli: Cli) -> None:
    cli.capture()
    endless = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    )
    result = cli.run("query", cli.project, endless, "--timeout", "0.5", code=1)
    assert "time limit" in result.stderr
    result = cli.run("query", cli.project, SQL, "--timeout", "nan", code=2)
    assert "--timeout" in result.stderr
