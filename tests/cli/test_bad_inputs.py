"""Bad input through the real command line: one line on stderr, the right exit code, no
traceback, no secret.

Every case runs through ``cli.main`` in standalone mode, the path the ``labelvault`` script
and ``python -m labelvault`` take; a few also run as real processes, all at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from devstack.process import free_port
from labelvault.catalog import Catalog
from labelvault.cli import app
from labelvault.cli.boundary import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED
from labelvault.errors import RestoreError
from labelvault.vault import Vault
from tests.fakes.supervisely import FakeSupervisely, generate_rich_project

#: A token that must never be printed, in the environment and on the command line.
SECRET = "SECRET-xyz-0d1e2a7c"
#: An S3 secret key that must never be printed either.
S3_SECRET = "S3SECRET-k9w8q7"


@dataclass(frozen=True)
class Case:
    """One bad command line: what it runs, its exit code, and a phrase its one line has."""

    name: str
    args: tuple[str, ...]
    code: int
    says: str
    env: dict[str, str | None] = field(default_factory=dict)


def case(name: str, *args: str, code: int = EXIT_BAD_INPUT, says: str, **env: str | None) -> Case:
    return Case(name, args, code, says, env)


P = "{project}"  # the captured project; "{token}" in env: the fake server's real token
NO_S3_CREDENTIALS = {
    "LABELVAULT_STORE_S3_ENDPOINT_URL": "http://127.0.0.1:1",
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}

CASES = [
    # settings from the environment (pydantic ValidationError)
    case("http retries not a number", "create", P, says="LABELVAULT_HTTP_MAX_RETRIES",
         LABELVAULT_HTTP_MAX_RETRIES="abc"),
    case("http timeout negative", "create", P, says="LABELVAULT_HTTP_CONNECT_TIMEOUT",
         LABELVAULT_HTTP_CONNECT_TIMEOUT="-1"),
    case("s3 addressing style unknown", "versions", P,
         says="LABELVAULT_STORE_S3_ADDRESSING_STYLE", LABELVAULT_STORE_S3_ADDRESSING_STYLE="bogus"),
    case("label studio page size zero", "--platform", "labelstudio", "create", P,
         says="LABELVAULT_LABELSTUDIO_PAGE_SIZE", LABELVAULT_LABELSTUDIO_PAGE_SIZE="0",
         LABELVAULT_LABELSTUDIO_URL="http://127.0.0.1:9", LABELVAULT_LABELSTUDIO_TOKEN=SECRET),
    # server URLs and ports
    case("port not a number", "--server-url", "http://host:abc", "versions", P,
         says="--server-url"),
    case("port too large", "--server-url", "http://host:99999", "versions", P,
         says="--server-url"),
    case("port zero", "--server-url", "http://host:0", "versions", P, says="bad port"),
    case("not a url", "--server-url", "not a url", "versions", P, says="--server-url"),
    case("no scheme", "--server-url", "example.com", "versions", P, says="http:// or https://"),
    case("ftp scheme", "--server-url", "ftp://example.com", "versions", P,
         says="http:// or https://"),
    case("no host", "--server-url", "http://", "versions", P, says="no host"),
    case("bad url from the environment", "versions", P, says="LABELVAULT_SUPERVISELY_URL",
         LABELVAULT_SUPERVISELY_URL="http://host:abc"),
    case("token inside the url", "--server-url", f"http://{SECRET}:abc", "create", P,
         says="--server-url"),
    case("credentials inside the url", "--server-url", f"https://user:{SECRET}@h:1x", "create",
         P, says="--server-url"),
    case("server url missing", "versions", P, says="LABELVAULT_SUPERVISELY_URL",
         LABELVAULT_SUPERVISELY_URL=None),
    case("token missing", "create", P, says="LABELVAULT_SUPERVISELY_TOKEN",
         LABELVAULT_SUPERVISELY_TOKEN=None),
    # platforms
    case("unknown platform flag", "--platform", "encord", "versions", P, says="--platform"),
    case("unknown platform variable", "versions", P, says="LABELVAULT_PLATFORM",
         LABELVAULT_PLATFORM="encord"),
    # the command line itself
    case("unknown global option", "--bogus", "versions", P, says="No such option"),
    case("unknown command option", "versions", P, "--bogus", says="No such option"),
    case("unknown command", "frobnicate", says="No such command"),
    case("unknown option value", "query", P, "SELECT 1", "--format", "xml", says="--format"),
    case("missing argument", "show", P, says="Missing argument"),
    case("max rows zero", "query", P, "SELECT 1", "--max-rows", "0", says="--max-rows"),
    case("webhook port too large", "webhooks", "serve", "--port", "70000", "--secret",
         "s" * 20, "--prefect-api-url", "http://127.0.0.1:9/api", says="--port"),
    case("webhook prefect url", "webhooks", "serve", "--secret", "s" * 20,
         "--prefect-api-url", "nope", says="--prefect-api-url"),
    # versions
    case("version not a version", "show", P, "abc", says="VERSION 'abc'"),
    case("version zero", "show", P, "0", says="start at 1"),
    case("version negative", "show", P, "-1", says="-1"),
    case("version negative after --", "show", "--", P, "-1", says="VERSION '-1'"),
    case("diff old not a version", "diff", P, "abc", says="OLD"),
    case("query version not a version", "query", P, "SELECT 1", "--version", "x",
         says="--version"),
    case("restore version not a version", "restore", P, "abc", says="VERSION"),
    case("nonexistent version", "show", P, "7", code=EXIT_FAILED, says="has no version 7"),
    case("nonexistent version id", "show", P, "00000000-0000-4000-8000-000000000000",
         code=EXIT_FAILED, says="labelvault versions"),
    case("project id empty", "versions", "", says="project id is empty"),
    case("project id blank", "show", "  ", "1", says="project id is empty"),
    # stores
    case("store scheme unknown", "--store", "ftp://x/y", "versions", P,
         says="unknown store URL scheme 'ftp'"),
    case("memory store flag", "--store", "memory://x", "create", P, says="--store"),
    case("memory store variable", "versions", P, says="LABELVAULT_STORE_URL",
         LABELVAULT_STORE_URL="memory://x"),
    case("s3 without credentials", "--store", "s3://bucket/x", "versions", P,
         code=EXIT_FAILED, says="LABELVAULT_STORE_S3", **NO_S3_CREDENTIALS),
    case("s3 unreachable", "--store", "s3://bucket/x", "versions", P, code=EXIT_FAILED,
         says="reachable", **{**NO_S3_CREDENTIALS, "LABELVAULT_STORE_S3_ACCESS_KEY": "key",
                              "LABELVAULT_STORE_S3_SECRET_KEY": S3_SECRET}),
    # expire
    case("keep last negative", "expire", P, "--keep-last", "-1", says="--keep-last"),
    case("keep younger than nan", "expire", P, "--keep-younger-than", "nan",
         says="--keep-younger-than"),
    case("keep younger than inf", "expire", P, "--keep-younger-than", "inf",
         says="--keep-younger-than"),
    case("keep younger than huge", "expire", P, "--keep-younger-than", "1e300",
         says="--keep-younger-than"),
    case("keep younger than zero", "expire", P, "--keep-younger-than", "0",
         says="--keep-younger-than"),
    case("expire without a rule", "expire", P, says="--keep-last"),
    # the platform says no
    case("server unreachable", "--server-url", "{down}", "create", P, code=EXIT_FAILED,
         says="reachable", LABELVAULT_HTTP_MAX_RETRIES="0", LABELVAULT_HTTP_CONNECTION_RETRIES="0"),
    case("wrong token", "--token", SECRET, "create", P, code=EXIT_FAILED,
         says="check the token"),
    case("unknown project", "create", "999999", code=EXIT_FAILED, says="check the project id",
         LABELVAULT_SUPERVISELY_TOKEN="{token}"),
]  # fmt: skip


@dataclass
class Setup:
    fake: FakeSupervisely
    url: str
    project: str
    store: Path

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        """A clean environment: the fake server, a secret token, and ``overrides``."""
        values: dict[str, str | None] = {
            name: None for name in os.environ if name.startswith("LABELVAULT_")
        }
        values |= {
            "LABELVAULT_STORE_URL": str(self.store),
            "LABELVAULT_SUPERVISELY_URL": self.url,
            "LABELVAULT_SUPERVISELY_TOKEN": SECRET,
            "COLUMNS": "200",
        }
        real = {k: self.fake.token if v == "{token}" else v for k, v in overrides.items()}
        return values | real

    def args(self, args: tuple[str, ...]) -> list[str]:
        down = f"http://127.0.0.1:{free_port()}"
        return [arg.format(project=self.project, down=down) for arg in args]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fake = FakeSupervisely(default_per_page=50)
    fake.echo_token_in_errors = True  # a server that echoes the token back in its errors
    rich = generate_rich_project(fake, images_per_dataset=1)
    with fake.serve() as url:
        found = Setup(fake, url, str(rich.project_id), tmp_path_factory.mktemp("cli") / "store")
        first = CliRunner().invoke(
            app,
            ["create", found.project],
            env=found.env(LABELVAULT_SUPERVISELY_TOKEN=fake.token),
        )
        assert first.exit_code == 0, first.output
        yield found


def assert_one_clean_line(result: Result, code: int, says: str, *secrets: str) -> str:
    """The exit code, one ``error:`` line on stderr naming ``says``, and nothing else."""
    output = result.stdout + result.stderr
    assert result.exit_code == code, (result.exit_code, output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in output
    for secret in secrets:
        assert secret not in output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert says in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line(setup: Setup, bad: Case) -> None:
    result = CliRunner().invoke(app, setup.args(bad.args), env=setup.env(**bad.env))
    assert_one_clean_line(result, bad.code, bad.says, SECRET, S3_SECRET, setup.fake.token)


def test_a_bad_input_in_json_mode_is_a_json_object_too(setup: Setup) -> None:
    result = CliRunner().invoke(
        app, ["--json", "--token", SECRET, "show", setup.project, "abc"], env=setup.env()
    )
    assert result.exit_code == EXIT_BAD_INPUT
    assert len(result.stderr.splitlines()) == 1
    answer = json.loads(result.stdout)
    assert answer == {"error": result.stderr.strip().removeprefix("error: "), "exit_code": 2}
    assert "VERSION 'abc'" in answer["error"]


def test_a_parse_error_in_json_mode_is_a_json_object_too(setup: Setup) -> None:
    result = CliRunner().invoke(app, ["--json", "--bogus"], env=setup.env())
    assert result.exit_code == EXIT_BAD_INPUT
    assert json.loads(result.stdout)["exit_code"] == EXIT_BAD_INPUT


# --- interrupted and unexpected ----------------------------------------------------------------


def test_ctrl_c_exits_130_with_one_line(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Catalog, "list", interrupted)
    result = CliRunner().invoke(app, ["versions", setup.project], env=setup.env())
    line = assert_one_clean_line(result, EXIT_INTERRUPTED, "interrupted", SECRET)
    assert "--restore-id" not in line


def test_ctrl_c_during_a_restore_says_how_to_resume(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Vault, "restore", interrupted)
    result = CliRunner().invoke(
        app,
        ["restore", setup.project, "1", "--restore-id", "r-42"],
        env=setup.env(LABELVAULT_SUPERVISELY_TOKEN=setup.fake.token),
    )
    line = assert_one_clean_line(result, EXIT_INTERRUPTED, "interrupted", setup.fake.token)
    assert "--restore-id r-42" in line


def test_a_failed_restore_says_how_to_resume(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    def failed(*args: object, **kwargs: object) -> None:
        raise RestoreError(
            "the platform refused a dataset", project=setup.project, created_project="77"
        )

    monkeypatch.setattr(Vault, "restore", failed)
    result = CliRunner().invoke(
        app,
        ["restore", setup.project, "latest", "--restore-id", "r-43"],
        env=setup.env(LABELVAULT_SUPERVISELY_TOKEN=setup.fake.token),
    )
    line = assert_one_clean_line(result, EXIT_FAILED, "refused a dataset", setup.fake.token)
    assert "--restore-id r-43" in line


def test_an_unexpected_error_is_one_line_without_secrets(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom near {SECRET}\n  and a second line")

    monkeypatch.setattr(Catalog, "list", broken)
    result = CliRunner().invoke(app, ["versions", setup.project], env=setup.env())
    line = assert_one_clean_line(result, EXIT_FAILED, "unexpected RuntimeError", SECRET)
    assert "boom near *** and a second line" in line
    assert "report it" in line


def test_an_unexpected_error_of_a_secret_passed_as_a_flag_is_masked(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag_secret = "FLAG-SECRET-77aa"

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError(f"cannot use {flag_secret}")

    monkeypatch.setattr(Catalog, "list", broken)
    result = CliRunner().invoke(
        app, ["--token", flag_secret, "versions", setup.project], env=setup.env()
    )
    assert_one_clean_line(result, EXIT_FAILED, "unexpected ValueError", flag_secret)


# --- real processes ----------------------------------------------------------------------------

#: Run as ``python -m labelvault``, all at once: the exit codes the shell sees (one of each
#: kind: settings, URL, parser, missing version, store, number; the rest run in-process).
PROCESS_CASES = [
    c
    for c in CASES
    if c.name
    in {
        "http retries not a number",
        "port not a number",
        "unknown option value",
        "nonexistent version",
        "memory store flag",
        "keep younger than nan",
    }
]


def test_real_processes_exit_with_one_line(setup: Setup) -> None:
    assert len(PROCESS_CASES) == 6
    started: list[tuple[Case, subprocess.Popen[str]]] = []
    for bad in PROCESS_CASES:
        env = {k: v for k, v in {**os.environ, **setup.env(**bad.env)}.items() if v is not None}
        started.append(
            (
                bad,
                subprocess.Popen(
                    [sys.executable, "-m", "labelvault", *setup.args(bad.args)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    for bad, process in started:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == bad.code, (bad.name, process.returncode, stderr)
        assert stdout == "", (bad.name, stdout)
        assert "Traceback" not in stderr
        assert SECRET not in stdout + stderr
        lines = stderr.splitlines()
        assert len(lines) == 1, (bad.name, stderr)
        assert lines[0].startswith("error: ")
        assert bad.says in lines[0], (bad.name, lines[0])


def test_a_real_process_interrupted_by_sigint_exits_130(setup: Setup, tmp_path: Path) -> None:
    """Ctrl-C in a shell: the signal, not a simulated exception."""
    script = tmp_path / "interrupt.py"
    script.write_text(
        "import os, signal\n"
        "from labelvault.catalog import Catalog\n"
        "def list_then_interrupt(self, project):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return []\n"
        "Catalog.list = list_then_interrupt\n"
        "from labelvault.cli import run\n"
        "run()\n"
    )
    env = {k: v for k, v in {**os.environ, **setup.env()}.items() if v is not None}
    done = subprocess.run(
        [sys.executable, str(script), "versions", setup.project],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == EXIT_INTERRUPTED, done
    assert done.stderr.splitlines() == ["error: interrupted"], done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("args", [[], ["webhooks"]], ids=["root", "group"])
def test_no_arguments_print_the_help_as_before(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "Usage: labelvault" in result.stdout
    assert result.stderr == ""
