"""What one query may use, and the defaults: plain values, importable without DuckDB."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from labelvault.errors import ConfigurationError

__all__ = ["DEFAULT_BATCH_ROWS", "DEFAULT_MEMORY_BYTES", "DEFAULT_TIMEOUT", "QueryLimits"]

#: Rows per batch of :func:`labelvault.query.query_reader`.
DEFAULT_BATCH_ROWS: Final = 64 * 1024

#: Seconds one query may run unless told otherwise.
DEFAULT_TIMEOUT: Final = 60.0

#: Memory DuckDB may use for one query unless told otherwise.
DEFAULT_MEMORY_BYTES: Final = 2 * 1024**3


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class QueryLimits:
    """What one query may use: wall-clock ``timeout`` seconds, ``memory_bytes``, ``threads``."""

    timeout: float = DEFAULT_TIMEOUT
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    threads: int = field(default_factory=_default_threads)

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigurationError(f"query timeout must be above 0 seconds, not {self.timeout}")
        if self.memory_bytes < 16 * 1024**2:
            raise ConfigurationError(
                f"query memory limit must be at least 16 MiB, not {self.memory_bytes} bytes"
            )
        if self.threads < 1:
            raise ConfigurationError(f"query threads must be at least 1, not {self.threads}")
