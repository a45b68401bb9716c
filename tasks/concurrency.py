"""The per-project concurrency limit that keeps two runs off one project.

The catalog's lease is the hard guarantee (a second capture waits for it or fails); this limit
makes the second run queue in Prefect, visibly, instead of holding a worker while it waits.
Prefect does not create a limit on first use (and silently skips a missing one), so the limit is
created here before it is taken, and taken with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def project_limit_name(platform: str, project_id: str) -> str:
    """The global concurrency limit's name for one project."""
    return f"labelvault-project-{platform}-{project_id}"


def ensure_limit(name: str, limit: int = 1) -> None:
    """Create the global concurrency limit ``name`` unless it exists."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit)
                )


@contextmanager
def project_slot(
    platform: str, project_id: str, *, timeout_seconds: float = 3600
) -> Iterator[None]:
    """Hold the project's single slot for the duration of the block."""
    name = project_limit_name(platform, project_id)
    ensure_limit(name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        yield
