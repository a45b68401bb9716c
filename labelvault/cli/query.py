"""``query``: SQL over one version, printed as a table, CSV or JSON (streamed)."""

from __future__ import annotations

import io
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from labelvault.cli import inputs
from labelvault.cli.app import ProjectArg, State, app, state
from labelvault.cli.boundary import EXIT_FAILED, Failure
from labelvault.cli.render import cell, print_json
from labelvault.errors import ConfigurationError
from labelvault.query import DEFAULT_TIMEOUT, QueryLimits
from labelvault.storage.local import LocalStore
from labelvault.vault import Vault

__all__ = ["DEFAULT_TABLE_ROWS", "OutputFormat", "query"]

#: Rows ``query --format table`` shows at most unless told otherwise.
DEFAULT_TABLE_ROWS = 1000


class OutputFormat(StrEnum):
    """How ``query`` prints (or, with ``--output``, writes) its result."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


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
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Write the result to this new file (csv, json or parquet by --format or by "
            "the file's extension) instead of printing it.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --output: replace an existing file.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Stop the query after this many seconds.", min=0.001),
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Run SQL over one version (streamed; csv and json print every row).

    Only a single SELECT over the version's tables runs: SQL cannot read or write files,
    settings or the host. Results go to a file through --output.
    """
    st = state(ctx)
    project = st.project(project_id)
    inputs.finite(timeout, "--timeout")
    if output_file is not None:
        output = _file_format(output_file, output)
    elif output is OutputFormat.PARQUET:
        raise ConfigurationError("--format parquet writes a file: add --output FILE")
    if st.json and output_file is None:
        if output is OutputFormat.CSV:
            raise ConfigurationError("pass either --format csv or --json, not both")
        output = OutputFormat.JSON
    ref = inputs.version_ref(version, "--version")
    import duckdb  # noqa: PLC0415 - DuckDB is heavy; only this command loads it

    with st.vault() as vault:
        try:
            reader = vault.query_reader(project, sql, ref, limits=QueryLimits(timeout=timeout))
            if output_file is not None:
                _to_file(st, vault, reader, output_file, output, force=force)
            elif output is OutputFormat.TABLE:
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


def _to_file(
    st: State,
    vault: Vault,
    reader: pa.RecordBatchReader,
    path: Path,
    output: OutputFormat,
    *,
    force: bool,
) -> None:
    """``--output``: write the result to a new file outside the store, then say so."""
    root = vault.store.root if isinstance(vault.store, LocalStore) else None
    if root is not None and path.resolve().is_relative_to(root.resolve()):
        raise ConfigurationError(f"--output {path} is inside the store; write results elsewhere")
    rows = _write_file(reader, path, output, force=force)
    if st.json:
        print_json({"output": str(path), "format": output.value, "rows": rows})
    else:
        st.err.print(f"wrote {rows:,} row{'s' if rows != 1 else ''} to {path}")


def _file_format(path: Path, given: OutputFormat) -> OutputFormat:
    """The format of ``--output``: ``--format`` when it names one, else the extension."""
    if given is not OutputFormat.TABLE:
        return given
    by_suffix = {".csv": OutputFormat.CSV, ".json": OutputFormat.JSON}
    by_suffix[".parquet"] = OutputFormat.PARQUET
    found = by_suffix.get(path.suffix.lower())
    if found is None:
        raise ConfigurationError(
            f"--output {path}: say the format with --format csv, json or parquet "
            "(or end the file name in .csv, .json or .parquet)"
        )
    return found


def _write_file(
    reader: pa.RecordBatchReader, path: Path, output: OutputFormat, *, force: bool
) -> int:
    """Stream the result into a new file (written aside, then moved into place); its rows."""
    if path.exists() and not force:
        raise ConfigurationError(f"--output {path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise ConfigurationError(f"--output {path}: the folder {path.parent} does not exist")
    partial = path.with_name(f".{path.name}.partial")
    rows = 0
    try:
        with open(partial, "wb") as sink:
            if output is OutputFormat.PARQUET:
                with pq.ParquetWriter(sink, reader.schema, compression="zstd") as writer:
                    for batch in reader:
                        writer.write_batch(batch)
                        rows += batch.num_rows
            elif output is OutputFormat.CSV:
                with pacsv.CSVWriter(sink, reader.schema) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
                        rows += batch.num_rows
            else:
                sink.write(b"[")
                for batch in reader:
                    for row in batch.to_pylist():
                        sink.write(b"\n" if rows == 0 else b",\n")
                        sink.write(json.dumps(row, ensure_ascii=False, default=cell).encode())
                        rows += 1
                sink.write(b"\n]\n" if rows else b"]\n")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return rows


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
