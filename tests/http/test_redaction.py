"""Secrets never survive redaction, whatever shape they come in."""

from __future__ import annotations

import secrets

import pytest

from labelvault.http import Redactor, redact_headers, redact_text, redact_url
from labelvault.http.multipart import iter_multipart


@pytest.mark.parametrize(
    "param", ["token", "api_key", "access_token", "API_KEY", "apikey", "X-Amz-Signature"]
)
def test_url_query_secrets(param: str) -> None:
    value = secrets.token_hex(8)
    url = redact_url(f"https://h.test/a/b?{param}={value}&page=3")
    assert value not in url
    assert "page=3" in url
    assert url.startswith("https://h.test/a/b?")


def test_url_userinfo() -> None:
    url = redact_url("https://user:hunter2@h.test/x")
    assert "hunter2" not in url
    assert "user:***@h.test" in url


def test_headers() -> None:
    token = secrets.token_hex(8)
    masked = redact_headers(
        {"x-api-key": token, "Authorization": f"Bearer {token}", "Accept": "json"}
    )
    assert token not in str(masked)
    assert masked["Accept"] == "json"


@pytest.mark.parametrize(
    "template",
    [
        '{{"token": "{v}"}}',
        "{{'api_key': '{v}'}}",
        "Authorization: Bearer {v}",
        "Authorization: Token {v}",
        "x-api-key: {v}",
        "POST /x?access_token={v}&a=1",
        "form token={v}&x=1",
    ],
)
def test_text_patterns(template: str) -> None:
    value = secrets.token_hex(10)
    assert value not in redact_text(template.format(v=value))


def test_known_secret_anywhere() -> None:
    token = secrets.token_urlsafe(24)
    redactor = Redactor([token])
    assert token not in redactor(f"weird place {token}{token} end")
    assert token not in redactor.url(f"https://h.test/{token}/x")
    assert redactor.with_secrets("abc").text("abc") == "***"


def test_multipart_reader() -> None:
    body = (
        b'--b0\r\nContent-Disposition: form-data; name="17"\r\n'
        b"Content-Type: application/json\r\n\r\n"
        b'{"a": 1}\r\n--b0\r\n'
        b'Content-Disposition: form-data; name="geometry"; filename="18"\r\n\r\n'
        b"xy\r\n--b0--\r\n"
    )
    parts = list(iter_multipart(body, 'multipart/form-data; boundary="b0"'))
    assert [(p.name, p.filename, p.content) for p in parts] == [
        ("17", None, b'{"a": 1}'),
        ("geometry", "18", b"xy"),
    ]
    with pytest.raises(ValueError, match="boundary"):
        list(iter_multipart(body, "multipart/form-data"))
