"""The format takes Arrow's buffers from the system allocator unless the process chose a pool.

The pool is process-wide, so each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from labelvault.snapshot.memory import POOL_SETTING

_PROBE = (
    "import pyarrow as pa; before = pa.default_memory_pool().backend_name; "
    "import labelvault.snapshot.reader; "
    "print(before, pa.default_memory_pool().backend_name)"
)


def _pools(setting: str | None) -> list[str]:
    env = {name: value for name, value in os.environ.items() if name != POOL_SETTING}
    if setting is not None:
        env[POOL_SETTING] = setting
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_reading_or_writing_a_version_uses_the_system_allocator() -> None:
    before, after = _pools(None)
    assert before != "system"  # pyarrow's own default, which the format replaces
    assert after == "system"


@pytest.mark.parametrize("pool", ["jemalloc", "mimalloc"])
def test_a_pool_the_process_chose_is_kept(pool: str) -> None:
    assert _pools(pool) == [pool, pool]
