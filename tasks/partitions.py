"""Running partition tasks: where they run (the flow's threads or Dask) and how many at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from uuid import UUID

from prefect import Task
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import TaskRunner

from labelvault.errors import ConfigurationError
from labelvault.platforms.base import Partition
from tasks.common import ProgressArtifact

__all__ = [
    "PARTITION_POLL_SECONDS",
    "partition_progress",
    "partition_runner",
    "run_partitions",
]

#: How often a flow waiting for its partitions looks at them (and renews what it holds).
PARTITION_POLL_SECONDS = 1.0

_R = TypeVar("_R")


def partition_runner(dask: str, workers: int) -> TaskRunner[Any] | None:
    """Where partition tasks run: ``""`` in the flow's own threads (None), ``"local"`` on a
    Dask cluster of ``workers`` processes started for the run, else on the Dask scheduler at
    that address (``tcp://host:8786``); its workers need labelvault and the store's settings
    reach them as values, never as open clients."""
    if not dask:
        return None
    from prefect_dask.task_runners import DaskTaskRunner  # noqa: PLC0415 - only Dask needs it

    if dask == "local":
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    if not dask.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://")):
        raise ConfigurationError(
            f"Dask cluster {dask!r} is not an address; give tcp://host:8786, 'local' for a "
            "cluster of this run's own, or leave it empty"
        )
    return DaskTaskRunner(address=dask)


def partition_progress(progress_id: UUID | None) -> Callable[[float], None]:
    """Move the run's progress artifact ``progress_id`` (if any) as partitions finish."""
    if progress_id is None:
        return lambda fraction: None
    artifact = ProgressArtifact(progress_id, every_seconds=0)
    return artifact.update


def run_partitions(
    task: Task[..., _R],
    partitions: Iterable[Partition],
    arguments: Callable[[Partition], Mapping[str, Any]],
    *,
    limit: int,
    runner: TaskRunner[Any] | None,
    tick: Callable[[], None] = lambda: None,
    progress: Callable[[float], None] = lambda fraction: None,
) -> dict[str, _R]:
    """Run ``task`` once per partition (``arguments`` gives its parameters), at most ``limit``
    at a time, on ``runner`` (entered by the caller) or in the flow's threads; calls ``tick``
    while they run and ``progress`` with the share of the partitions' weight (their count,
    when none has a weight) done. Returns the results by partition key; the first failure
    is raised."""
    planned = list(partitions)
    weights = {part.key: part.weight for part in planned}
    if not any(weights.values()):
        weights = dict.fromkeys(weights, 1)
    total = sum(weights.values()) or 1

    def submit(partition: Partition) -> PrefectFuture[_R]:
        values = dict(arguments(partition))
        if runner is None:
            submitted: PrefectFuture[_R] = task.submit(**values)
            return submitted
        future: PrefectFuture[_R] = runner.submit(task, values)
        return future

    queue = list(planned)
    running: dict[PrefectFuture[_R], str] = {}
    results: dict[str, _R] = {}
    while queue or running:
        while queue and len(running) < limit:
            partition = queue.pop(0)
            running[submit(partition)] = partition.key
        finished = wait(list(running), timeout=PARTITION_POLL_SECONDS).done
        for future in finished:
            results[running.pop(future)] = future.result()
        if finished:
            progress(sum(weights[key] for key in results) / total)
        tick()
    return results
