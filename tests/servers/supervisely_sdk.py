"""The real Supervisely SDK, in a virtualenv of its own, run against the fake server.

The SDK's pins conflict with the project's (it wants its own httpx, fastapi, numpy …), so it
never enters the project's environment: the first use installs ``supervisely[versioning]``
(the extra brings pyarrow, which makes ``version.create`` write the columnar v2.1.0 snapshot)
with uv into the repository's cache dir, under a file lock so two pytest processes never
install at once, and later uses find it there. ``LABELVAULT_SLY_SDK_CACHE`` moves the cache.

:func:`run_driver` runs ``tests/servers/sdk_driver.py`` in that venv: one step of the SDK
against a server URL and token, its answer as JSON, and the wall time of the whole command.
The SDK talks to the fake over real sockets, exactly as it would to an instance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The install helpers Label Studio's venv uses: the same lock, uv lookup and error report.
from devstack.venvs import file_lock, run_step, uv_command

SDK_VERSION = "6.74.51"
SDK_REQUIREMENT = f"supervisely[versioning]=={SDK_VERSION}"
REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("sdk_driver.py")

#: Installing the SDK's dependencies (opencv, scikit-image, pyarrow …) on a fresh machine.
INSTALL_TIMEOUT = 900.0


def cache_dir() -> Path:
    """Where the SDK venv lives (``LABELVAULT_SLY_SDK_CACHE`` overrides)."""
    override = os.environ.get("LABELVAULT_SLY_SDK_CACHE")
    return Path(override) if override else REPO / ".cache" / "supervisely-sdk"


def ensure_installed(cache: Path | None = None) -> Path:
    """The SDK's virtualenv, installed with uv when missing; returns the venv dir."""
    cache = cache or cache_dir()
    venv = cache / "venv"
    marker = venv / ".labelvault-installed"
    with file_lock(cache / "install.lock"):
        if marker.is_file() and marker.read_text().strip() == SDK_REQUIREMENT:
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        uv = uv_command()
        run_step(
            [*uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            what="uv venv",
            timeout=INSTALL_TIMEOUT,
        )
        run_step(
            [
                *uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv / "bin" / "python"),
                SDK_REQUIREMENT,
            ],
            what=f"installing {SDK_REQUIREMENT}",
            timeout=INSTALL_TIMEOUT,
        )
        marker.write_text(SDK_REQUIREMENT)
    return venv


def sdk_env(scratch: Path) -> dict[str, str]:
    """A clean environment for the SDK: no https probe of a plain-http server, no
    ``~/supervisely.env``, temp files under ``scratch``."""
    scratch.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK": "1",
        # A failed call is a failed test: no minutes of retries against a local fake.
        "SUPERVISELY_PUBLIC_API_RETRIES": "2",
        "DO_NOT_TRACK": "1",
    }


@dataclass(frozen=True)
class DriverRun:
    """One driver command: its JSON answer, its wall time and the child's peak RSS."""

    answer: dict[str, Any]
    wall: float
    peak_rss_mb: float


def run_driver(
    venv: Path,
    step: str,
    *,
    url: str,
    token: str,
    scratch: Path,
    timeout: float = 600.0,
    **args: Any,
) -> DriverRun:
    """Run ``sdk_driver.py <step>`` in the SDK venv; raises with its output when it fails.

    ``args`` go to the driver as one JSON object. The peak RSS is the driver's own (its
    ``VmHWM`` as it exits: the whole command, import included), so it depends neither on this
    process's size nor on what other children it ran before.
    """
    out = scratch / f"answer-{step}-{time.monotonic_ns()}.json"
    cmd = [
        str(venv / "bin" / "python"),
        str(DRIVER),
        step,
        "--url",
        url,
        "--token-env",
        "SLY_FAKE_TOKEN",
        "--args",
        json.dumps(args),
        "--out",
        str(out),
    ]
    env = sdk_env(scratch)
    env["SLY_FAKE_TOKEN"] = token
    started = time.monotonic()
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        process.kill()
        stdout, stderr = process.communicate()
        raise RuntimeError(
            f"SDK driver {step} timed out\n{stdout[-3000:]}\n{stderr[-3000:]}"
        ) from exc
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(
            f"SDK driver {step} failed ({process.returncode}):\n{stdout[-3000:]}\n{stderr[-5000:]}"
        )
    answer = json.loads(out.read_text())
    out.unlink()
    return DriverRun(answer=answer, wall=wall, peak_rss_mb=float(answer["peak_rss_mb"]))


@pytest.fixture(scope="session")
def supervisely_sdk() -> Path:
    """The SDK's venv (installed on first use)."""
    return ensure_installed()
