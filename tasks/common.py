"""What every labelvault task shares: the retry policy and opening the library's objects.

Each error is retried in exactly one layer. HTTP calls are retried inside the library's client;
a task is retried by Prefect only when it failed with a :class:`~labelvault.errors.TransientError`
(a platform or store that was away, a lease another run held). Terminal errors — bad
credentials, a missing project, corrupt data — fail the run at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from labelvault.errors import RestoreError, is_transient

#: Task options for coarse steps: 3 retries, exponential backoff with jitter, transient only.
RETRY_TRANSIENT: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.5,
}


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry only when the task failed with a transient error.

    A plain function on purpose: Prefect ignores callables that are not functions.
    """
    exception = state.result(raise_on_failure=False)
    if isinstance(exception, RestoreError):  # a restore stopped by a transient error resumes
        return exception.transient
    return isinstance(exception, BaseException) and is_transient(exception)


#: Upper bounds, so a stuck call fails the run instead of holding a worker for ever.
CAPTURE_TIMEOUT_SECONDS = 6 * 3600
RESTORE_TIMEOUT_SECONDS = 12 * 3600
STEP_TIMEOUT_SECONDS = 3600
FLOW_TIMEOUT_SECONDS = 24 * 3600


def project_key(project_id: str | int) -> str:
    """A project id given as a number or a string, as the catalog keys it."""
    text = str(project_id).strip()
    if not text:
        raise ValueError("project_id is empty: give the project's id on the platform, e.g. 5007")
    return text


def tag_this_run(*tags: str) -> None:
    """Add ``tags`` to the current flow run (the UI filters runs by them)."""
    run_id = flow_run.get_id()
    if not run_id:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(run_id)).tags
        client.update_flow_run(UUID(run_id), tags=sorted({*current, *tags}))


def run_tags(platform: str, project_id: str) -> tuple[str, str]:
    """The tags of a run on one project: its platform and ``<platform>/<project id>``."""
    return platform, f"project:{platform}/{project_id}"


class _ToRunLog(logging.Handler):
    """Forwards library records to the run's logger, whatever thread they come from."""

    def __init__(self, run_logger: logging.LoggerAdapter[logging.Logger]) -> None:
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        self.run_logger.log(record.levelno, "%s: %s", record.name, record.getMessage())


@contextmanager
def library_logs_in_run(name: str = "labelvault") -> Iterator[None]:
    """Send the library's log lines (``labelvault.*``, INFO and up) to this run's logs.

    The library calls platforms from worker threads that carry no Prefect context, so
    ``PREFECT_LOGGING_EXTRA_LOGGERS`` alone loses their lines; the run's logger adapter carries
    the run ids with every record instead.
    """
    library = logging.getLogger(name)
    handler = _ToRunLog(get_run_logger())  # type: ignore[arg-type]
    previous = library.level
    library.addHandler(handler)
    if library.getEffectiveLevel() > logging.INFO:
        library.setLevel(logging.INFO)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(previous)


def platform_tag(platform: str) -> str:
    """The tag whose concurrency limit caps parallel calls to one platform."""
    return f"platform:{platform}"


class ProgressArtifact:
    """A Prefect progress artifact, updated at most every ``every_seconds``.

    The flow creates it once (:meth:`create`) and hands its id to the task, so every retry of
    the task moves the same bar instead of leaving one stuck bar per attempt.
    """

    def __init__(self, artifact_id: UUID, every_seconds: float = 2.0) -> None:
        self.artifact_id = artifact_id
        self.every_seconds = every_seconds
        self.next_update = 0.0

    @classmethod
    def create(cls, description: str) -> UUID:
        """A new bar at 0 % for the current run; returns its id."""
        return cast(UUID, create_progress_artifact(progress=0.0, description=description))

    def update(self, fraction: float | None) -> None:
        """Show ``fraction`` (0..1) done; ``None`` (total unknown) shows nothing new."""
        now = time.monotonic()
        if fraction is None or now < self.next_update:
            return
        self.next_update = now + self.every_seconds
        update_progress_artifact(self.artifact_id, progress=round(100 * min(fraction, 1.0), 1))

    def done(self) -> None:
        """Show 100 %."""
        update_progress_artifact(self.artifact_id, progress=100.0)
