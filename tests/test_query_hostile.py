"""The query surface is read-only and closed: hostile SQL is refused in one line, writes nothing,
reads nothing of the host, and a query that never ends is stopped; ordinary analytics still work.

Every hostile case runs on a local store inside ``tmp_path`` with the working folder there too,
and the whole folder is compared before and after: a refused statement must leave no trace.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from labelvault.errors import (
    ConfigurationError,
    QueryFailed,
    QueryRefused,
    QueryTimedOut,
)
from labelvault.query import QueryLimits, connect, query, query_reader
from labelvault.query.sandbox import lock_down
from labelvault.snapshot.manifest import Manifest
from labelvault.snapshot.schema import TABLES
from labelvault.storage.local import LocalStore
from tests.snapshot.helpers import write_version
from tests.strategies import synthetic_project
from tests.test_cli import Cli, cli  # noqa: F401 - the fixture that drives the command line

FAKE_SECRET = "fake-s3-secret-7f3a9c0e1d"
SHORT = QueryLimits(timeout=2.0)
NEVER_ENDS = "WITH RECURSIVE t(n) AS (SELECT 1::BIGINT UNION ALL SELECT n + 1 FROM t) "


@dataclass
class Version:
    """A version on a local store, another project's version next to it, and a scratch folder."""

    store: LocalStore
    manifest: Manifest
    root: Path
    other_chunk: Path
    own_chunk: Path
    scratch: Path


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStore, Manifest]]:
    """One store for the module: this version, and another project's version next to it."""
    store = LocalStore(tmp_path_factory.mktemp("hostile") / "store")
    pages = synthetic_project(range(60), annotations_per_item=7, batch_rows=25)
    manifest = write_version(store, pages, target_chunk_rows=100)
    other = synthetic_project(range(500, 520), salt="other")
    write_version(store, other, prefix="supervisely/app.example/7")
    yield store, manifest
    store.close()


