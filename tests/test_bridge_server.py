"""``labelvault webhooks serve`` as it runs: a real uvicorn on 127.0.0.1 whose log never shows a
query string or the secret, and a start that fails in one line on a bad Prefect URL."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.process import free_port, log_tail, spawn_logged, stop_process, wait_until
from labelvault.errors import ConfigurationError
from labelvault.webhooks import SECRET_HEADER, serve

REPO = Path(__file__).resolve().parents[1]
LABELVAULT = (sys.executable, "-m", "labelvault")


def _env(secret: str, prefect_api_url: str) -> dict[str, str]:
    unused = f"http://127.0.0.1:{free_port()}"
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("LABELVAULT_", "PREFECT_"))}
    return {
        **kept,
        "LABELVAULT_WEBHOOK_SECRET": secret,
        "PREFECT_API_URL": prefect_api_url,
        "LABELVAULT_SUPERVISELY_URL": unused,
        "LABELVAULT_SUPERVISELY_TOKEN": "platform-token-not-used",
    }


@dataclass
class Running:
    url: str
    secret: str
    log: Path
    process: subprocess.Popen[bytes]


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Running]:
    secret = secrets.token_urlsafe(24)
    port = free_port()
    log = tmp_path / "bridge.log"
    env = _env(secret, f"http://127.0.0.1:{free_port()}/api")
    process = spawn_logged(
        [*LABELVAULT, "webhooks", "serve", "--port", str(port)], log=log, cwd=REPO, env=env
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, timeout=60, what="labelvault webhooks serve", process=process, log=log)
        yield Running(url=url, secret=secret, log=log, process=process)
    finally:
        stop_process(process)


def test_credentials_in_query_strings_are_refused_and_never_logged(bridge: Running) -> None:
    secret = bridge.secret
    signed = {SECRET_HEADER: secret}
    with httpx.Client(base_url=bridge.url, timeout=10) as client:
        refused = [
            client.post(f"/webhooks/supervisely/1?secret={secret}", headers=signed),
            client.post("/webhooks/supervisely/1?token=query-token-value"),
            client.post(f"/webhooks/supervisely/1?note={secret}&x=1", headers=signed),
        ]
        in_path = client.post(f"/webhooks/{secret}/1", headers=signed)
        health = client.get("/health?probe=query-marker-value")
    assert [response.status_code for response in refused] == [400, 400, 400]
    assert in_path.status_code in (400, 404)
    assert health.status_code == 200
    stop_process(bridge.process)

    log = bridge.log.read_text(errors="replace")
    access = [line for line in log.splitlines() if '" ' in line and "HTTP/1.1" in line]
    assert len([line for line in access if "POST /webhooks/supervisely/1 HTTP" in line]) == 3, log
    assert any("POST /webhooks/***/1 HTTP" in line for line in access), log
    assert any(re.search(r"GET /health HTTP/1\.1\" 200", line) for line in access), log
    for leaked in (secret, "query-token-value", "query-marker-value", "?"):
        assert leaked not in "\n".join(access), log_tail(bridge.log)
    assert secret not in log
    assert "query-token-value" not in log


def test_a_bad_prefect_url_stops_the_command_in_one_line() -> None:
    result = subprocess.run(
        [*LABELVAULT, "webhooks", "serve", "--port", str(free_port())],
        env=_env(secrets.token_urlsafe(24), "ftp://127.0.0.1:4200/api"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Prefect API URL" in lines[0]
    assert "Uvicorn running" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("prefect_api_url", "environ", "message"),
    [
        (
            "http://127.0.0.1:4200",
            {"LABELVAULT_SUPERVISELY_URL": "http://s", "LABELVAULT_SUPERVISELY_TOKEN": "t"},
            "/api",
        ),
        (
            "localhost",
            {"LABELVAULT_SUPERVISELY_URL": "http://s", "LABELVAULT_SUPERVISELY_TOKEN": "t"},
            "http",
        ),
        ("http://127.0.0.1:4200/api", {"LABELVAULT_SUPERVISELY_URL": "http://s"}, "TOKEN"),
        ("http://127.0.0.1:4200/api", {}, "no connections"),
    ],
)
def test_bad_settings_fail_before_the_server_is_made(
    prefect_api_url: str,
    environ: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    made: list[object] = []
    monkeypatch.setattr(uvicorn, "Server", made.append)
    for name in list(os.environ):
        if name.startswith("LABELVAULT_"):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message) as caught:
        serve(prefect_api_url=prefect_api_url, secret=secrets.token_urlsafe(24), port=free_port())
    assert "\n" not in caught.value.message
    assert made == []
