"""``query``: SQL over one version, printed as a table, CSV or JSON (streamed)."""

from __future__ import annotations

import io
import json
import sys
from enum import StrEnum
from typing import Annotated

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, app, state
from labelvault.cli.boundary import EXIT_FAILED, Failure
from labelvault.cli.render import cell
from labelvault.errors import ConfigurationError

__all__ = ["DEFAULT_TABLE_ROWS", "OutputFormat", "query"]

#: Rows ``query --format table`` shows at most unless told otherwise.
DEFAULT_TABLE_ROWS = 1000


class OutputFormat(StrEnum):
    """How ``query`` prints its result."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@app.command()
def query(
    ctx: typer.Context,
    project_id: ProjectArg,
    sql: Annotated[
        str,
        typer.Argument(
            metavar="SQL",
            help="DuckDB SQL over the tables project, datasets, items, annotations, tags, users.",
        ),
    ],
    *,
    version: Annotated[
        str, typer.Option("--version", help="The version to query (default: the latest).")
    ] = "latest",
    output: Annotated[
        OutputFormat, typer.Option("--format", help="How to print the result (--json: json).")
    ] = OutputFormat.TABLE,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Rows shown at most by --format table.")
    ] = DEFAULT_TABLE_ROWS,
) -> None:
    """Run SQL over one version (streamed; csv and json print every row)."""
    st = state(ctx)
    project = st.project(project_id)
    if st.json:
        if output is OutputFormat.CSV:
            raise ConfigurationError("pass either --format csv or --json, not both")
        output = OutputFormat.JSON
    ref = inputs.version_ref(version, "--version")
    with st.vault() as vault:
        try:
            reader = vault.query_reader(project, sql, ref)
            if output is OutputFormat.TABLE:
                _print_query_table(st.out, reader, max_rows)
            elif output is OutputFormat.CSV:
                _write_csv(reader)
            else:
                _write_json(reader)
        except (duckdb.Error, pa.ArrowException) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Failure(
                f"the query failed: {first}; the tables are project, datasets, items, "
                "annotations, tags and users",
                EXIT_FAILED,
            ) from None


def _print_query_table(out: Console, reader: pa.RecordBatchReader, max_rows: int) -> None:
    table = Table()
    for field in reader.schema:
        table.add_column(field.name, overflow="fold")
    shown = 0
    more = 0
    for batch in reader:
        if shown >= max_rows:
            more += batch.num_rows
            continue
        for row in batch.slice(0, max_rows - shown).to_pylist():
            table.add_row(*(cell(value) for value in row.values()))
        more += max(0, batch.num_rows - (max_rows - shown))
        shown += min(batch.num_rows, max_rows - shown)
    out.print(table)
    note = f"{shown:,} row{'s' if shown != 1 else ''}"
    if more:
        note += f" shown, {more:,} more (use --format csv or --max-rows)"
    out.print(Text(note, style="dim"))


def _write_csv(reader: pa.RecordBatchReader) -> None:
    header = True
    for batch in reader:
        buffer = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_batches([batch], schema=reader.schema),
            buffer,
            write_options=pacsv.WriteOptions(include_header=header),
        )
        sys.stdout.write(buffer.getvalue().decode("utf-8"))
        header = False
    if header:  # no rows at all: still print the header
        buffer = io.BytesIO()
        pacsv.write_csv(reader.schema.empty_table(), buffer)
        sys.stdout.write(buffer.getvalue().decode("utf-8"))
    sys.stdout.flush()


def _write_json(reader: pa.RecordBatchReader) -> None:
    sys.stdout.write("[")
    first = True
    for batch in reader:
        for row in batch.to_pylist():
            sys.stdout.write("\n" if first else ",\n")
            sys.stdout.write(json.dumps(row, ensure_ascii=False, default=cell))
            first = False
    sys.stdout.write("\n]\n" if not first else "]\n")
    sys.stdout.flush()
