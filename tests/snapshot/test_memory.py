"""The format takes Arrow's buffers from the system allocator unless the process chose a pool,
and keeps glibc's malloc to a few arenas unless the process chose a number.

Both are process-wide, so each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from labelvault.snapshot.memory import ARENA_SETTING, MALLOC_ARENAS, POOL_SETTING, on_glibc

_PROBE = (
    "import pyarrow as pa; before = pa.default_memory_pool().backend_name; "
    "import labelvault.snapshot.reader; "
    "print(before, pa.default_memory_pool().backend_name)"
)


def _run(
    code: str, setting: str, value: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the environment ``setting`` set to ``value``
    (or unset, for ``None``)."""
    env = {name: val for name, val in os.environ.items() if name != setting}
    if value is not None:
        env[setting] = value
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )


def _pools(setting: str | None) -> list[str]:
    return _run(_PROBE, POOL_SETTING, setting).stdout.split()


def test_reading_or_writing_a_version_uses_the_system_allocator() -> None:
    before, after = _pools(None)
    assert before != "system"  # pyarrow's own default, which the format replaces
    assert after == "system"


@pytest.mark.parametrize("pool", ["jemalloc", "mimalloc"])
def test_a_pool_the_process_chose_is_kept(pool: str) -> None:
    assert _pools(pool) == [pool, pool]


# Eight threads allocate (and keep) some memory each, then glibc reports its arenas on stderr.
_ARENA_PROBE = """
import ctypes, sys, threading
if sys.argv[1] == "labelvault":
    import labelvault.snapshot.reader
both = threading.Barrier(9)
def work():
    held = [bytearray(4096) for _ in range(64)]
    both.wait()
    both.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
both.wait()
ctypes.CDLL(None).malloc_stats()
both.wait()
for thread in threads:
    thread.join()
"""


def _arenas(importing: str, setting: str | None = None) -> int:
    done = _run(_ARENA_PROBE, ARENA_SETTING, setting, importing)
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


needs_glibc = pytest.mark.skipif(not on_glibc(), reason="arenas are glibc's")


@needs_glibc
def test_threads_of_a_process_that_reads_versions_share_a_few_arenas() -> None:
    assert _arenas("nothing") > MALLOC_ARENAS  # glibc's own default: an arena per thread
    assert _arenas("labelvault") == MALLOC_ARENAS


@needs_glibc
def test_an_arena_limit_the_process_chose_is_kept() -> None:
    assert _arenas("labelvault", "5") == 5
