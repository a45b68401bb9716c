"""The bridge's limits and their defaults."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from labelvault.settings import PlatformConnection

if TYPE_CHECKING:
    pass


#: The header that carries the shared secret.
SECRET_HEADER: Final = "X-Labelvault-Secret"
#: Webhook bodies larger than this are refused with 413 (annotation events are a few KiB).
DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
#: A project's second change within this many seconds emits no second event.
DEFAULT_DEDUP_SECONDS: Final = 5.0
#: Tokens a source (client address + connection) earns per second...
DEFAULT_RATE_PER_SECOND: Final = 10.0
#: ... and how many it may spend at once (a burst of webhooks after a bulk edit).
DEFAULT_RATE_BURST: Final = 50
#: How long an answer of the platform about a project's existence is reused.
DEFAULT_PROJECT_CACHE_SECONDS: Final = 60.0
MIN_SECRET_LENGTH: Final = 16
#: Rate buckets, dedup entries and project answers kept at most (oldest go first).
MAX_ENTRIES: Final = 10_000
#: Query parameter names (lowercased) that look like credentials.
CREDENTIAL_NAME = re.compile(r"secret|token|passw|pwd|key|auth|signature|credential|session")
PREFECT_CLOUD_PATH = re.compile(r"/api/accounts/[^/]+/workspaces/[^/]+")

#: Asks whether ``project_id`` exists on ``connection``'s platform (may block; run in a thread).
ProjectExists = Callable[[PlatformConnection, str], bool]
