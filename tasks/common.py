"""What every labelvault task shares: the retry policy and opening the library's objects.

Each error is retried in exactly one layer. HTTP calls are retried inside the library's client;
a task is retried by Prefect only when it failed with a :class:`~labelvault.errors.TransientError`
(a platform or store that was away, a lease another run held). Terminal errors — bad
credentials, a missing project, corrupt data — fail the run at once.
"""

from __future__ import annotations

import time
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.tasks import exponential_backoff

from labelvault.errors import is_transient

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
    return isinstance(exception, BaseException) and is_transient(exception)


def platform_tag(platform: str) -> str:
    """The tag whose concurrency limit caps parallel calls to one platform."""
    return f"platform:{platform}"


class ProgressArtifact:
    """A Prefect progress artifact, updated at most every ``every_seconds``."""

    def __init__(self, description: str, every_seconds: float = 2.0) -> None:
        self.artifact_id = create_progress_artifact(progress=0.0, description=description)
        self.every_seconds = every_seconds
        self.next_update = 0.0

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
