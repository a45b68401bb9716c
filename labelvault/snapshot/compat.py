"""Reading older format versions.

Every format version this build can read is listed in :data:`READABLE_FORMAT_VERSIONS`. When
the table layout changes, :data:`~labelvault.snapshot.schema.FORMAT_VERSION` is bumped and an
upgrader from the previous version is registered in :data:`UPGRADERS`: a function that takes a
table name and a *complete* record batch in the old layout and returns it in the next one. The
reader chains upgraders until the batch has the current layout, so old versions stay readable
forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import pyarrow as pa

from labelvault.errors import UnsupportedFormat
from labelvault.snapshot.schema import FORMAT_VERSION

__all__ = [
    "MIN_FORMAT_VERSION",
    "READABLE_FORMAT_VERSIONS",
    "UPGRADERS",
    "Upgrader",
    "check_readable",
    "needs_upgrade",
    "unchanged_layout",
    "upgrade_batch",
]

#: ``(table, batch in version v) -> batch in version v + 1``.
Upgrader = Callable[[str, pa.RecordBatch], pa.RecordBatch]


def unchanged_layout(table: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    """The upgrader between two versions whose chunks have the same layout."""
    return batch


#: Upgraders keyed by the version they upgrade *from*.
#: 1 -> 2: format 2 adds deltas to the manifest; chunks keep their layout.
UPGRADERS: Final[dict[int, Upgrader]] = {1: unchanged_layout}

#: The oldest format version this build can read.
MIN_FORMAT_VERSION: Final = 1

#: Every format version this build can read.
READABLE_FORMAT_VERSIONS: Final = frozenset(range(MIN_FORMAT_VERSION, FORMAT_VERSION + 1))


def check_readable(version: int, *, key: str | None = None) -> None:
    """Raise :class:`UnsupportedFormat` unless this build can read ``version``."""
    where = f"{key}: " if key else ""
    if version > FORMAT_VERSION:
        raise UnsupportedFormat(
            f"{where}format version {version} was written by a newer labelvault; this build "
            f"reads versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}. Upgrade labelvault.",
            key=key,
        )
    if version not in READABLE_FORMAT_VERSIONS:
        raise UnsupportedFormat(
            f"{where}format version {version} is not one this build can read "
            f"({MIN_FORMAT_VERSION} to {FORMAT_VERSION})",
            key=key,
        )


def needs_upgrade(version: int) -> bool:
    """True when chunks written in ``version`` have another layout than the current one."""
    check_readable(version)
    return any(UPGRADERS[v] is not unchanged_layout for v in range(version, FORMAT_VERSION))


def upgrade_batch(table: str, batch: pa.RecordBatch, from_version: int) -> pa.RecordBatch:
    """Bring a complete batch of ``table`` written in ``from_version`` to the current layout."""
    check_readable(from_version)
    for version in range(from_version, FORMAT_VERSION):
        batch = UPGRADERS[version](table, batch)
    return batch
