"""Reading older format versions.

Every format version this build can read is listed in :data:`READABLE_FORMAT_VERSIONS`. When
the format changes, :data:`~labelvault.snapshot.schema.FORMAT_VERSION` is bumped and this
build keeps reading every older version:

- 1 → 2 added deltas to the manifest; chunks kept their layout.
- 2 → 3 changed how chunks store rows (binary fingerprints, ``raw`` without the text of the
  column it repeats). :mod:`labelvault.snapshot.layout` says which layout a version's chunks
  have and decodes every layout into the same logical rows, so readers of old and new
  versions see the same columns and values.
- 3 → 4 records how many base rows a delta removes without replacing them (``removed``), so
  that a read skips the displaced keys when there are none; chunks kept their layout.
"""

from __future__ import annotations

from typing import Final

from labelvault.errors import UnsupportedFormat
from labelvault.snapshot.schema import FORMAT_VERSION

__all__ = [
    "MIN_FORMAT_VERSION",
    "READABLE_FORMAT_VERSIONS",
    "check_readable",
]

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
