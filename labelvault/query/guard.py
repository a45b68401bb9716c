"""Which SQL a version's query surface accepts: exactly one SELECT over the version's tables.

The connection is already locked down (see :mod:`labelvault.query.sandbox`), so DuckDB itself
refuses files, extensions and settings; this check runs first so that the refusal is one line
that names what was refused, and so that nothing but a query ever reaches the engine (DuckDB's
Python client runs non-SELECT statements as soon as they are parsed).

The statement is parsed by DuckDB (``extract_statements``), then its syntax tree
(``json_serialize_sql``) is walked: every table it reads must be one of the version's tables or
a CTE of the query, and every table function one of a few generators (``range``, ``unnest`` …).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Final, NoReturn

import duckdb

from labelvault.errors import QueryRefused

__all__ = ["ALLOWED_TABLE_FUNCTIONS", "check_query"]

#: Table functions a query may call: generators that touch neither files nor settings.
ALLOWED_TABLE_FUNCTIONS: Final = frozenset(
    {"range", "generate_series", "unnest", "repeat", "repeat_row"}
)

#: Scalar functions refused even though the locked connection would refuse or lack them.
_REFUSED_FUNCTIONS: Final = frozenset(
    {"getenv", "current_setting", "json_execute_serialized_sql", "query", "query_table"}
)

#: Functions that read files or list folders: these names, prefixes and suffixes.
_FILE_FUNCTIONS: Final = frozenset({"glob", "sniff_csv", "load_aws_credentials"})
_FILE_PREFIXES: Final = ("read_", "parquet_", "iceberg_", "delta_")
_FILE_SUFFIXES: Final = ("_scan",)

#: Catalogs and schemas the version's tables live in (``conn.register`` makes views there).
_PLAIN_CATALOGS: Final = frozenset({"", "memory", "temp"})
_PLAIN_SCHEMAS: Final = frozenset({"", "main"})

#: Statement types shown by a clearer name than DuckDB's.
_TYPE_NAMES: Final = {
    "VARIABLE_SET": "SET",
    "MERGE_INTO": "MERGE",
    "COPY_DATABASE": "COPY DATABASE",
    "CREATE_FUNC": "CREATE FUNCTION",
    "MULTI": "PIVOT",
}

_LONGEST_NAME: Final = 60


def check_query(connection: duckdb.DuckDBPyConnection, sql: str, tables: Sequence[str]) -> None:
    """Raise :class:`QueryRefused` unless ``sql`` is one SELECT that reads only ``tables``."""
    # Syntax errors (duckdb.ParserException) propagate: the caller reports them as a failure.
    statements = connection.extract_statements(sql)
    try:
        kinds = [statement.type for statement in statements]
    except ValueError:  # a statement type this client cannot even name: never a SELECT
        _refuse_unparsed(sql)
    if not statements:
        raise QueryRefused(
            "query: the SQL holds no statement; give one SELECT over the version's tables"
        )
    if len(statements) > 1:
        words = (_statement_word(s.query, k.name) for s, k in zip(statements, kinds, strict=True))
        _refuse_several(list(words))
    statement, kind = statements[0], kinds[0]
    if kind != duckdb.StatementType.SELECT:
        _refuse(f"`{_statement_word(statement.query, kind.name)}` is not")
    _check_tree(connection, statement.query, tables)


# --- the syntax tree ----------------------------------------------------------------------------


def _check_tree(connection: duckdb.DuckDBPyConnection, sql: str, tables: Sequence[str]) -> None:
    rows = connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    try:
        tree = json.loads(rows[0][0]) if rows else None
    except RecursionError:
        tree = None
    if not isinstance(tree, dict) or tree.get("error") is not False:
        _refuse("this statement is not (it could not be checked)")
    try:
        nodes = list(_nodes(tree))
    except RecursionError:  # pragma: no cover - _nodes does not recurse; kept as a guard
        _refuse("this statement is not (it is nested too deeply)")

    readable = {table.lower() for table in tables}
    for node in nodes:
        ctes = node.get("cte_map")
        if isinstance(ctes, dict):
            readable.update(
                str(entry.get("key", "")).lower()
                for entry in ctes.get("map", [])
                if isinstance(entry, dict)
            )

    for node in nodes:
        kind = node.get("type")
        if node.get("class") == "FUNCTION":
            _check_function(str(node.get("function_name", "")), table_function=False)
        elif kind == "TABLE_FUNCTION":
            function = node.get("function")
            name = function.get("function_name", "") if isinstance(function, dict) else ""
            _check_function(str(name), table_function=True)
        elif kind == "BASE_TABLE" or (kind == "SHOW_REF" and node.get("show_type") == "SHOW"):
            _check_table(node, readable, tables)


def _nodes(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``tree``, without recursion (hostile SQL can nest deeply)."""
    stack: list[Any] = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _check_function(name: str, *, table_function: bool) -> None:
    lowered = name.lower()
    if (
        lowered in _FILE_FUNCTIONS
        or lowered in _REFUSED_FUNCTIONS
        or lowered.startswith(_FILE_PREFIXES)
        or lowered.endswith(_FILE_SUFFIXES)
    ):
        _refuse(f"`{_shown(name)}` is not (SQL may not read files, settings or the host)")
    if table_function and lowered not in ALLOWED_TABLE_FUNCTIONS:
        allowed = ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
        _refuse(f"the table function `{_shown(name)}` is not (allowed: {allowed})")


