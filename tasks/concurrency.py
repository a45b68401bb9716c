"""The per-project concurrency limit that keeps two runs off one project.

The catalog's lease is the hard guarantee (a second capture waits for it or fails); this limit
makes the second run wait in Prefect, visibly: it logs that it waits and for which project, its
state is named ``AwaitingProjectSlot`` while it waits, and it holds no platform slot meanwhile
(platform slots are taken by the tasks inside the block). Prefect does not create a limit on
first use (and silently skips a missing one), so the limit is created here before it is taken,
and taken with ``strict=True``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import Running

#: The state name a run shows while it waits for its project.
WAITING_STATE = "AwaitingProjectSlot"
#: How long a run waits for its project before it fails, by default.
DEFAULT_WAIT_SECONDS = 6 * 3600.0


class ProjectBusyError(RuntimeError):
    """Another run held the project for longer than this run was willing to wait."""


def project_limit_name(platform: str, project_id: str) -> str:
    """The global concurrency limit's name for one project."""
    return f"labelvault-project-{platform}-{project_id}"


def ensure_limit(name: str, limit: int = 1) -> GlobalConcurrencyLimitResponse:
    """Create the global concurrency limit ``name`` unless it exists; return it as it is now."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit)
                )
            return client.read_global_concurrency_limit_by_name(name)


def _name_run_state(name: str) -> None:
    """Rename the current run's Running state (what the UI shows next to the run)."""
    run_id = flow_run.get_id()
    if not run_id:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Running(name=name), force=True)


@contextmanager
def project_slot(
    platform: str, project_id: str, *, timeout_seconds: float = DEFAULT_WAIT_SECONDS
) -> Iterator[None]:
    """Hold the project's single slot for the duration of the block.

    When another run holds it, say so (log line and state name) and wait up to
    ``timeout_seconds``; then fail with one line naming the project.
    """
    name = project_limit_name(platform, project_id)
    limit = ensure_limit(name)
    logger = get_run_logger()
    busy = limit.active_slots >= limit.limit
    if busy:
        logger.info(
            "waiting for project %s/%s: another run is working on it (limit %s); "
            "this run waits up to %.0f s and holds no platform slot meanwhile",
            platform,
            project_id,
            name,
            timeout_seconds,
        )
        _name_run_state(WAITING_STATE)
    started = time.monotonic()
    stack = ExitStack()
    try:
        stack.enter_context(
            concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds)
        )
    except TimeoutError:
        raise ProjectBusyError(
            f"project {platform}/{project_id} stayed busy for {timeout_seconds:.0f} s "
            f"(limit {name}): run again later, or look for a stuck run on that project"
        ) from None
    if busy:
        logger.info(
            "got project %s/%s after %.0f s", platform, project_id, time.monotonic() - started
        )
        _name_run_state("Running")
    with stack:
        yield