@pytest.fixture
def version(
    shared_store: tuple[LocalStore, Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Version:
    monkeypatch.chdir(tmp_path)  # anything DuckDB might drop in the working folder lands here
    monkeypatch.setenv("LABELVAULT_STORE_S3_SECRET_ACCESS_KEY", FAKE_SECRET)
    store, manifest = shared_store
    root = store.root
    other_chunk = next(p for p in sorted((root / "supervisely/app.example/7").rglob("*.parquet")))
    own_chunk = root / manifest.table("items").chunks[0].key
    assert own_chunk.is_file()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Version(store, manifest, root, other_chunk, own_chunk, scratch)


def tree(*folders: Path) -> dict[str, str]:
    """Every file and folder under ``folders`` with a digest of its content."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for folder in folders
        for path in sorted(folder.rglob("*"))
    }


# --- hostile statements --------------------------------------------------------------------------

#: (case id, SQL with {scratch}/{chunk}/{own_chunk}/{home} placeholders, what the refusal names)
HOSTILE: list[tuple[str, str, str]] = [
    ("copy-to-file", "COPY (SELECT 1 AS a) TO '{scratch}/out.csv'", "`COPY` is not"),
    ("copy-over-own-chunk", "COPY (SELECT 'x' AS a) TO '{own_chunk}' (FORMAT parquet)", "`COPY`"),
    ("copy-table-parquet", "COPY items TO '{scratch}/items.parquet' (FORMAT parquet)", "`COPY`"),
    ("read-csv-auto-passwd", "SELECT * FROM read_csv_auto('/etc/passwd')", "`read_csv_auto`"),
    (
        "read-csv-in-subquery",
        "SELECT key FROM items WHERE name IN (SELECT column0 FROM read_csv('/etc/passwd'))",
        "`read_csv`",
    ),
    ("glob-home", "SELECT * FROM glob('{home}/*')", "`glob`"),
    ("read-text-environ", "SELECT content FROM read_text('/proc/self/environ')", "`read_text`"),
    ("read-blob-environ", "SELECT content FROM read_blob('/proc/self/environ')", "`read_blob`"),
    ("read-json-hostname", "SELECT * FROM read_json_auto('/etc/hostname')", "`read_json_auto`"),
    ("read-parquet-other-project", "SELECT * FROM read_parquet('{chunk}')", "`read_parquet`"),
    (
        "parquet-scan-other-project",
        "SELECT count(*) FROM parquet_scan('{chunk}')",
        "`parquet_scan`",
    ),
    ("parquet-metadata", "SELECT * FROM parquet_metadata('{chunk}')", "`parquet_metadata`"),
    ("replacement-scan-path", "SELECT * FROM '{chunk}'", "is not one of them"),
    ("sniff-csv", "SELECT * FROM sniff_csv('/etc/passwd')", "`sniff_csv`"),
    ("attach-memory", "ATTACH ':memory:' AS scratch", "`ATTACH` is not"),
    ("attach-file", "ATTACH '{scratch}/made.duckdb' AS made", "`ATTACH` is not"),
    ("detach", "DETACH memory", "`DETACH` is not"),
    ("install-httpfs", "INSTALL httpfs", "`INSTALL` is not"),
    ("force-install", "FORCE INSTALL httpfs", "`FORCE INSTALL` is not"),
    ("load-httpfs", "LOAD httpfs", "`LOAD` is not"),
    ("update-extensions", "UPDATE EXTENSIONS", "`UPDATE EXTENSIONS` is not"),
    ("two-selects", "SELECT 1; SELECT 2", "only one statement at a time is allowed; found 2"),
    (
        "select-then-copy",
        "SELECT 1; COPY (SELECT 1) TO '{scratch}/second.csv'",
        "found 2 (`SELECT`, `COPY`)",
    ),
    ("pragma", "PRAGMA version", "`PRAGMA"),
    ("set-threads", "SET threads = 64", "`SET` is not"),
    ("set-external-access", "SET enable_external_access = true", "`SET` is not"),
    ("reset-lock", "RESET lock_configuration", "`RESET` is not"),
    ("call", "CALL pragma_version()", "`CALL` is not"),
    ("create-table", "CREATE TABLE t AS SELECT 1 AS a", "`CREATE TABLE` is not"),
    ("create-macro", "CREATE MACRO twice(a) AS a * 2", "`CREATE MACRO` is not"),
    ("create-secret", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", "`CREATE SECRET`"),
    ("insert", "INSERT INTO items SELECT * FROM items", "`INSERT INTO` is not"),
    ("cte-insert", "WITH x AS (SELECT * FROM items) INSERT INTO items FROM x", "`INSERT` is not"),
    ("update", "UPDATE items SET name = 'x'", "`UPDATE` is not"),
    ("delete", "DELETE FROM items", "`DELETE FROM` is not"),
    ("drop-view", "DROP VIEW items", "`DROP VIEW` is not"),
    ("alter-view", "ALTER VIEW items RENAME TO gone", "`ALTER VIEW` is not"),
    ("export-database", "EXPORT DATABASE '{scratch}/export'", "`EXPORT DATABASE` is not"),
    ("import-database", "IMPORT DATABASE '{scratch}'", "`IMPORT DATABASE` is not"),
    ("vacuum", "VACUUM", "`VACUUM` is not"),
    ("checkpoint", "CHECKPOINT", "`CHECKPOINT` is not"),
    ("use", "USE memory", "`USE` is not"),
    ("explain-analyze", "EXPLAIN ANALYZE SELECT count(*) FROM items", "`EXPLAIN ANALYZE` is not"),
    ("begin", "BEGIN TRANSACTION", "`BEGIN"),
    ("duckdb-settings", "SELECT * FROM duckdb_settings()", "table function `duckdb_settings`"),
    ("query-function", "SELECT * FROM query('SELECT 1')", "`query` is not"),
    ("current-setting", "SELECT current_setting('temp_directory')", "`current_setting` is not"),
    ("information-schema", "SELECT * FROM information_schema.tables", "is not one of them"),
    ("empty", "  -- nothing but a comment\n", "holds no statement"),
]


def hostile_sql(template: str, version: Version) -> str:
    return template.format(
        scratch=version.scratch,
        chunk=version.other_chunk,
        own_chunk=version.own_chunk,
        home=Path.home(),
    )


@pytest.mark.parametrize(
    ("sql", "names"), [case[1:] for case in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_sql_is_refused_in_one_line(
    version: Version, tmp_path: Path, sql: str, names: str
) -> None:
    before = tree(tmp_path, version.root)
    statement = hostile_sql(sql, version)
    with pytest.raises(QueryRefused) as refused:
        query_reader(version.store, version.manifest, statement, limits=SHORT).read_all()
    message = str(refused.value)
    assert names in message
    assert "\n" not in message
    assert message.startswith("query: ")
    assert FAKE_SECRET not in message
    assert tree(tmp_path, version.root) == before  # nothing written, nothing overwritten


def test_the_hostile_list_covers_the_issue() -> None:
    assert len(HOSTILE) >= 20
    assert len({case[0] for case in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(
    "sql",
    [
        NEVER_ENDS + "SELECT count(*) FROM t",
        NEVER_ENDS + "SELECT n FROM t",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION SELECT n + 1 FROM t) SELECT max(n) FROM t",
    ],
    ids=["aggregate", "streamed", "union"],
)
def test_a_recursive_cte_that_never_ends_is_stopped(version: Version, sql: str) -> None:
    with pytest.raises(QueryTimedOut) as stopped:
        for _ in query_reader(version.store, version.manifest, sql, limits=SHORT):
            pass
    assert str(stopped.value).startswith("query: stopped after 2 s, its time limit")
    assert "\n" not in str(stopped.value)
    assert stopped.value.seconds == 2.0


def test_a_session_goes_on_after_a_refusal_and_a_timeout(version: Version) -> None:
    with connect(version.store, version.manifest, limits=SHORT) as session:
        with pytest.raises(QueryRefused):
            session.execute("SET threads = 1")
        with pytest.raises(QueryTimedOut):
            session.execute(NEVER_ENDS + "SELECT max(n) FROM t")
        assert session.execute("SELECT count(*) FROM items").column(0)[0].as_py() == 60


def test_the_memory_limit_stops_a_query_in_one_line(version: Version) -> None:
    small = QueryLimits(timeout=60.0, memory_bytes=64 * 1024**2, threads=1)
    with pytest.raises(QueryFailed) as failed:
        query(
            version.store,
            version.manifest,
            "SELECT list(range) FROM range(100000000)",
            limits=small,
        )
    assert "Out of Memory" in str(failed.value)
    assert "\n" not in str(failed.value)


def test_bad_sql_is_one_query_failed_line(version: Version) -> None:
    with pytest.raises(QueryFailed, match=r"^the query failed: Parser Error: .*; the tables are"):
        query(version.store, version.manifest, "SELEC key FROM items")
    with pytest.raises(QueryFailed, match=r"Referenced column \"nope\" not found") as failed:
        query(version.store, version.manifest, "SELECT nope FROM annotations")
    assert "\n" not in str(failed.value)


@pytest.mark.parametrize(
    "limits",
    [
        {"timeout": 0.0},
        {"timeout": -1.0},
        {"memory_bytes": 1024},
        {"threads": 0},
    ],
)
def test_nonsense_limits_are_configuration_errors(limits: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="query "):
        QueryLimits(**limits)  # type: ignore[arg-type]


# --- the lock itself, under the statement check ---------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1 AS a) TO '{scratch}/out.csv'",
        "SELECT content FROM read_text('{secret_file}')",
        "SELECT content FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_parquet('{chunk}')",
        "SELECT * FROM '{chunk}'",
        "SELECT * FROM glob('{home}/*')",
        "ATTACH '{scratch}/made.duckdb' AS made",
        "EXPORT DATABASE '{scratch}/export'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET threads = 64",
        "SET temp_directory = '{scratch}/spill'",
        "RESET lock_configuration",
    ],
)
def test_the_locked_connection_refuses_what_the_check_would(
    version: Version, tmp_path: Path, sql: str
) -> None:
    """Even SQL that got past the statement check could neither read, write nor unlock."""
    secret_file = version.scratch / "credentials"
    secret_file.write_text(f"aws_secret_access_key = {FAKE_SECRET}\n")
    statement = hostile_sql(sql.replace("{secret_file}", str(secret_file)), version)
    control = duckdb.connect()  # an open connection does read the secret: the case is real
    try:
        if "{secret_file}" in sql:
            assert FAKE_SECRET in str(control.sql(statement).fetchall())
    finally:
        control.close()
    before = tree(tmp_path, version.root)
    connection = duckdb.connect()
    try:
        lock_down(connection, QueryLimits())
        with pytest.raises(duckdb.Error) as refused:
            connection.sql(statement)
    finally:
        connection.close()
    assert FAKE_SECRET not in str(refused.value)
    assert tree(tmp_path, version.root) == before


def test_the_limits_are_in_force_and_locked(version: Version) -> None:
    limits = QueryLimits(timeout=5.0, memory_bytes=256 * 1024**2, threads=2)
    connection = duckdb.connect()
    try:
        lock_down(connection, limits)
        settings = dict(
            connection.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ("
                "'threads', 'memory_limit', 'enable_external_access', 'lock_configuration', "
                "'autoload_known_extensions', 'autoinstall_known_extensions', "
                "'max_temp_directory_size', 'temp_directory')"
            ).fetchall()
        )
    finally:
        connection.close()
    assert settings["threads"] == "2"
    assert settings["memory_limit"] == "256.0 MiB"
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["autoinstall_known_extensions"] == "false"
    assert settings["temp_directory"] == ""
    assert settings["max_temp_directory_size"] in ("0 bytes", "0.0 B", "0 B", "0.0 bytes")


# --- ordinary analytics still work ----------------------------------------------------------------


ANALYTICS: list[tuple[str, str, object]] = [
    (
        "counts-of-every-table",
        " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in TABLES)
        + " ORDER BY t",
        [
            ("annotations", 420),
            ("datasets", 1),
            ("figures", 0),  # the video tables: absent from an images version, read as empty
            ("items", 60),
            ("objects", 0),
            ("project", 1),
            ("tags", 60),
            ("users", 0),
            ("video_tags", 0),
            ("videos", 0),
        ],
    ),
    (
        "join-group-by-all",
        "SELECT d.name, count(DISTINCT i.key) AS items, count(a.key) AS figures "
        "FROM datasets d JOIN items i ON i.dataset_key = d.key "
        "LEFT JOIN annotations a ON a.item_key = i.key GROUP BY ALL",
        [("train", 60, 420)],
    ),
    (
        "window-function",
        "SELECT count(*) FROM (SELECT item_key, row_number() OVER "
        "(PARTITION BY item_key ORDER BY key) AS rn FROM annotations) WHERE rn = 7",
        [(60,)],
    ),
    (
        "qualify",
        "SELECT count(*) FROM (SELECT key FROM annotations "
        "QUALIFY row_number() OVER (PARTITION BY item_key ORDER BY key) <= 2)",
        [(120,)],
    ),
    (
        "cte-and-aggregates",
        "WITH per_item AS (SELECT item_key, count(*) AS n FROM annotations GROUP BY ALL) "
        "SELECT min(n), max(n), sum(n) FROM per_item JOIN items ON items.key = per_item.item_key",
        [(7, 7, 420)],
    ),
    (
        "classes-add-up",
        "SELECT sum(n) FROM (SELECT class_name, count(*) AS n FROM annotations GROUP BY ALL)",
        [(420,)],
    ),
    (
        "tags-on-items",
        "SELECT count(*) FROM tags t JOIN items i ON t.owner_key = i.key "
        "WHERE t.owner_type = 'item'",
        [(60,)],
    ),
    (
        "project-and-users",
        "SELECT (SELECT count(*) FROM users), name FROM project",
        [(0, "synthetic")],
    ),
    ("range-and-unnest", "SELECT sum(x) FROM range(4) r(x), unnest([10, 20]) u(y)", [(12,)]),
    ("from-first", "FROM items SELECT count(*)", [(60,)]),
    ("glob-operator", "SELECT count(*) FROM items WHERE name GLOB 'img_*.jpg'", [(60,)]),
    ("trailing-semicolon", "SELECT count(*) FROM datasets;", [(1,)]),
    ("describe", "SELECT count(*) FROM (DESCRIBE items)", [(14,)]),
]


@pytest.mark.parametrize("verify", [True, False], ids=["verified", "in-place"])
@pytest.mark.parametrize(
    ("sql", "expected"), [case[1:] for case in ANALYTICS], ids=[c[0] for c in ANALYTICS]
)
def test_analytics_still_work(version: Version, sql: str, expected: object, verify: bool) -> None:
    reader = query_reader(version.store, version.manifest, sql, verify=verify, limits=SHORT)
    rows = [tuple(row.values()) for batch in reader for row in batch.to_pylist()]
    assert rows == expected


def test_results_stream_batch_by_batch(version: Version) -> None:
    reader = query_reader(
        version.store, version.manifest, "SELECT key FROM annotations ORDER BY key", batch_rows=50
    )
    sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 420
    assert max(sizes) <= 50
    assert len(sizes) >= 9


# --- the command line -----------------------------------------------------------------------------


def test_the_cli_refuses_in_one_line(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    cli.capture()
    target = tmp_path / "written.csv"
    cases = {
        f"COPY (SELECT 1) TO '{target}'": "`COPY` is not",
        "SELECT * FROM read_text('/proc/self/environ')": "`read_text` is not",
        "ATTACH ':memory:' AS m": "`ATTACH` is not",
        "SELECT 1; SELECT 2": "only one statement",
    }
    for sql, names in cases.items():
        result = cli.run("query", cli.project, sql, code=1)  # one line, exit 1, no traceback
        assert "error: query: only " in result.stderr
        assert names in result.stderr
    assert not target.exists()
    counted = cli.run("query", cli.project, "SELECT count(*) AS n FROM items", "--format", "csv")
    assert counted.stdout.split() == ['"n"', "18"]


def test_the_real_cli_does_not_print_its_environment(cli: Cli) -> None:  # noqa: F811
    """In a fresh process, /proc/self/environ holds the token: the query must not reach it."""
    cli.capture()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELVAULT_")}
    env.update({k: v for k, v in cli.env(AWS_SECRET_ACCESS_KEY=FAKE_SECRET).items() if v})
    sql = "SELECT content FROM read_text('/proc/self/environ')"
    done = subprocess.run(
        [sys.executable, "-m", "labelvault", "query", cli.project, sql, "--format", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: query: ")
    assert "`read_text` is not" in lines[0]
    for secret in (FAKE_SECRET, cli.fake.token):
        assert secret not in done.stderr
