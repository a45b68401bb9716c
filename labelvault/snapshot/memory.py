"""Which allocator Arrow takes the format's buffers from.

Reading or writing a version allocates and frees one chunk's worth of buffers after another.
pyarrow's default pool (mimalloc in its wheels) keeps the memory it freed for reuse, in
segments per size class, so a process's resident memory grows far past what it holds at any
time: reading 10^6 annotations held at most 39 MB of Arrow buffers and grew resident memory by
about 125 MB with mimalloc, by about 45 MB with the system allocator, at the same speed. The
format therefore uses the system allocator, unless the process chose a pool itself through
``ARROW_DEFAULT_MEMORY_POOL`` (Arrow's own setting), which is then left as it is.
"""

from __future__ import annotations

import os
from typing import Final

import pyarrow as pa

__all__ = ["POOL_SETTING", "use_lean_pool"]

#: Arrow's environment setting naming its default pool (``system``, ``jemalloc``, ``mimalloc``).
POOL_SETTING: Final = "ARROW_DEFAULT_MEMORY_POOL"


def use_lean_pool() -> None:
    """Make the system allocator Arrow's default pool, unless ``ARROW_DEFAULT_MEMORY_POOL`` is
    set. Buffers already allocated stay with the pool that allocated them."""
    if os.environ.get(POOL_SETTING):
        return
    pa.set_memory_pool(pa.system_memory_pool())