def _check_table(node: dict[str, Any], readable: set[str], tables: Sequence[str]) -> None:
    name = str(node.get("table_name", ""))
    catalog = str(node.get("catalog_name", "")).lower()
    schema = str(node.get("schema_name", "")).lower()
    if name.lower() in readable and catalog in _PLAIN_CATALOGS and schema in _PLAIN_SCHEMAS:
        return
    qualified = ".".join(part for part in (catalog, schema, name) if part)
    _refuse(f"`{_shown(qualified)}` is not one of them ({', '.join(tables)})")


# --- messages -----------------------------------------------------------------------------------


def _refuse(what: str) -> NoReturn:
    raise QueryRefused(
        f"query: only SELECT statements over the version's tables are allowed; {what}"
    )


def _refuse_unparsed(sql: str) -> NoReturn:
    words = _leading_words(sql)
    if len(words) > 1:
        _refuse_several(words)
    _refuse(f"`{words[0] if words else 'this statement'}` is not")


def _refuse_several(words: list[str]) -> NoReturn:
    raise QueryRefused(
        f"query: only one statement at a time is allowed; found {len(words)} "
        f"(`{'`, `'.join(words)}`)"
    )


def _statement_word(sql: str, type_name: str) -> str:
    """How the user would name a statement: its leading keywords (``COPY``, ``INSERT INTO``)."""
    words = _leading_words(sql)
    word = words[0] if words else ""
    if not word or word.startswith("WITH") or not word[0].isalpha():
        return _TYPE_NAMES.get(type_name, type_name.replace("_", " "))
    return word


def _leading_words(sql: str) -> list[str]:
    """The first keyword or two of each ``;``-separated statement in ``sql`` (``INSERT INTO``)."""
    segments: list[list[tuple[str, bool]]] = [[]]
    tokens = duckdb.tokenize(sql)
    for index, (start, kind) in enumerate(tokens):
        end = tokens[index + 1][0] if index + 1 < len(tokens) else len(sql)
        text = sql[start:end].strip()
        if kind == duckdb.token_type.comment:
            continue
        if text == ";":
            segments.append([])
        else:
            segments[-1].append((text, kind == duckdb.token_type.keyword))
    words = []
    for segment in filter(None, segments):
        (first, keyword), *rest = segment
        word = first.upper() if keyword else _shown(first)
        if keyword and rest and rest[0][1] and rest[0][0].upper() != "OR":
            word += " " + rest[0][0].upper()
        words.append(word)
    return words


def _shown(text: str) -> str:
    """``text`` on one line, short enough for an error message."""
    line = " ".join(text.split()).replace("`", "'")
    return line if len(line) <= _LONGEST_NAME else line[: _LONGEST_NAME - 1] + "…"
