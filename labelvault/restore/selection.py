"""Partial restores: which datasets and classes of a version a restore brings back.

A selected dataset brings its whole subtree; its ancestors are created so the tree stays
valid, but their own items are left out. Classes select annotations (and their tags).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace

from labelvault.errors import ConfigurationError
from labelvault.models import RestoreOptions
from labelvault.platforms.base import Selection, TableReader
from labelvault.platforms.streams import Row, listing

__all__ = ["select"]


def _named_datasets(
    read_table: TableReader, wanted: tuple[str, ...]
) -> tuple[dict[str, str | None], set[str]]:
    """The dataset tree (key → parent key) and the keys ``wanted`` names (paths win)."""
    parents: dict[str, str | None] = {}
    by_path: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for batch in read_table("datasets"):
        columns = [batch.column(name).to_pylist() for name in ("key", "parent_key", "name", "path")]
        for key, parent, name, path in zip(*columns, strict=True):
            parents[key] = parent
            by_path.setdefault(path if path is not None else str(name), []).append(key)
            by_name.setdefault(str(name), []).append(key)
    named: set[str] = set()
    unknown: list[str] = []
    for selector in wanted:
        keys = by_path.get(selector) or by_name.get(selector) or []
        if len(keys) > 1 and selector not in by_path:
            paths = [path for path, found in by_path.items() if set(found) & set(keys)]
            raise ConfigurationError(
                f"restore: dataset name {selector!r} is ambiguous; name one of the paths "
                f"{listing(paths)}"
            )
        if not keys:
            unknown.append(selector)
        named.update(keys)
    if unknown:
        raise ConfigurationError(
            f"restore: the version has no dataset {listing(unknown)}; its datasets (by path) "
            f"are {listing(by_path)}"
        )
    return parents, named


def _ancestors(parents: Mapping[str, str | None], key: str) -> Iterator[str]:
    """The keys above ``key`` that are in the tree, nearest first."""
    parent = parents.get(key)
    seen = {key}
    while parent is not None and parent in parents and parent not in seen:
        seen.add(parent)
        yield parent
        parent = parents[parent]


def _select_datasets(read_table: TableReader, wanted: tuple[str, ...]) -> Selection:
    """Resolve dataset names or paths to the named roots, their subtrees, and their ancestors."""
    parents, named = _named_datasets(read_table, wanted)
    children: dict[str, list[str]] = {}
    for key, parent in parents.items():
        if parent is not None and parent in parents:
            children.setdefault(parent, []).append(key)
    subtree: set[str] = set()
    todo = list(named)
    while todo:
        key = todo.pop()
        if key not in subtree:
            subtree.add(key)
            todo += children.get(key, [])
    create = set(subtree)
    for key in subtree:
        create.update(_ancestors(parents, key))
    roots = {key for key in named if named.isdisjoint(_ancestors(parents, key))}
    return Selection(roots=frozenset(roots), items_of=frozenset(subtree), create=frozenset(create))


def _defined_classes(source: Row) -> set[str]:
    """Class names in the project row's definitions (``classes``: titles or names)."""
    try:
        definitions = json.loads(source.get("definitions") or "{}")
    except ValueError:
        definitions = None
    entries = definitions.get("classes") if isinstance(definitions, dict) else None
    if not isinstance(entries, list):
        raise ConfigurationError(
            "restore: this version's definitions list no classes, so it cannot be filtered by "
            "class; leave classes unset"
        )
    names = set()
    for entry in entries:
        name = entry.get("title", entry.get("name")) if isinstance(entry, dict) else entry
        if isinstance(name, str):
            names.add(name)
    return names


def select(read_table: TableReader, source: Row, options: RestoreOptions) -> Selection:
    """Check the partial-restore options against the version and resolve them."""
    for what, value in (("datasets", options.datasets), ("classes", options.classes)):
        if value is not None and not value:
            raise ConfigurationError(
                f"restore: {what} is empty; name at least one, or leave it unset to restore all"
            )
    selection = Selection()
    if options.datasets is not None:
        selection = _select_datasets(read_table, tuple(options.datasets))
    if options.classes is not None:
        defined = _defined_classes(source)
        unknown = [name for name in options.classes if name not in defined]
        if unknown:
            raise ConfigurationError(
                f"restore: the version has no class {listing(unknown)}; its classes are "
                f"{listing(defined)}"
            )
        selection = replace(selection, classes=frozenset(options.classes))
    return selection
