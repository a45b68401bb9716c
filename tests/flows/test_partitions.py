"""Running partition tasks: at most so many at once, results by partition, progress by weight."""

from __future__ import annotations

import threading

import pytest
from prefect import flow, task

from labelvault.platforms.base import Partition
from tasks.partitions import run_partitions

_lock = threading.Lock()
_running = {"now": 0, "most": 0}


@task(name="square")
def square(value: int) -> int:
    with _lock:
        _running["now"] += 1
        _running["most"] = max(_running["most"], _running["now"])
    try:
        if value < 0:
            raise ValueError(f"no square of {value} today")
        return value * value
    finally:
        with _lock:
            _running["now"] -= 1


def _parts(*values: int) -> list[Partition]:
    return [
        Partition(key=f"p{index}", label=f"part {index}", weight=abs(value), spec={"v": value})
        for index, value in enumerate(values)
    ]


def test_results_come_by_partition_and_progress_by_weight(prefect_harness: None) -> None:
    heard: list[float] = []
    parts = _parts(1, 2, 3, 4)

    @flow
    def run() -> dict[str, int]:
        return run_partitions(
            square,
            parts,
            lambda part: {"value": part.spec["v"]},
            limit=2,
            runner=None,
            progress=heard.append,
        )

    _running["most"] = 0
    assert run() == {"p0": 1, "p1": 4, "p2": 9, "p3": 16}
    assert 1 <= _running["most"] <= 2
    assert heard == sorted(heard)
    assert heard[-1] == 1.0
    # each a sum of finished weights over 10: partitions finish in any order
    assert {round(fraction * 10) for fraction in heard} <= set(range(1, 11))


def test_the_first_failure_is_raised(prefect_harness: None) -> None:
    @flow
    def run() -> dict[str, int]:
        return run_partitions(
            square.with_options(retries=0),
            _parts(2, -1, 3),
            lambda part: {"value": part.spec["v"]},
            limit=1,
            runner=None,
        )

    with pytest.raises(ValueError, match="no square of -1"):
        run()
