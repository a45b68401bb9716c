"""What every labelvault task shares: the retry policy and opening the library's objects.

Each error is retried in exactly one layer. HTTP calls are retried inside the library's client;
a task is retried by Prefect only when it failed with a :class:`~labelvault.errors.TransientError`
(a platform or store that was away, a lease another run held). Terminal errors — bad
credentials, a missing project, corrupt data — fail the run at once.
"""

from __future__ import annotations

from typing import Any

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
