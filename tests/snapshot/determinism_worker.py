"""Write a synthetic project in this process and print its chunk keys as JSON.

Run as ``python -m tests.snapshot.determinism_worker <batch_rows> <items>``; the determinism
test starts it in fresh interpreters (other hash seeds) and compares the outputs.
"""

from __future__ import annotations

import json
import sys

from labelvault.storage.memory import MemoryStore
from tests.snapshot.helpers import write_version
from tests.strategies import synthetic_project

TARGET_CHUNK_BYTES = 32 * 1024


def chunk_keys(batch_rows: int, items: int) -> dict[str, object]:
    """The chunk keys per table and the content hash of the synthetic project."""
    manifest = write_version(
        MemoryStore(),
        synthetic_project(range(items), annotations_per_item=5, batch_rows=batch_rows),
        target_chunk_bytes=TARGET_CHUNK_BYTES,
    )
    return {
        "tables": {name: [c.key for c in t.chunks] for name, t in manifest.tables.items()},
        "content_hash": manifest.content_hash,
    }


if __name__ == "__main__":
    print(json.dumps(chunk_keys(int(sys.argv[1]), int(sys.argv[2]))))
