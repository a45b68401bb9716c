"""``verify``, ``unlock`` and ``show`` on damaged versions, through the real command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner, Result

from labelvault.catalog import lease_key
from labelvault.cli import app
from tests.test_cli import Cli, cli

__all__ = ["cli"]


def _report(cli: Cli, *args: str, code: int) -> Result:
    """A report command: it prints its report on stdout and exits ``code``."""
    result = CliRunner().invoke(app, list(args), env=cli.env())
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert cli.fake.token not in result.output
    return result


def _chunk_paths(cli: Cli, version: int) -> list[Path]:
    with cli.vault() as vault:
        manifest = vault.manifest(vault.version(cli.ref, version))
    return [cli.store / c.key for t in manifest.tables.values() for c in t.chunks]


def test_verify_finds_a_flipped_chunk_and_show_says_so(cli: Cli) -> None:
    cli.capture()
    assert "ok" in cli.run("verify", cli.project, "--deep").stdout
    assert json.loads(cli.run("--json", "verify").stdout)["ok"] is True
    chunk = _chunk_paths(cli, 1)[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))

    assert "ok" in cli.run("verify", cli.project).stdout  # records and manifests are fine
    result = _report(cli, "verify", cli.project, "--deep", code=1)
    assert "damage found in project" in result.stderr
    assert "sha256" in result.stdout
    result = cli.run("show", cli.project, "1", "--deep", code=1)
    assert "version 1 is damaged" in result.stderr
    assert chunk.name in result.stderr


def test_show_says_when_a_chunk_is_missing(cli: Cli) -> None:
    cli.capture()
    cli.run("show", cli.project, "1")
    _chunk_paths(cli, 1)[-1].unlink()
    result = cli.run("show", cli.project, "1", code=1)
    assert "missing" in result.stderr
    result = _report(cli, "--json", "verify", cli.project, "1", "--deep", code=1)
    assert json.loads(result.stdout.split("\n}\n")[0] + "\n}")["ok"] is False


def test_unlock_refuses_a_live_holder_unless_forced(cli: Cli) -> None:
    cli.capture()
    assert "is not locked" in cli.run("unlock", cli.project).stdout
    with cli.vault() as vault:  # held by this (live) process
        vault.catalog.reserve(cli.ref)
        assert vault.store.exists(lease_key(cli.ref))
    result = cli.run("unlock", cli.project, code=1)
    assert str(os.getpid()) in result.stderr
    assert "--force" in result.stderr
    result = cli.run("unlock", cli.project, "--force")
    assert "unlocked" in result.stdout
    assert "is not locked" in cli.run("unlock", cli.project).stdout


def test_restore_of_a_damaged_version_creates_nothing(cli: Cli) -> None:
    cli.capture()
    chunk = _chunk_paths(cli, 1)[0]
    data = bytearray(chunk.read_bytes())
    data[-20] ^= 0x01
    chunk.write_bytes(bytes(data))
    projects = set(cli.fake.projects)
    calls = len(cli.fake.calls)
    result = cli.run("restore", cli.project, "1", code=1)
    assert "is damaged" in result.stderr
    assert chunk.name in result.stderr
    assert "nothing was restored" in result.stderr
    assert set(cli.fake.projects) == projects
    written = [m for m, _ in cli.fake.calls[calls:] if m.endswith((".add", ".bulk.add", ".update"))]
    assert written == []
