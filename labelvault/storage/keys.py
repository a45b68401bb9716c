"""Object keys, as the storage backends see them (defined in :mod:`labelvault.keys`)."""

from __future__ import annotations

from labelvault.keys import (
    MAX_KEY_BYTES,
    join_key,
    safe_segment,
    unsafe_segment,
    validate_key,
    validate_prefix,
)

__all__ = [
    "MAX_KEY_BYTES",
    "join_key",
    "safe_segment",
    "unsafe_segment",
    "validate_key",
    "validate_prefix",
]
