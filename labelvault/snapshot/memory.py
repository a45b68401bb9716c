"""How a process that reads or writes versions allocates: Arrow's pool, and C's arenas.

Reading or writing a version allocates and frees one chunk's worth of buffers after another.
pyarrow's default pool (mimalloc in its wheels) keeps the memory it freed for reuse, in
segments per size class, so a process's resident memory grows far past what it holds at any
time: reading 10^6 annotations held at most 39 MB of Arrow buffers and grew resident memory by
about 125 MB with mimalloc, by about 45 MB with the system allocator, at the same speed. The
format therefore uses the system allocator, unless the process chose a pool itself through
``ARROW_DEFAULT_MEMORY_POOL`` (Arrow's own setting), which is then left as it is.

The system allocator is glibc's ``malloc`` on Linux, and so are Python's own objects above
512 bytes (page texts, rows' lists). glibc gives each new thread an arena of its own, up to 8
per core, and an arena keeps what was freed in it: a capture or restore with partitions side
by side (each its own thread, each with a reading-ahead thread) grew by one arena's leftovers
per thread. At ``--parallel 4`` on 10^5 figures, two arenas took peak RSS from 418 MB to
332 MB at the same speed. The process therefore keeps to :data:`MALLOC_ARENAS` arenas, unless
it set ``MALLOC_ARENA_MAX`` (glibc's own setting) itself.
"""

from __future__ import annotations

import ctypes
import os
from typing import Final

import pyarrow as pa

__all__ = [
    "ARENA_SETTING",
    "MALLOC_ARENAS",
    "POOL_SETTING",
    "on_glibc",
    "use_few_arenas",
    "use_lean_pool",
]

#: Arrow's environment setting naming its default pool (``system``, ``jemalloc``, ``mimalloc``).
POOL_SETTING: Final = "ARROW_DEFAULT_MEMORY_POOL"
#: glibc's environment setting for the most arenas ``malloc`` makes.
ARENA_SETTING: Final = "MALLOC_ARENA_MAX"
#: The most arenas glibc's ``malloc`` makes in a process that reads or writes versions.
MALLOC_ARENAS: Final = 2
#: ``mallopt``'s parameter number for the arena limit (``M_ARENA_MAX`` in glibc's malloc.h).
_M_ARENA_MAX: Final = -8


def use_lean_pool() -> None:
    """Make the system allocator Arrow's default pool, unless ``ARROW_DEFAULT_MEMORY_POOL`` is
    set. Buffers already allocated stay with the pool that allocated them."""
    if os.environ.get(POOL_SETTING):
        return
    pa.set_memory_pool(pa.system_memory_pool())


def use_few_arenas() -> bool:
    """Keep glibc's ``malloc`` to :data:`MALLOC_ARENAS` arenas from now on, unless
    ``MALLOC_ARENA_MAX`` is set; whether the limit was set here (not on other C libraries)."""
    if os.environ.get(ARENA_SETTING) or not on_glibc():
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS))


def on_glibc() -> bool:
    """Whether this process's C library is glibc."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # a system that does not know the name
        return False
