"""``make demo`` end to end on a small project, and the demo's own failure paths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from demo.run import DemoFailed, Shell, main

REPO = Path(__file__).resolve().parents[1]


def _clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("LABELVAULT_")}


@pytest.mark.slow
def test_demo_runs_end_to_end_and_the_round_trip_hash_matches(tmp_path: Path) -> None:
    store = tmp_path / "demo-store"
    done = subprocess.run(
        [sys.executable, "-m", "demo.run", "--images-per-dataset", "3", "--store", str(store)],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=240,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    commands = re.findall(r"^\$ labelvault (\w+)", out, re.MULTILINE)
    assert commands == [
        "create",
        "create",
        "create",
        "versions",
        "diff",
        "query",
        "restore",
        "create",
        "expire",
    ]
    assert "created version 1 of supervisely project" in out
    assert "created version 2 of supervisely project" in out
    assert "no change since version 2" in out
    assert "dry run: nothing was deleted" in out
    source = re.search(r"^  version 1 hash\s+([0-9a-f]{64})$", out, re.MULTILINE)
    edited = re.search(r"^  version 2 hash\s+([0-9a-f]{64})$", out, re.MULTILINE)
    restored = re.search(r"^  restored hash\s+([0-9a-f]{64})$", out, re.MULTILINE)
    assert source is not None
    assert restored is not None
    assert source.group(1) == restored.group(1)
    assert edited is not None
    assert edited.group(1) != source.group(1)
    assert "round trip         identical content" in out
    # the restored project's capture printed the same hash as version 1's capture
    assert out.count(f"content hash  {source.group(1)}") >= 2
    assert (store / "supervisely").is_dir()


def test_demo_refuses_to_wipe_a_folder_that_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    assert main(["--store", str(tmp_path), "--images-per-dataset", "1"]) == 1
    assert precious.read_text() == "keep me"
    assert "not wiping it" in capsys.readouterr().err


def test_a_failing_command_stops_the_demo(tmp_path: Path) -> None:
    shell = Shell({**_clean_env(), "LABELVAULT_STORE_URL": str(tmp_path)})
    with pytest.raises(DemoFailed, match=r"`labelvault versions 1` exited with code 2"):
        shell.labelvault("versions", "1")  # no server URL: a configuration error
