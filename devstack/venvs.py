"""Installing a server into a virtualenv of its own: a file lock, uv, and steps that fail loudly."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (so two processes never install at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def uv_command() -> list[str]:
    """How to run uv here: on PATH, in ``$UV``, or as this Python's module."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run(
        [sys.executable, "-m", "uv", "--version"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    raise RuntimeError("uv is needed to install a server's virtualenv; run `make bootstrap` first")


def run_step(
    cmd: list[str], *, what: str, timeout: float, env: dict[str, str] | None = None
) -> None:
    """Run an install step; on failure raise with the tail of its output."""
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
