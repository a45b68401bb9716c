"""Object stores: the :class:`ObjectStore` seam, its backends, and :func:`open_store`.

=========================  ==============================================================
URL                        store
=========================  ==============================================================
``path/to/dir``            :class:`LocalStore` on that folder (relative to the cwd)
``file:///abs/path``       :class:`LocalStore`
``memory://name``          :class:`MemoryStore`; the same name gives the same store
                           within one process
``s3://bucket/prefix``     :class:`S3Store`; options: ``endpoint_url``, ``region``,
                           ``access_key``, ``secret_key``, ``session_token``,
                           ``addressing_style``, ``part_size`` …
=========================  ==============================================================

The S3 backend (and boto3) is imported only when an ``s3://`` store is opened or
:class:`S3Store` is first accessed.
"""

from __future__ import annotations

import inspect
import re
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from labelvault.errors import ConfigurationError
from labelvault.storage.base import ObjectInfo, ObjectStore, StoredObject
from labelvault.storage.local import LocalStore
from labelvault.storage.memory import MemoryStore

if TYPE_CHECKING:
    from labelvault.storage.s3 import S3Store

__all__ = [
    "LocalStore",
    "MemoryStore",
    "ObjectInfo",
    "ObjectStore",
    "S3Store",
    "StoredObject",
    "open_store",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_VALID = "a folder path, file:///absolute/path, memory://name or s3://bucket/prefix"
_memory_stores: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """Load :class:`S3Store` (and boto3) on first access."""
    if name == "S3Store":
        return _s3_store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _s3_store_class() -> type[S3Store]:
    from labelvault.storage.s3 import S3Store  # noqa: PLC0415 - boto3 is heavy; load on use

    globals()["S3Store"] = S3Store
    return S3Store


def _s3_options() -> frozenset[str]:
    parameters = inspect.signature(_s3_store_class().__init__).parameters
    return frozenset(name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY)


def open_store(url: str, **options: Any) -> ObjectStore:
    """Open the store a URL names (see the module docstring for the forms).

    Options set to ``None`` are ignored, so settings can pass every field they have; options
    other than ``None`` are accepted only by ``s3://`` stores.
    """
    given = {name: value for name, value in options.items() if value is not None}
    if not url:
        raise ConfigurationError(f"empty store URL; use {_VALID}")
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        unknown = sorted(set(given) - _s3_options())
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) for an s3:// store: {', '.join(unknown)}; valid: "
                f"{', '.join(sorted(_s3_options()))}"
            )
        parts = urlsplit(url)
        if parts.query or parts.fragment:
            raise ConfigurationError(
                "s3:// store URLs take no query or fragment; pass endpoint and credentials as "
                "options (LABELVAULT_STORE_S3_*)"
            )
        if not parts.netloc:
            raise ConfigurationError(f"no bucket in store URL {url!r}; use s3://bucket/prefix")
        return _s3_store_class()(parts.netloc, unquote(parts.path).strip("/"), **given)
    if given:
        raise ConfigurationError(
            f"option(s) {', '.join(sorted(given))} apply only to s3:// stores, not to {url!r}"
        )
    if scheme == "memory":
        name = url[len("memory://") :]
        with _memory_lock:
            store = _memory_stores.get(name)
            if store is None:
                store = _memory_stores[name] = MemoryStore(name or "default")
        return store
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"file URL {url!r} names a remote host; use file:///absolute/path"
            )
        if not parts.path:
            raise ConfigurationError(f"no path in store URL {url!r}; use file:///absolute/path")
        return LocalStore(unquote(parts.path))
    if scheme:
        raise ConfigurationError(f"unknown store URL scheme {scheme!r} in {url!r}; use {_VALID}")
    return LocalStore(url)
