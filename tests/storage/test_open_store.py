"""open_store: one URL (plus options) names any backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelvault.errors import ConfigurationError
from labelvault.storage import (
    LocalStore,
    MemoryStore,
    ObjectInfo,
    ObjectStore,
    S3Store,
    StoredObject,
    open_store,
)


def test_exports() -> None:
    for cls in (LocalStore, MemoryStore, S3Store):
        assert issubclass(cls, ObjectStore)
    assert ObjectInfo.__name__ == "ObjectInfo"
    assert StoredObject.__name__ == "StoredObject"


def test_plain_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("versions")
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "versions"
    absolute = open_store(str(tmp_path / "abs"))
    assert isinstance(absolute, LocalStore)
    assert absolute.root == tmp_path / "abs"


def test_file_url(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/with%20space")
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "with space"
    store.put("k", b"1")
    assert open_store(f"file://localhost{tmp_path}/with%20space").get("k").data == b"1"


@pytest.mark.parametrize("url", ["file://elsewhere/data", "file://"])
def test_bad_file_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_store(url)


def test_memory_url_names_one_store_per_process() -> None:
    first = open_store("memory://test-open-store")
    assert isinstance(first, MemoryStore)
    first.put("k", b"shared")
    assert open_store("memory://test-open-store").get("k").data == b"shared"
    assert not open_store("memory://test-open-store-other").exists("k")


def test_s3_url_with_options() -> None:
    store = open_store(
        "s3://my-bucket/some/prefix/",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-central-1",
        access_key="AKID",
        secret_key="do-not-print-me",
        addressing_style="path",
        session_token=None,
    )
    assert isinstance(store, S3Store)
    assert store.bucket == "my-bucket"
    assert store.prefix == "some/prefix"
    assert store.region == "eu-central-1"
    assert store.name == "s3://my-bucket/some/prefix at 127.0.0.1:9000"
    assert "do-not-print-me" not in repr(store)
    bare = open_store("S3://bucket-only")
    assert isinstance(bare, S3Store)
    assert bare.prefix == ""


@pytest.mark.parametrize(
    "url",
    ["gs://bucket/x", "http://example.com/store", "azure://c/x", "ftp://host/dir"],
)
def test_unknown_scheme_lists_the_valid_ones(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store(url)
    message = str(caught.value)
    for scheme in ("file://", "memory://", "s3://"):
        assert scheme in message


def test_bad_s3_urls_and_options() -> None:
    with pytest.raises(ConfigurationError, match="no bucket"):
        open_store("s3:///prefix")
    with pytest.raises(ConfigurationError, match="no query"):
        open_store("s3://bucket/p?endpoint_override=x")
    with pytest.raises(ConfigurationError, match="unknown option"):
        open_store("s3://bucket", endpont_url="http://typo")
    with pytest.raises(ConfigurationError, match="only to s3"):
        open_store("memory://x", endpoint_url="http://127.0.0.1:9000")
    with pytest.raises(ConfigurationError):
        open_store("")
