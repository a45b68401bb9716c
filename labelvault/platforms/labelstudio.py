"""Label Studio (Community 1.x): capture a project, restore it as a new project, webhooks.

Plain REST over :mod:`labelvault.http`; no SDK. What maps where:

========================  ================================================================
table                     rows
========================  ================================================================
``project``               one row: title, description, label config (``definitions``),
                          the project settings a restore can set (``settings``)
``datasets``              none: Label Studio has no datasets
``items``                 one per task (``data``, ``meta``); key = zero-padded task id
``annotations``           annotations, predictions and drafts of each task (``kind``);
                          key = ``<task>/a<id>``, ``<task>/d<id>``, ``<task>/p<id>``
``tags``                  none
``users``                 the users that annotations and drafts name (``completed_by``)
========================  ================================================================

Capture reads the project through Label Studio's snapshot exports with drafts expanded (about
three times faster than paging the task list with ``fields=all``). A large project is exported
in task id ranges, each selected by a temporary Data Manager view: no request runs long enough
to time out, the client converts one range while the server builds the next, and a server with
several workers builds ranges side by side. Prediction bodies come from one streamed
``/api/predictions`` listing, spooled to a local SQLite file (expanding them in the export
costs the server a query and a serializer per task); authors come from the users listing.
``capture_mode="list"`` pages ``/api/tasks?fields=all`` instead. Both give the same rows (list
mode does not see a task's ``allow_skip``).

Restore creates the users that are missing, then the project with its label config, then
imports tasks in bulk with their annotations and predictions embedded (``ground_truth``
always explicit), one import at a time, serializing the next batch while the server imports.
Drafts, which an import drops, are created per task. Each restored task carries its source
key in ``meta["_labelvault"]`` (left out of fingerprints and of the ``meta`` column), so a
restore that is retried with ``resume_project_id`` skips what is already there.

What a restore cannot bring back: ids and every ``created_at``/``updated_at`` (the server
sets them), a draft's author (the server makes the caller the author; the result counts
``drafts_reassigned``), links to cloud storage and file uploads, comments, and
``task_data_password`` (never captured).

Fingerprints leave out every id and server-set timestamp and refer to other rows by content:
an annotation names its task by the task's fingerprint, a draft its annotation by the
annotation's fingerprint, and every author by email. So capture → restore → capture gives the
same fingerprints, on the same server or another one.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import collections
import hashlib
import heapq
import itertools
import json
import logging
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import pyarrow as pa
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from labelvault.errors import (
    AuthenticationError,
    ConfigurationError,
    PaginationError,
    PlatformError,
    PlatformNotFound,
    PlatformUnavailable,
    RequestRejected,
    RestoreError,
)
from labelvault.http.client import ApiClient, CallContext, build_client, default_error
from labelvault.http.pagination import PageNumberPaginator, PageRequest, paginate
from labelvault.http.retrying import RETRY_STATUSES, RetryableStatus, retry_policy
from labelvault.http.settings import RequestSettings
from labelvault.platforms.base import ProjectInfo, TablePage, instance_from_url, register_platform
from labelvault.snapshot.schema import (
    AnnotationKind,
    GeometryType,
    canonical_json,
    fingerprint,
    schema_for,
)

__all__ = [
    "DEFAULT_WEBHOOK_ACTIONS",
    "SOURCE_META_KEY",
    "LabelStudioOptions",
    "LabelStudioPlatform",
    "RestoreResult",
    "TableSource",
    "Webhook",
    "is_personal_access_token",
    "iter_json_array",
    "register_webhook",
]

logger = logging.getLogger("labelvault.platforms.labelstudio")

PLATFORM: Final = "labelstudio"

#: Where a restored task keeps the key of the task it was restored from.
SOURCE_META_KEY: Final = "_labelvault"

#: The annotation events a labelvault webhook listens to.
DEFAULT_WEBHOOK_ACTIONS: Final[tuple[str, ...]] = (
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
)

#: Project fields a restore sets on the new project (``model_version`` is set last, once the
#: predictions that name it exist). Credentials (``task_data_password``) are never captured.
SETTINGS_FIELDS: Final[tuple[str, ...]] = (
    "expert_instruction",
    "show_instruction",
    "show_skip_button",
    "enable_empty_annotation",
    "show_annotation_history",
    "color",
    "maximum_annotations",
    "is_published",
    "model_version",
    "is_draft",
    "min_annotations_to_start_training",
    "start_training_on_annotation_update",
    "show_collab_predictions",
    "sampling",
    "show_ground_truth_first",
    "annotator_evaluation_enabled",
    "show_overlap_first",
    "overlap_cohort_percentage",
    "control_weights",
    "evaluate_predictions_automatically",
    "skip_queue",
    "reveal_preannotations_interactively",
    "task_data_login",
)
_SECRET_PROJECT_FIELDS: Final = ("task_data_password",)

#: The serialization the snapshot export is asked for: drafts expanded; predictions and
#: authors by id (prediction bodies come from the predictions listing, authors from the users
#: listing: both cost the server less than expanding them task by task).
_EXPORT_OPTIONS: Final[dict[str, Any]] = {
    "drafts": {"only_id": False},
    "predictions": {"only_id": True},
    "annotations__completed_by": {"only_id": True},
    "include_annotation_history": False,
    "interpolate_key_frames": False,
}

_KIND_LETTER: Final = {
    AnnotationKind.ANNOTATION: "a",
    AnnotationKind.DRAFT: "d",
    AnnotationKind.PREDICTION: "p",
}

_GEOMETRY: Final[dict[str, GeometryType]] = {
    "rectangle": GeometryType.RECTANGLE,
    "rectanglelabels": GeometryType.RECTANGLE,
    "polygon": GeometryType.POLYGON,
    "polygonlabels": GeometryType.POLYGON,
    "keypoint": GeometryType.KEYPOINT,
    "keypointlabels": GeometryType.KEYPOINT,
    "brush": GeometryType.BRUSH,
    "brushlabels": GeometryType.BRUSH,
    "choices": GeometryType.CHOICES,
    "taxonomy": GeometryType.CHOICES,
    "textarea": GeometryType.TEXT,
    "labels": GeometryType.LABELS,
    "hypertextlabels": GeometryType.LABELS,
    "paragraphlabels": GeometryType.LABELS,
    "timeserieslabels": GeometryType.LABELS,
    "rating": GeometryType.RATING,
    "relation": GeometryType.RELATION,
}

#: Result types whose values are free input, not class names.
_NOT_CLASSES: Final = frozenset({"textarea", "rating", "number", "datetime", "relation"})

_KEY_DIGITS: Final = 12


#: Table name → that table's record batches in key order (a version reader's ``iter_batches``).
TableSource = Callable[[str], Iterator[pa.RecordBatch]]


class LabelStudioOptions(BaseSettings):
    """How the adapter talks to Label Studio (env prefix ``LABELVAULT_LABELSTUDIO_``).

    The defaults follow measurements on 1.23 (``benchmarks/labelstudio.py``):

    - ``capture_mode``: ``"export"`` (snapshot exports, about 1,000 tasks/s on one server
      process) or ``"list"`` (``/api/tasks?fields=all``, about 300–400 tasks/s);
    - ``export_partition_tasks``: most tasks in one snapshot export. A larger project is
      exported in task id ranges (a temporary Data Manager view each), so no request runs
      long enough to time out and the client converts one range while the server builds the
      next; 0 exports the whole project in one request;
    - ``export_concurrency``: exports built at once (the predictions listing counts as one).
      A server with several workers on PostgreSQL builds them side by side (2: about 1.5x
      Label Studio's own export); ``label-studio start`` (one process, SQLite) builds them in
      turn at about the same speed as 1;
    - ``export_min_range_tasks``: the fewest tasks a range is cut to when building several
      at once (a range costs the server about 0.1 s more than its tasks);
    - ``page_size``: tasks per listing page and per emitted batch (1000: larger pages are not
      faster and cost the server memory);
    - ``list_concurrency``: pages fetched at once in list mode; 1 for ``label-studio start``
      (one process: concurrent pages are slower), 2–4 behind a multi-worker WSGI server;
    - ``export_reorder_window``: tasks held to put an export that is not in id order back in
      order (SQLite exports are in order; a server that shuffles more fails clearly);
    - ``import_batch_tasks`` / ``import_batch_bytes``: size of one bulk import request; the
      first request is ``import_first_batch_tasks`` tasks, so the server starts early while
      the next batch is read and serialized;
    - ``keep_alive``: reuse connections (off: Django's development server adds about 40 ms
      to every request on a kept-alive connection).
    """

    model_config = SettingsConfigDict(
        env_prefix="LABELVAULT_LABELSTUDIO_", frozen=True, extra="ignore"
    )

    capture_mode: Literal["export", "list"] = "export"
    export_partition_tasks: int = Field(5000, ge=0)
    export_concurrency: int = Field(2, ge=1)
    export_min_range_tasks: int = Field(500, ge=1)
    page_size: int = Field(1000, ge=1)
    list_concurrency: int = Field(1, ge=1)
    export_reorder_window: int = Field(2000, ge=0)
    export_timeout: float = Field(3600.0, gt=0)
    import_first_batch_tasks: int = Field(500, ge=1)
    import_batch_tasks: int = Field(5000, ge=1)
    import_batch_bytes: int = Field(64 * 1024 * 1024, ge=1)
    keep_alive: bool = False


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the new (or resumed) project and counts per kind of entity."""

    project: ProjectInfo
    resumed: bool
    counts: dict[str, int]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Webhook:
    """A Label Studio webhook (its headers are left out: they may hold secrets)."""

    id: int
    project_id: str
    url: str
    actions: tuple[str, ...]
    is_active: bool
    created: bool


# --- authentication -----------------------------------------------------------------------


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, or None when ``token`` is not one (no signature check)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        decoded = [
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        ]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    header, claims = decoded
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    return claims


def is_personal_access_token(token: str) -> bool:
    """True for a personal access token (a JWT refresh token), False for a legacy token."""
    return _jwt_claims(token) is not None


class _PersonalAccessTokenAuth(httpx.Auth):
    """Bearer auth with short-lived access tokens from ``POST /api/token/refresh/``.

    Refreshes before the access token expires (it lasts five minutes) and once more on a 401.
    """

    def __init__(
        self,
        refresh_token: str,
        *,
        base_url: str,
        settings: RequestSettings,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._refresh_token = refresh_token
        self._client = build_client(base_url, settings=settings, transport=transport)
        self._base_url = base_url
        self._lock = threading.Lock()
        self._access: str | None = None
        self._expires = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Attach a fresh access token; refresh and resend once on 401."""
        access = self._current(force=False)
        request.headers["Authorization"] = f"Bearer {access}"
        response = yield request
        if response.status_code == 401:
            access = self._current(force=True, stale=access)
            request.headers["Authorization"] = f"Bearer {access}"
            yield request

    def _current(self, *, force: bool, stale: str | None = None) -> str:
        with self._lock:
            fresh = self._access is not None and time.time() < self._expires - 30
            if self._access is not None and fresh and not (force and self._access == stale):
                return self._access
            self._access, self._expires = self._refresh()
            return self._access

    def _refresh(self) -> tuple[str, float]:
        response = self._client.post("/api/token/refresh/", json={"refresh": self._refresh_token})
        if response.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"{PLATFORM}: {self._base_url} refused the personal access token "
                f"(HTTP {response.status_code}); it is wrong, revoked or of another server "
                "(the token is not shown here)",
                platform=PLATFORM,
                status=response.status_code,
            )
        if response.status_code in RETRY_STATUSES:
            raise PlatformUnavailable(
                f"{PLATFORM}: {self._base_url} could not refresh the access token "
                f"(HTTP {response.status_code})",
                platform=PLATFORM,
                status=response.status_code,
            )
        try:
            access = str(response.json()["access"])
        except (ValueError, KeyError, TypeError):
            raise RequestRejected(
                f"{PLATFORM}: {self._base_url} answered the token refresh with "
                f"HTTP {response.status_code} and no access token; is it a Label Studio server?",
                platform=PLATFORM,
                status=response.status_code,
            ) from None
        claims = _jwt_claims(access) or {}
        expires = float(claims.get("exp", time.time() + 240))
        return access, expires

    def close(self) -> None:
        """Close the refresh client."""
        self._client.close()


# --- streaming JSON -----------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")


class _ArrayScanner:
    """Splits the text of a JSON array into its elements as the text arrives."""

    _BEFORE, _VALUE_OR_END, _COMMA_OR_END, _VALUE, _DONE = range(5)

    def __init__(self) -> None:
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.state = self._BEFORE
        self.wait_for = 0

    def feed(self, text: str, *, final: bool) -> Iterator[Any]:
        """Add text; yield every element that is now complete."""
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        if len(self.buf) < self.wait_for and not final:
            return
        self.wait_for = 0
        while True:
            self.pos = _skip_ws(self.buf, self.pos)
            if self.pos >= len(self.buf):
                return
            if self.state in (self._VALUE_OR_END, self._VALUE) and not (
                self.state == self._VALUE_OR_END and self.buf[self.pos] == "]"
            ):
                decoded = self._value(final)
                if decoded is None:
                    return
                yield decoded[0]
            else:
                self._punctuation(self.buf[self.pos])

    def _punctuation(self, char: str) -> None:
        expected = {
            self._BEFORE: {"[": self._VALUE_OR_END},
            self._VALUE_OR_END: {"]": self._DONE},
            self._COMMA_OR_END: {",": self._VALUE, "]": self._DONE},
        }.get(self.state, {})
        if char not in expected:
            near = self.buf[self.pos : self.pos + 20]
            raise ValueError(f"not a JSON array: unexpected {near!r}")
        self.state = expected[char]
        self.pos += 1

    def _value(self, final: bool) -> tuple[Any] | None:
        try:
            value, end = self.decoder.raw_decode(self.buf, self.pos)
        except json.JSONDecodeError:
            if final:
                raise
            # Try again once the buffer has doubled: linear in the element's size.
            self.wait_for = 2 * (len(self.buf) - self.pos)
            return None
        if (
            not final
            and not isinstance(value, dict | list | str)
            and (end >= len(self.buf) or self.buf[end] not in " \t\n\r,]")
        ):
            self.wait_for = 2 * (len(self.buf) - self.pos)  # a number may go on
            return None
        self.pos = end
        self.state = self._COMMA_OR_END
        return (value,)


def _skip_ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Yield the elements of a JSON array that arrives in byte chunks, one at a time.

    Memory holds about one element plus one chunk. Raises ``ValueError`` when the text is not
    a JSON array or ends early.
    """
    text = codecs.getincrementaldecoder("utf-8")()
    scanner = _ArrayScanner()
    for chunk in chunks:
        yield from scanner.feed(text.decode(chunk), final=False)
    yield from scanner.feed(text.decode(b"", final=True), final=True)
    if scanner.state != scanner._DONE:
        raise ValueError("the JSON array ended early (truncated download?)")


# --- rows ---------------------------------------------------------------------------------


def _key(number: int) -> str:
    return f"{number:0{_KEY_DIGITS}d}"


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _strip_meta(meta: Any) -> Any:
    if isinstance(meta, dict) and SOURCE_META_KEY in meta:
        return {k: v for k, v in meta.items() if k != SOURCE_META_KEY}
    return meta


def _link(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    for name in sorted(data):
        value = data[name]
        if isinstance(value, str) and re.match(r"^(https?|s3|gs|azure-blob)://", value):
            return value
    return None


def _result_types(result: Any) -> list[str]:
    if not isinstance(result, list):
        return []
    return [r["type"] for r in result if isinstance(r, dict) and isinstance(r.get("type"), str)]


def _class_name(result: Any) -> str | None:
    """Distinct label and choice values of a result, sorted, joined with ``|``."""
    names: set[str] = set()
    if not isinstance(result, list):
        return None
    for region in result:
        if not isinstance(region, dict):
            continue
        kind = region.get("type")
        value = region.get("value")
        if not isinstance(kind, str) or kind in _NOT_CLASSES or not isinstance(value, dict):
            continue
        labels = value.get(kind)
        if not isinstance(labels, list):
            continue
        for label in labels:
            if isinstance(label, str):
                names.add(label)
            elif isinstance(label, list) and all(isinstance(x, str) for x in label):
                names.add("/".join(label))
    return "|".join(sorted(names)) if names else None


_GEOMETRY_VALUES: Final[dict[str, str]] = {name: kind.value for name, kind in _GEOMETRY.items()}


def _geometry_type(result: Any) -> str | None:
    types = set(_result_types(result))
    if len(types) > 1:
        types.discard("relation")
    if not types:
        return None
    mapped = {_GEOMETRY_VALUES.get(t) or GeometryType(t).value for t in types}
    if len(mapped) > 1:
        return GeometryType.MULTICLASS.value
    return mapped.pop()


def _user_id(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class _User:
    id: int
    email: str | None
    username: str | None = None
    first_name: str = ""
    last_name: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def _normal_login(username: str | None, email: str | None) -> str:
    """Label Studio cannot create a user with a blank username; a restore uses the email."""
    if not username or username == email:
        return ""
    return username


class _Users:
    """The server's users by id and email, and the ones a capture referenced."""

    def __init__(
        self,
        listing: Iterable[dict[str, Any]],
        fetch: Callable[[int], dict[str, Any] | None] | None = None,
    ) -> None:
        self.by_id: dict[int, _User] = {}
        self.by_email: dict[str, _User] = {}
        self.referenced: set[int] = set()
        self.unknown_emails: set[str] = set()
        self._fetch = fetch
        for raw in listing:
            self.add(raw)

    def add(self, raw: dict[str, Any]) -> _User:
        user = _User(
            id=int(raw["id"]),
            email=raw.get("email"),
            username=raw.get("username"),
            first_name=raw.get("first_name") or "",
            last_name=raw.get("last_name") or "",
            raw=raw,
        )
        self.by_id[user.id] = user
        if user.email:
            self.by_email[user.email] = user
        return user

    def email_of(self, value: Any) -> str | None:
        """The email of ``completed_by`` (an id or an expanded user); notes the reference."""
        user_id = _user_id(value)
        if user_id is None:
            return None
        self.referenced.add(user_id)
        if user_id not in self.by_id:
            if isinstance(value, dict) and value.get("email"):
                self.add(dict(value))
            else:
                # Not in the organization's listing (a removed member): ask once.
                found = self._fetch(user_id) if self._fetch else None
                if found is not None:
                    self.add(found)
                else:
                    self.by_id[user_id] = _User(id=user_id, email=None)
        return self.by_id[user_id].email

    def note_email(self, email: Any) -> str | None:
        """A draft names its author by email."""
        if not isinstance(email, str) or not email:
            return None
        user = self.by_email.get(email)
        if user is not None:
            self.referenced.add(user.id)
        else:
            self.unknown_emails.add(email)
        return email


def _annotation_content(raw: dict[str, Any], item_fp: str, author: str | None) -> dict[str, Any]:
    return {
        "item": item_fp,
        "kind": AnnotationKind.ANNOTATION.value,
        "result": raw.get("result"),
        "was_cancelled": bool(raw.get("was_cancelled", False)),
        "ground_truth": bool(raw.get("ground_truth", False)),
        "lead_time": raw.get("lead_time"),
        "author": author,
    }


def _prediction_content(raw: dict[str, Any], item_fp: str) -> dict[str, Any]:
    return {
        "item": item_fp,
        "kind": AnnotationKind.PREDICTION.value,
        "result": raw.get("result"),
        "score": raw.get("score"),
        "model_version": raw.get("model_version"),
    }


def _draft_content(
    raw: dict[str, Any], item_fp: str, author: str | None, parent_fp: str | None
) -> dict[str, Any]:
    return {
        "item": item_fp,
        "kind": AnnotationKind.DRAFT.value,
        "result": raw.get("result"),
        "lead_time": raw.get("lead_time"),
        "was_postponed": bool(raw.get("was_postponed", False)),
        "author": author,
        "annotation": parent_fp,
    }


#: :func:`canonical_json` without building an encoder per call (``json.dumps`` with these
#: options encodes with a new ``JSONEncoder`` of the same settings).
_canonical: Final[Callable[[Any], str]] = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
).encode

_NONCE: Final = secrets.token_hex(8)


def _mark(n: int) -> tuple[str, str]:
    mark = f"\x00{_NONCE}{n}\x00"
    return mark, json.dumps(mark)


#: Placeholders of :func:`_splice` (a string no JSON text holds) and their JSON text.
_MARKS: Final = tuple(_mark(n) for n in range(4))


def _splice(value: dict[str, Any], encoded: Mapping[str, str]) -> str:
    """``canonical_json(value)``, taking the values under ``encoded``'s keys as ready
    canonical JSON text (so a large value is encoded once, not once per use)."""
    if not encoded:
        return _canonical(value)
    count = len(encoded)
    marks = _MARKS[:count] if count <= len(_MARKS) else tuple(map(_mark, range(count)))
    patched = dict(value)
    for key, (mark, _) in zip(encoded, marks, strict=True):
        patched[key] = mark
    text = _canonical(patched)
    for ready, (_, mark_text) in zip(encoded.values(), marks, strict=True):
        text = text.replace(mark_text, ready, 1)
    return text


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _annotation_row(
    kind: AnnotationKind,
    raw: dict[str, Any],
    task_key: str,
    content: dict[str, Any],
    author: str | None,
) -> dict[str, Any]:
    result = raw.get("result")
    geometry = _canonical(result)
    return {
        "key": f"{task_key}/{_KIND_LETTER[kind]}{_key(int(raw['id']))}",
        "fingerprint": _sha256(_splice(content, {"result": geometry})),
        "item_key": task_key,
        "kind": kind.value,
        "class_name": _class_name(result),
        "geometry_type": _geometry_type(result),
        "geometry": geometry,
        "author": author,
        "created_at": _ts(raw.get("created_at")),
        "updated_at": _ts(raw.get("updated_at")),
        "raw": _splice(raw, {"result": geometry} if "result" in raw else {}),
    }


def task_rows(task: dict[str, Any], users: _Users) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One task as an ``items`` row and its ``annotations`` rows (in key order)."""
    item, rows = _task_head(task, users)
    rows.extend(_prediction_rows(task.get("predictions"), item))
    return item, rows


def _task_head(task: dict[str, Any], users: _Users) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`task_rows` without the prediction rows (which sort last within a task)."""
    task_key = _key(int(task["id"]))
    data = task.get("data")
    meta = _strip_meta(task.get("meta"))
    data_text = _canonical(data)
    meta_text = _canonical(meta)
    item_fp = _sha256(f'{{"data":{data_text},"meta":{meta_text}}}')
    item_raw = {k: v for k, v in task.items() if k not in ("annotations", "predictions", "drafts")}
    item = {
        "key": task_key,
        "fingerprint": item_fp,
        "dataset_key": None,
        "name": None,
        "kind": "task",
        "hash": None,
        "link": _link(data),
        "size_bytes": None,
        "width": None,
        "height": None,
        "meta": meta_text,
        "created_at": _ts(task.get("created_at")),
        "updated_at": _ts(task.get("updated_at")),
        "raw": _splice(item_raw, {"data": data_text})
        if "data" in item_raw
        else _canonical(item_raw),
    }
    rows: list[dict[str, Any]] = []
    annotation_fps: dict[int, str] = {}
    for raw in sorted(_dicts(task.get("annotations")), key=lambda a: int(a["id"])):
        author = users.email_of(raw.get("completed_by"))
        content = _annotation_content(raw, item_fp, author)
        row = _annotation_row(AnnotationKind.ANNOTATION, raw, task_key, content, author)
        annotation_fps[int(raw["id"])] = row["fingerprint"]
        rows.append(row)
    for raw in sorted(_dicts(task.get("drafts")), key=lambda d: int(d["id"])):
        author = users.note_email(raw.get("user"))
        parent = raw.get("annotation")
        parent_fp = annotation_fps.get(parent) if isinstance(parent, int) else None
        content = _draft_content(raw, item_fp, author, parent_fp)
        rows.append(_annotation_row(AnnotationKind.DRAFT, raw, task_key, content, author))
    return item, rows


def _prediction_rows(predictions: Any, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``annotations`` rows of a task's predictions (``item`` is the task's row)."""
    task_key, item_fp = item["key"], item["fingerprint"]
    return [
        _annotation_row(
            AnnotationKind.PREDICTION, raw, task_key, _prediction_content(raw, item_fp), None
        )
        for raw in sorted(_dicts(predictions), key=lambda p: int(p["id"]))
    ]


def _in_order(
    tasks: Iterable[dict[str, Any]], number: int, project_id: str
) -> Iterator[dict[str, Any]]:
    """``tasks``, checked to come in increasing id order."""
    last = -1
    for task in tasks:
        task_id = task.get("id")
        if not isinstance(task_id, int) or task_id <= last:
            raise PaginationError(
                f"{PLATFORM}: project {number} returned task {task_id!r} after {last}; "
                "tasks must come in increasing id order",
                platform=PLATFORM,
                project=project_id,
            )
        last = task_id
        yield task


def _id_filter(low: int | None, high: int | None) -> dict[str, Any]:
    """A Data Manager filter on task ids ``low..high`` (``None``: open on that side)."""
    where: dict[str, Any] = {"filter": "filter:tasks:id", "type": "Number"}
    if low is not None and high is not None:
        return {**where, "operator": "in", "value": {"min": low, "max": high}}
    if low is not None:
        return {**where, "operator": "greater_or_equal", "value": low}
    return {**where, "operator": "less_or_equal", "value": high}


def _dicts(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict) and isinstance(v.get("id"), int)]


def project_row(project: dict[str, Any]) -> dict[str, Any]:
    """The ``project`` table's one row."""
    raw = dict(project)
    for name in _SECRET_PROJECT_FIELDS:
        if raw.get(name):
            raw[name] = "***"
    settings = {name: project[name] for name in SETTINGS_FIELDS if name in project}
    definitions = {"label_config": project.get("label_config")}
    title = project.get("title")
    description = project.get("description")
    return {
        "key": _key(int(project["id"])),
        "fingerprint": fingerprint(
            {
                "name": title,
                "description": description,
                "definitions": definitions,
                "settings": settings,
            }
        ),
        "name": title,
        "description": description,
        "kind": PLATFORM,
        "definitions": canonical_json(definitions),
        "settings": canonical_json(settings),
        "custom_data": None,
        "readme": None,
        "created_at": _ts(project.get("created_at")),
        "updated_at": _ts(project.get("updated_at")),
        "raw": canonical_json(raw),
    }


def user_row(user: _User) -> dict[str, Any]:
    """One ``users`` row."""
    name = " ".join(part for part in (user.first_name, user.last_name) if part)
    return {
        "key": _key(user.id),
        "fingerprint": fingerprint(
            {
                "email": user.email,
                "login": _normal_login(user.username, user.email),
                "first_name": user.first_name,
                "last_name": user.last_name,
            }
        ),
        "login": user.username,
        "email": user.email,
        "name": name or None,
        "raw": canonical_json(
            {k: user.raw.get(k) for k in ("id", "email", "username", "first_name", "last_name")}
        ),
    }


def _batch(table: str, rows: list[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=schema_for(table))


def _rows(batches: Iterator[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    for batch in batches:
        yield from batch.to_pylist()


# --- the adapter --------------------------------------------------------------------------


class LabelStudioPlatform:
    """A Label Studio server, as capture and restore see it.

    ``token`` is a legacy API token (``Authorization: Token …``) or a personal access token
    (a JWT, exchanged for five-minute access tokens); which one is told from its form.
    ``settings`` are the HTTP retry and timeout settings, ``transport`` replaces the network
    in tests, ``options`` tune paging and imports (see :class:`LabelStudioOptions`).
    """

    name = PLATFORM

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        settings: RequestSettings | None = None,
        transport: httpx.BaseTransport | None = None,
        options: LabelStudioOptions | None = None,
    ) -> None:
        if not token:
            raise ConfigurationError("a Label Studio API token is required")
        self.base_url = base_url.rstrip("/")
        self.options = options or LabelStudioOptions()
        self.settings = settings or RequestSettings()
        self._instance = instance_from_url(self.base_url)
        self._pat_auth: _PersonalAccessTokenAuth | None = None
        headers = {"Accept": "application/json"}
        if not self.options.keep_alive:
            headers["Connection"] = "close"
        auth: httpx.Auth | None = None
        if is_personal_access_token(token):
            self._pat_auth = _PersonalAccessTokenAuth(
                token,
                base_url=self.base_url,
                settings=self.settings,
                transport=transport,
            )
            auth = self._pat_auth
        else:
            headers["Authorization"] = f"Token {token}"
        client = build_client(
            self.base_url, headers=headers, auth=auth, settings=self.settings, transport=transport
        )
        self.api = ApiClient(
            client,
            platform=PLATFORM,
            settings=self.settings,
            secrets=[token],
            classify=self._classify,
        )

    # --- protocol -------------------------------------------------------------------------

    @property
    def instance(self) -> str:
        """Host and port of the server (``127.0.0.1:8080``)."""
        return self._instance

    def get_project(self, project_id: str) -> ProjectInfo:
        """Describe a project, with task, annotation and prediction counts.

        ``updated_at`` is None: Label Studio's project timestamp does not move when tasks or
        annotations change, so it cannot tell that nothing changed.
        """
        number = self._project_number(project_id)
        project = self._get_json(
            f"/api/projects/{number}",
            project_id,
            params={
                "include": "id,title,task_number,total_annotations_number,total_predictions_number"
            },
        )
        counts = {
            "items": project.get("task_number"),
            "annotations": project.get("total_annotations_number"),
            "predictions": project.get("total_predictions_number"),
        }
        return ProjectInfo(
            platform=PLATFORM,
            instance=self.instance,
            project_id=str(number),
            name=str(project.get("title") or ""),
            kind=PLATFORM,
            updated_at=None,
            counts={k: int(v) for k, v in counts.items() if isinstance(v, int)},
        )

    def iter_pages(self, project_id: str) -> Iterator[TablePage]:
        """Stream the project: its row, then items and annotations page by page, then users."""
        number = self._project_number(project_id)
        project = self._get_json(f"/api/projects/{number}", project_id)
        yield TablePage("project", _batch("project", [project_row(project)]))
        users = _Users(self._list_users(project_id), self._fetch_user)
        if self.options.capture_mode == "export":
            converted = self._export_rows(number, project_id, users)
        elif self.options.capture_mode == "list":
            tasks = _in_order(self._list_tasks(number, project_id), number, project_id)
            converted = (task_rows(task, users) for task in tasks)
        else:
            raise ConfigurationError(f"unknown capture mode {self.options.capture_mode!r}")
        items: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for item, item_rows in converted:
            items.append(item)
            annotations.extend(item_rows)
            if len(items) >= self.options.page_size:
                yield from self._task_pages(items, annotations)
                items, annotations = [], []
        if items:
            yield from self._task_pages(items, annotations)
        rows = self._user_rows(users, project_id)
        if rows:
            yield TablePage("users", _batch("users", rows))

    def close(self) -> None:
        """Close the connection pools."""
        self.api.close()
        if self._pat_auth is not None:
            self._pat_auth.close()

    def __enter__(self) -> LabelStudioPlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- restore --------------------------------------------------------------------------

    def restore(
        self,
        tables: TableSource,
        *,
        title: str | None = None,
        description: str | None = None,
        resume_project_id: str | None = None,
        on_project_created: Callable[[str], None] | None = None,
    ) -> RestoreResult:
        """Restore a version's tables as a new project (or finish ``resume_project_id``).

        ``tables`` streams each table's batches in key order. Users named by annotations are
        created when missing; tasks are imported in bulk with annotations and predictions
        embedded, one import at a time; drafts are created per task. A failure raises
        :class:`RestoreError` naming the project created so far; passing it back as
        ``resume_project_id`` imports only what is missing. ``on_project_created`` hears the new
        project's id as soon as it exists, so a caller can journal it before anything else.
        """
        source = list(_rows(tables("project")))
        if len(source) != 1:
            raise RestoreError(
                f"the version has {len(source)} project rows, expected 1", project="?"
            )
        row = source[0]
        source_key = str(row["key"])
        new_title = title if title is not None else str(row.get("name") or "")
        if not 3 <= len(new_title) <= 50:
            raise ConfigurationError(
                f"a Label Studio project title must be 3 to 50 characters, got {new_title!r}"
            )
        counts = {
            "users_created": 0,
            "tasks": 0,
            "tasks_skipped": 0,
            "annotations": 0,
            "predictions": 0,
            "drafts": 0,
            "drafts_reassigned": 0,
        }
        warnings: list[str] = []
        created: str | None = resume_project_id
        try:
            self._restore_users(tables("users"), counts)
            definitions = json.loads(row.get("definitions") or "{}")
            settings = json.loads(row.get("settings") or "{}")
            if resume_project_id is None:
                created = self._create_project(
                    new_title,
                    description if description is not None else row.get("description") or "",
                    definitions.get("label_config"),
                    settings,
                )
                if on_project_created is not None:
                    on_project_created(created)
                existing: dict[str, int] = {}
            else:
                self._project_number(resume_project_id)
                existing = self._existing_tasks(resume_project_id)
            assert created is not None
            self._restore_tasks(
                int(created), tables("items"), tables("annotations"), existing, counts
            )
            model_version = settings.get("model_version")
            if model_version:
                try:
                    self._patch_project(int(created), {"model_version": model_version})
                except RequestRejected as exc:
                    warnings.append(f"model_version {model_version!r} not set: {exc.message}")
        except (PlatformError, ConfigurationError) as exc:
            raise RestoreError(
                f"restore of {PLATFORM} project {source_key} stopped"
                + (f" in project {created}" if created else "")
                + f": {exc.message}",
                project=source_key,
                created_project=created,
                progress=counts,
            ) from exc
        if counts["drafts_reassigned"]:
            warnings.append(
                f"{counts['drafts_reassigned']} draft(s) by other users now belong to the "
                "restoring user: Label Studio makes the caller the author of every draft"
            )
        for warning in warnings:
            logger.warning("%s", warning)
        info = self.get_project(created)
        return RestoreResult(
            project=info,
            resumed=resume_project_id is not None,
            counts=counts,
            warnings=tuple(warnings),
        )

    # --- webhooks -------------------------------------------------------------------------

    def register_webhook(
        self,
        project_id: str,
        url: str,
        *,
        actions: Sequence[str] = DEFAULT_WEBHOOK_ACTIONS,
        headers: Mapping[str, str] | None = None,
    ) -> Webhook:
        """Make sure ``project_id`` has exactly one webhook to ``url`` for ``actions``.

        An existing webhook to the same URL is reused (and updated when its actions, headers
        or state differ), so calling this again does not add a second one. Label Studio sends
        the webhook with its payload, which names the project.
        """
        number = self._project_number(project_id)
        hooks = self.api.request_json(
            "GET", "/api/webhooks/", params={"project": number}, project=project_id
        )
        wanted: dict[str, Any] = {
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "headers": dict(headers or {}),
            "is_active": True,
            "actions": sorted(set(actions)),
        }
        for hook in hooks if isinstance(hooks, list) else []:
            if hook.get("project") != number or hook.get("url") != url:
                continue
            current = {k: hook.get(k) for k in wanted}
            current["actions"] = sorted(current.get("actions") or [])
            if current != wanted:
                updated = self.api.request_json(
                    "PATCH",
                    f"/api/webhooks/{hook['id']}/",
                    json=wanted,
                    idempotent=True,
                    project=project_id,
                )
                return _webhook(updated, project_id, created=False)
            return _webhook(hook, project_id, created=False)
        created = self.api.request_json(
            "POST", "/api/webhooks/", json={"project": number, **wanted}, project=project_id
        )
        return _webhook(created, project_id, created=True)

    # --- capture internals ----------------------------------------------------------------

    def _task_pages(
        self, items: list[dict[str, Any]], annotations: list[dict[str, Any]]
    ) -> Iterator[TablePage]:
        yield TablePage("items", _batch("items", items))
        if annotations:
            yield TablePage("annotations", _batch("annotations", annotations))

    def _fetch_user(self, user_id: int) -> dict[str, Any] | None:
        try:
            found = self.api.request_json("GET", f"/api/users/{user_id}/")
        except PlatformNotFound:
            return None
        return found if isinstance(found, dict) and isinstance(found.get("id"), int) else None

    def _user_rows(self, users: _Users, project_id: str) -> list[dict[str, Any]]:
        if users.unknown_emails:
            logger.warning(
                "%s project %s: %d draft author(s) are not users of the organization",
                PLATFORM,
                project_id,
                len(users.unknown_emails),
            )
        return [user_row(users.by_id[user_id]) for user_id in sorted(users.referenced)]

    def _list_users(self, project_id: str | None) -> list[dict[str, Any]]:
        listing = self.api.request_json("GET", "/api/users/", project=project_id)
        if isinstance(listing, dict):  # a paginated answer, should a server give one
            listing = listing.get("results", [])
        return [u for u in listing if isinstance(u, dict) and isinstance(u.get("id"), int)]

    def _export_rows(
        self, number: int, project_id: str, users: _Users
    ) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Rows of the project's tasks from snapshot exports, in id order.

        The project is exported in task id ranges (:meth:`_export_ranges`), built up to
        ``export_concurrency`` at a time and read in order, each deleted once read: the client
        converts one range while the server builds the next, and no request has to hold the
        whole project. Exports name predictions by id only (expanding them costs the server a
        query and a serializer per task); their bodies come from one streamed
        ``/api/predictions`` listing, run first and spooled to a local SQLite file, and are
        merged back by task.
        """
        ranges = self._export_ranges(number, project_id)
        live: set[int] = set()  # built and not deleted yet
        lock = threading.Lock()

        def build(low: int | None, high: int | None) -> tuple[int, int | None]:
            export_id, count = self._build_export(number, project_id, low, high)
            with lock:
                live.add(export_id)
            return export_id, count

        with (
            tempfile.TemporaryDirectory(prefix="labelvault-ls-") as tmp,
            ThreadPoolExecutor(
                max_workers=self.options.export_concurrency, thread_name_prefix="ls-export"
            ) as pool,
        ):
            spool = _PredictionSpool(Path(tmp) / "predictions.sqlite3")
            predictions = self._stream_array(
                "/api/predictions/", {"project": number}, project_id, "predictions"
            )
            loading = pool.submit(spool.load, predictions)
            # One range more than the pool builds at once: the next is built while one is read.
            ahead = self.options.export_concurrency + 1
            builds = collections.deque(pool.submit(build, *r) for r in ranges[:ahead])
            waiting = collections.deque(ranges[ahead:])

            def exported() -> Iterator[dict[str, Any]]:
                for low, high in ranges:
                    export_id, count = builds.popleft().result()
                    if waiting:
                        builds.append(pool.submit(build, *waiting.popleft()))
                    yield from self._exported(
                        number, export_id, project_id, low=low, high=high, count=count
                    )
                    self._delete_export(number, export_id, project_id)
                    with lock:
                        live.discard(export_id)

            try:
                loading.result()
                merge = spool.merger()
                for task in _in_order(exported(), number, project_id):
                    item, rows = _task_head(task, users)
                    rows.extend(_prediction_rows(merge(task["id"], task.get("predictions")), item))
                    yield item, rows
            finally:
                spool.stop()
                for future in builds:
                    future.cancel()
                pool.shutdown(wait=True)
                failure = loading.exception()
                if failure is not None:  # the capture's own error is the one raised
                    logger.debug("predictions listing stopped: %s", failure)
                spool.close()
                for export_id in sorted(live):
                    self._delete_export(number, export_id, project_id)

    def _export_ranges(self, number: int, project_id: str) -> list[tuple[int | None, int | None]]:
        """Task id ranges that cover every id, each of at most about
        ``export_partition_tasks`` tasks.

        Several builds at once (``export_concurrency`` > 1) get at least two ranges each, so
        the server builds while the client reads; no range is cut below
        ``export_min_range_tasks``, where the fixed cost of an export (about 0.1 s) would
        outweigh it. The ranges split the span from the first to the last task id evenly (a
        project's ids are mostly dense); the first range is open below and the last open
        above, so a task created meanwhile still falls in exactly one. A project that needs
        one range is exported without a view.
        """
        size = self.options.export_partition_tasks
        concurrency = self.options.export_concurrency
        if size == 0:
            return [(None, None)]
        first, total = self._edge_task(number, project_id, "tasks:id")
        parts = max(-(-total // size), 2 * concurrency if concurrency > 1 else 1)
        parts = min(parts, total // self.options.export_min_range_tasks)
        if first is None or parts <= 1:
            return [(None, None)]
        last, _ = self._edge_task(number, project_id, "-tasks:id")
        if last is None or last - first + 1 < parts:
            return [(None, None)]
        width = (last - first + 1) / parts
        cuts = sorted({first + round(width * i) for i in range(1, parts)})
        return list(zip([None, *cuts], [cut - 1 for cut in cuts] + [None], strict=True))

    def _edge_task(self, number: int, project_id: str, ordering: str) -> tuple[int | None, int]:
        """The id of the first task in ``ordering`` and the project's task count."""
        page = self.api.request_json(
            "GET",
            "/api/tasks",
            params={
                "project": number,
                "page": 1,
                "page_size": 1,
                "query": json.dumps({"ordering": [ordering]}),
            },
            project=project_id,
        )
        tasks = page.get("tasks") if isinstance(page, dict) else None
        total = page.get("total") if isinstance(page, dict) else None
        if not isinstance(tasks, list) or not isinstance(total, int):
            raise PaginationError(
                f"{PLATFORM}: the task listing of project {number} has no 'tasks' and 'total'",
                platform=PLATFORM,
                project=project_id,
            )
        task_id = tasks[0].get("id") if tasks and isinstance(tasks[0], dict) else None
        return (task_id if _ints(task_id) else None), total

    def _build_export(
        self, number: int, project_id: str, low: int | None, high: int | None
    ) -> tuple[int, int | None]:
        """Build the snapshot export of tasks ``low..high`` (``None``: open); its id and its
        task count. A range is selected through a Data Manager view, deleted afterwards."""
        if low is None and high is None:
            return self._create_export(number, project_id, view_id=None)
        view = self.api.request_json(
            "POST",
            "/api/dm/views/",
            json={
                "project": number,
                "data": {
                    "title": f"labelvault capture {low or ''}..{high or ''}",
                    "filters": {"conjunction": "and", "items": [_id_filter(low, high)]},
                },
            },
            project=project_id,
        )
        view_id = int(view["id"])
        try:
            return self._create_export(number, project_id, view_id=view_id)
        finally:
            try:
                self.api.request("DELETE", f"/api/dm/views/{view_id}/", project=project_id)
            except PlatformError as exc:
                logger.warning("could not delete Data Manager view %s: %s", view_id, exc.message)

    def _create_export(
        self, number: int, project_id: str, *, view_id: int | None
    ) -> tuple[int, int | None]:
        body: dict[str, Any] = {
            "title": "labelvault capture",
            "serialization_options": _EXPORT_OPTIONS,
        }
        if view_id is not None:
            body["task_filter_options"] = {"view": view_id}
        export = self.api.request_json(
            "POST", f"/api/projects/{number}/exports/", json=body, project=project_id
        )
        export_id = int(export["id"])
        try:
            export = self._wait_for_export(number, export_id, export, project_id)
        except BaseException:
            self._delete_export(number, export_id, project_id)
            raise
        counters = export.get("counters")
        count = counters.get("task_number") if isinstance(counters, dict) else None
        return export_id, (count if _ints(count) else None)

    def _delete_export(self, number: int, export_id: int, project_id: str) -> None:
        try:
            self.api.request(
                "DELETE", f"/api/projects/{number}/exports/{export_id}", project=project_id
            )
        except PlatformError as exc:
            logger.warning("could not delete export %s: %s", export_id, exc.message)

    def _exported(
        self,
        number: int,
        export_id: int,
        project_id: str,
        *,
        low: int | None,
        high: int | None,
        count: int | None,
    ) -> Iterator[dict[str, Any]]:
        """The tasks of export ``export_id`` (of ids ``low..high``), put back in id order
        within ``export_reorder_window`` and checked against the range and the count."""
        window: list[tuple[int, int, dict[str, Any]]] = []
        emitted = -1
        seen = 0
        download = self._stream_array(
            f"/api/projects/{number}/exports/{export_id}/download",
            {"exportType": "JSON"},
            project_id,
            f"export {export_id}",
        )
        for seen, task in enumerate(download, start=1):
            task_id = task.get("id") if isinstance(task, dict) else None
            if not isinstance(task_id, int) or task_id <= emitted:
                raise PaginationError(
                    f"{PLATFORM}: the export of project {number} is not in task id order "
                    f"(task {task_id!r} after {emitted}); capture with "
                    "capture_mode='list' or a larger export_reorder_window",
                    platform=PLATFORM,
                    project=project_id,
                )
            if (low is not None and task_id < low) or (high is not None and task_id > high):
                raise PaginationError(
                    f"{PLATFORM}: the export of tasks {low}..{high} of project {number} holds "
                    f"task {task_id}: the server did not apply the Data Manager view; export "
                    "in one request with LABELVAULT_LABELSTUDIO_EXPORT_PARTITION_TASKS=0",
                    platform=PLATFORM,
                    project=project_id,
                )
            heapq.heappush(window, (task_id, seen, task))
            if len(window) > self.options.export_reorder_window:
                emitted, _, first = heapq.heappop(window)
                yield first
        while window:
            emitted, _, first = heapq.heappop(window)
            yield first
        if count is not None and seen != count:
            raise PaginationError(
                f"{PLATFORM}: export {export_id} of project {number} announced {count} tasks "
                f"but held {seen}",
                platform=PLATFORM,
                project=project_id,
            )

    def _wait_for_export(
        self, number: int, export_id: int, export: dict[str, Any], project_id: str
    ) -> dict[str, Any]:
        """The export once the server says it is completed (polled with backoff)."""
        deadline = time.monotonic() + self.options.export_timeout
        delay = 0.2
        while export.get("status") != "completed":
            if export.get("status") == "failed":
                raise PlatformUnavailable(
                    f"{PLATFORM}: the export of project {number} failed on the server",
                    platform=PLATFORM,
                    project=project_id,
                )
            if time.monotonic() > deadline:
                raise PlatformUnavailable(
                    f"{PLATFORM}: the export of project {number} did not complete in "
                    f"{self.options.export_timeout:.0f} s",
                    platform=PLATFORM,
                    project=project_id,
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            export = self.api.request_json(
                "GET", f"/api/projects/{number}/exports/{export_id}", project=project_id
            )
        return export

    def _stream_array(
        self, path: str, params: Mapping[str, Any], project_id: str, what: str
    ) -> Iterator[Any]:
        """The elements of a JSON array answer, parsed as the bytes arrive."""
        request = self.api.client.build_request("GET", path, params=params)
        context = CallContext(
            platform=PLATFORM,
            method="GET",
            url=self.api.redactor.url(request.url),
            project=project_id,
            base_url=self.base_url,
        )

        def attempt() -> httpx.Response:
            response = self.api.client.send(request, stream=True)
            if response.status_code in RETRY_STATUSES:
                response.read()
                response.close()
                raise RetryableStatus(response)
            return response

        try:
            response = retry_policy(self.settings, idempotent=True)(attempt)
        except RetryableStatus as exc:
            raise self._response_error(exc.response, context) from None
        except httpx.TransportError as exc:
            raise PlatformUnavailable(
                f"{PLATFORM}: GET {context.url} failed: {type(exc).__name__}: "
                f"{self.api.redactor.text(str(exc))}",
                platform=PLATFORM,
                project=project_id,
            ) from None
        try:
            if not response.is_success:
                response.read()
                raise self._response_error(response, context)
            yield from iter_json_array(response.iter_bytes(1 << 20))
        except httpx.TransportError as exc:
            raise PlatformUnavailable(
                f"{PLATFORM}: the download of {what} broke off: "
                f"{type(exc).__name__}: {self.api.redactor.text(str(exc))}",
                platform=PLATFORM,
                project=project_id,
            ) from None
        except ValueError as exc:
            raise PlatformUnavailable(
                f"{PLATFORM}: {what} of project {project_id} is not a complete JSON array: {exc}",
                platform=PLATFORM,
                project=project_id,
            ) from None
        finally:
            response.close()

    def _response_error(self, response: httpx.Response, context: CallContext) -> PlatformError:
        detail = self.api.redactor.text(" ".join(response.text.split())[:500]) or "(empty body)"
        return self._classify(response, context, detail) or default_error(response, context, detail)

    def _task_request(self, number: int) -> PageRequest:
        return PageRequest(
            "GET",
            "/api/tasks",
            params={
                "project": number,
                "fields": "all",
                "query": json.dumps({"ordering": ["tasks:id"]}),
            },
        )

    def _list_tasks(self, number: int, project_id: str) -> Iterator[dict[str, Any]]:
        """Tasks from ``/api/tasks?fields=all``, page by page, until ``total`` were seen."""
        page_size = self.options.page_size
        concurrency = max(1, self.options.list_concurrency)
        paginator = PageNumberPaginator(
            per_page=page_size,
            page_param="page",
            per_page_param="page_size",
            entities_key="tasks",
            total_key="total",
            pages_key=None,
            per_page_key=None,
            in_body=False,
        )
        pages = paginate(self.api, self._task_request(number), paginator)
        first = next(pages)
        yield from first
        if concurrency == 1 or first.total is None or first.total <= len(first):
            for page in pages:
                yield from page
            return
        total = first.total
        count = len(first)
        last_page = -(-total // page_size)
        request = self._task_request(number)

        def fetch(page_number: int) -> dict[str, Any]:
            params = {**request.params, "page": page_number, "page_size": page_size}
            payload: dict[str, Any] = self.api.request_json(
                "GET", request.url, params=params, project=project_id
            )
            return payload

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for payload in pool.map(fetch, range(2, last_page + 1)):
                if payload.get("total") != total:
                    raise PaginationError(
                        f"{PLATFORM}: project {number} had {total} tasks, then "
                        f"{payload.get('total')} while it was listed",
                        platform=PLATFORM,
                        project=project_id,
                    )
                tasks = payload.get("tasks") or []
                count += len(tasks)
                yield from tasks
        if count != total:
            raise PaginationError(
                f"{PLATFORM}: project {number} announced {total} tasks but listed {count}",
                platform=PLATFORM,
                project=project_id,
            )

    # --- restore internals ----------------------------------------------------------------

    def _restore_users(self, batches: Iterator[pa.RecordBatch], counts: dict[str, int]) -> None:
        known = {u.get("email") for u in self._list_users(None)}
        for user in _rows(batches):
            email = user.get("email")
            if not email or email in known:
                continue
            raw = json.loads(user.get("raw") or "{}")
            login = user.get("login") or email
            self.api.request_json(
                "POST",
                "/api/users/",
                json={
                    "email": email,
                    "username": login,
                    "first_name": raw.get("first_name") or "",
                    "last_name": raw.get("last_name") or "",
                },
            )
            known.add(email)
            counts["users_created"] += 1

    def _create_project(
        self, title: str, description: str, label_config: Any, settings: dict[str, Any]
    ) -> str:
        body = {k: v for k, v in settings.items() if k != "model_version"}
        body.update(title=title, description=description)
        if isinstance(label_config, str) and label_config:
            body["label_config"] = label_config
        project = self.api.request_json("POST", "/api/projects", json=body)
        return str(project["id"])

    def _patch_project(self, number: int, fields: dict[str, Any]) -> None:
        self.api.request(
            "PATCH", f"/api/projects/{number}", json=fields, idempotent=True, project=str(number)
        )

    def _existing_tasks(self, project_id: str) -> dict[str, int]:
        """Source key → task id of the tasks a previous restore already imported."""
        number = self._project_number(project_id)
        paginator = PageNumberPaginator(
            per_page=self.options.page_size,
            per_page_param="page_size",
            entities_key="tasks",
            total_key="total",
            pages_key=None,
            per_page_key=None,
            in_body=False,
        )
        request = PageRequest("GET", "/api/tasks", params={"project": number})
        existing: dict[str, int] = {}
        for page in paginate(self.api, request, paginator, project=project_id):
            for task in page:
                marker = (task.get("meta") or {}).get(SOURCE_META_KEY)
                if isinstance(marker, dict) and isinstance(marker.get("source"), str):
                    existing[marker["source"]] = int(task["id"])
        return existing

    def _restore_tasks(
        self,
        number: int,
        items: Iterator[pa.RecordBatch],
        annotations: Iterator[pa.RecordBatch],
        existing: dict[str, int],
        counts: dict[str, int],
    ) -> None:
        """Import the tasks batch by batch. One worker thread sends every write, in order and
        one at a time, while this thread reads and serializes the next batch."""
        pending = _Pending(_rows(annotations))
        batch: list[_TaskImport] = []
        size = 0
        limit = max(1, min(self.options.import_first_batch_tasks, self.options.import_batch_tasks))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ls-import") as writer:
            inflight: Future[None] | None = None

            def send(task: Callable[..., None], *args: Any) -> None:
                nonlocal inflight
                if inflight is not None:
                    inflight.result()
                inflight = writer.submit(task, *args)

            for item in _rows(items):
                key = str(item["key"])
                rows = pending.take(key)
                if key in existing:
                    counts["tasks_skipped"] += 1
                    drafts = [r for r in rows if r["kind"] == AnnotationKind.DRAFT.value]
                    if drafts:
                        send(self._restore_drafts, existing[key], key, drafts, counts)
                    continue
                task = _TaskImport.build(item, rows)
                batch.append(task)
                size += len(task.body) + 1
                if len(batch) >= limit or size >= self.options.import_batch_bytes:
                    send(self._import, number, batch, counts)
                    batch, size = [], 0
                    limit = self.options.import_batch_tasks
            pending.finish()
            if batch:
                send(self._import, number, batch, counts)
            if inflight is not None:
                inflight.result()

    def _import(self, number: int, batch: list[_TaskImport], counts: dict[str, int]) -> None:
        body = b"[" + b",".join(task.body for task in batch) + b"]"
        answer = self.api.request_json(
            "POST",
            f"/api/projects/{number}/import",
            params={"return_task_ids": "true"},
            content=body,
            headers={"Content-Type": "application/json"},
            project=str(number),
        )
        task_ids = answer.get("task_ids") if isinstance(answer, dict) else None
        if not isinstance(task_ids, list) or len(task_ids) != len(batch):
            raise RequestRejected(
                f"{PLATFORM}: the import into project {number} answered "
                f"{len(task_ids) if isinstance(task_ids, list) else 'no'} task ids for "
                f"{len(batch)} tasks",
                platform=PLATFORM,
                project=str(number),
            )
        counts["tasks"] += len(batch)
        counts["annotations"] += sum(task.annotations for task in batch)
        counts["predictions"] += sum(task.predictions for task in batch)
        for candidate, task in zip(task_ids, batch, strict=True):
            if task.drafts:
                task_id = self._find_task(number, task.key, candidate)
                self._restore_drafts(task_id, task.key, task.drafts, counts)

    def _find_task(self, number: int, key: str, candidate: int) -> int:
        """The new task restored from ``key``: the import's id for it, checked by its marker."""
        task = self.api.request_json("GET", f"/api/tasks/{candidate}", project=str(number))
        marker = (task.get("meta") or {}).get(SOURCE_META_KEY) or {}
        if marker.get("source") == key and task.get("project") == number:
            return candidate
        found = self._existing_tasks(str(number)).get(key)
        if found is None:
            raise RequestRejected(
                f"{PLATFORM}: the task restored from {key} is not in project {number}",
                platform=PLATFORM,
                project=str(number),
            )
        return found

    def _restore_drafts(
        self, task_id: int, key: str, drafts: list[dict[str, Any]], counts: dict[str, int]
    ) -> None:
        """Create the drafts of one restored task that it does not have yet."""
        task = self.api.request_json("GET", f"/api/tasks/{task_id}")
        have = {d.get("import_id") for d in task.get("drafts") or [] if isinstance(d, dict)}
        annotations = {
            a.get("import_id"): a.get("id")
            for a in task.get("annotations") or []
            if isinstance(a, dict)
        }
        for row in drafts:
            raw = json.loads(row["raw"])
            if raw.get("id") in have:
                continue
            path = f"/api/tasks/{task_id}/drafts"
            parent = raw.get("annotation")
            if isinstance(parent, int):
                new_parent = annotations.get(parent)
                if new_parent is None:
                    raise RequestRejected(
                        f"{PLATFORM}: the annotation of draft {raw.get('id')} (task {key}) "
                        "was not restored",
                        platform=PLATFORM,
                    )
                path = f"/api/tasks/{task_id}/annotations/{new_parent}/drafts"
            created = self.api.request_json(
                "POST",
                path,
                json={
                    "result": raw.get("result"),
                    "lead_time": raw.get("lead_time"),
                    "was_postponed": bool(raw.get("was_postponed", False)),
                    "import_id": raw.get("id"),
                },
            )
            counts["drafts"] += 1
            # Label Studio makes the caller the author of a draft.
            if row.get("author") and created.get("user") != row["author"]:
                counts["drafts_reassigned"] += 1

    # --- helpers --------------------------------------------------------------------------

    def _project_number(self, project_id: str) -> int:
        text = str(project_id).strip()
        if not text.isdigit():
            raise PlatformNotFound(
                f"{PLATFORM}: {project_id!r} is not a Label Studio project id (a number)",
                platform=PLATFORM,
                project=str(project_id),
            )
        return int(text)

    def _get_json(
        self, path: str, project_id: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        payload = self.api.request_json("GET", path, params=params, project=project_id)
        if not isinstance(payload, dict):
            raise RequestRejected(
                f"{PLATFORM}: GET {path} did not answer a JSON object",
                platform=PLATFORM,
                project=project_id,
            )
        return payload

    def _classify(
        self, response: httpx.Response, context: CallContext, detail: str
    ) -> PlatformError | None:
        status = response.status_code
        body = _json_body(response)
        raw_detail = body.get("detail")
        message = raw_detail if isinstance(raw_detail, str) else ""
        where = f"{PLATFORM} at {self.instance}"
        kwargs: dict[str, Any] = {
            "platform": PLATFORM,
            "project": context.project,
            "status": status,
        }
        if status in (401, 403):
            hint = ""
            if "legacy token" in message.lower():
                hint = (
                    "; legacy tokens are disabled for this organization: use a personal "
                    "access token, or enable legacy tokens in the organization's settings"
                )
            return AuthenticationError(
                f"{where} refused the API token (HTTP {status}: {detail}){hint}; "
                "the token is not shown here",
                **kwargs,
            )
        if status == 404 and "invalid page" in message.lower():
            return PaginationError(
                f"{where}: {context.method} {context.url} is past the last page; tasks were "
                "removed while the project was listed",
                **kwargs,
            )
        if status == 404 and context.project and "project" in message.lower():
            return PlatformNotFound(
                f"{where}: project {context.project} does not exist or is not visible to this "
                f"token (HTTP 404: {detail})",
                **kwargs,
            )
        validation = body.get("validation_errors")
        if 400 <= status < 500 and status != 404 and isinstance(validation, dict):
            errors = self.api.redactor.text(json.dumps(validation, ensure_ascii=False)[:500])
            return RequestRejected(
                f"{where}: {context.method} {context.url} answered {status}: {detail} {errors}",
                **kwargs,
            )
        return None


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return {}
    return body if isinstance(body, dict) else {}


def _webhook(hook: dict[str, Any], project_id: str, *, created: bool) -> Webhook:
    return Webhook(
        id=int(hook["id"]),
        project_id=project_id,
        url=str(hook.get("url")),
        actions=tuple(sorted(hook.get("actions") or [])),
        is_active=bool(hook.get("is_active")),
        created=created,
    )


def _ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


class _PredictionSpool:
    """Predictions of a project, spooled to a local SQLite file and read back by task."""

    def __init__(self, path: Path) -> None:
        self._stopped = threading.Event()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE p (task INTEGER, id INTEGER, body TEXT, PRIMARY KEY (task, id))"
            " WITHOUT ROWID"
        )

    def load(self, predictions: Iterator[Any]) -> None:
        """Store every prediction (a JSON object with ``id`` and ``task``) until stopped."""
        try:
            rows = (
                (p["task"], p["id"], json.dumps(p, ensure_ascii=False))
                for p in itertools.takewhile(lambda _: not self._stopped.is_set(), predictions)
                if isinstance(p, dict) and _ints(p.get("task"), p.get("id"))
            )
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO p VALUES (?, ?, ?)", rows)
        finally:
            close = getattr(predictions, "close", None)
            if close is not None:
                close()

    def merger(self) -> Callable[[int, Any], Any]:
        """A function of a task's id and its ``predictions`` (ids) that answers the
        predictions themselves; called with task ids in increasing order."""
        cursor = self._db.execute("SELECT task, id, body FROM p ORDER BY task, id")
        current = cursor.fetchone()

        def merge(task_id: int, wanted: Any) -> Any:
            nonlocal current
            while current is not None and current[0] < task_id:
                current = cursor.fetchone()
            found: list[dict[str, Any]] = []
            while current is not None and current[0] == task_id:
                found.append(json.loads(current[2]))
                current = cursor.fetchone()
            if not isinstance(wanted, list):
                return wanted
            ids = {p if isinstance(p, int) else p.get("id") for p in wanted}
            return [p for p in found if p["id"] in ids]

        return merge

    def stop(self) -> None:
        """Make a running :meth:`load` skip the rest (the capture failed or was closed)."""
        self._stopped.set()

    def close(self) -> None:
        """Close the database (its directory is removed by the caller)."""
        self._db.close()


class _Pending:
    """Annotation rows grouped by item, consumed in step with the items stream."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self._rows = rows
        self._next = next(rows, None)

    def take(self, item_key: str) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        while self._next is not None and self._next["item_key"] == item_key:
            taken.append(self._next)
            self._next = next(self._rows, None)
        if self._next is not None and self._next["item_key"] < item_key:
            raise RequestRejected(
                f"annotation {self._next['key']} names item {self._next['item_key']}, which is "
                "not in the version (or the tables are out of key order)",
                platform=PLATFORM,
            )
        return taken

    def finish(self) -> None:
        if self._next is not None:
            raise RequestRejected(
                f"annotation {self._next['key']} names item {self._next['item_key']}, which is "
                "not in the version",
                platform=PLATFORM,
            )


@dataclass
class _TaskImport:
    """One task of a bulk import, already serialized."""

    key: str
    body: bytes
    annotations: int
    predictions: int
    drafts: list[dict[str, Any]]

    @classmethod
    def build(cls, item: dict[str, Any], rows: list[dict[str, Any]]) -> _TaskImport:
        raw = json.loads(item["raw"])
        meta = _strip_meta(raw.get("meta"))
        meta = dict(meta) if isinstance(meta, dict) else {}
        meta[SOURCE_META_KEY] = {"source": str(item["key"])}
        task: dict[str, Any] = {"data": raw.get("data"), "meta": meta}
        if "allow_skip" in raw:
            task["allow_skip"] = raw["allow_skip"]
        annotations: list[dict[str, Any]] = []
        predictions: list[dict[str, Any]] = []
        drafts: list[dict[str, Any]] = []
        for row in rows:
            kind = row["kind"]
            if kind == AnnotationKind.DRAFT.value:
                drafts.append(row)
                continue
            source = json.loads(row["raw"])
            if kind == AnnotationKind.PREDICTION.value:
                prediction = {"result": source.get("result")}
                for name in ("score", "model_version"):
                    if source.get(name) is not None:
                        prediction[name] = source[name]
                predictions.append(prediction)
            elif kind == AnnotationKind.ANNOTATION.value:
                annotation: dict[str, Any] = {
                    "id": source.get("id"),
                    "result": source.get("result"),
                    "was_cancelled": bool(source.get("was_cancelled", False)),
                    "ground_truth": bool(source.get("ground_truth", False)),
                    "lead_time": source.get("lead_time"),
                }
                if row.get("author"):
                    annotation["completed_by"] = {"email": row["author"]}
                annotations.append(annotation)
        if annotations:
            task["annotations"] = annotations
        if predictions:
            task["predictions"] = predictions
        body = json.dumps(task, ensure_ascii=False, allow_nan=True).encode("utf-8")
        return cls(
            key=str(item["key"]),
            body=body,
            annotations=len(annotations),
            predictions=len(predictions),
            drafts=drafts,
        )


def register_webhook(
    base_url: str,
    token: str,
    project_id: str,
    url: str,
    *,
    actions: Sequence[str] = DEFAULT_WEBHOOK_ACTIONS,
    headers: Mapping[str, str] | None = None,
    settings: RequestSettings | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Webhook:
    """Register (idempotently) a webhook on a Label Studio project; see
    :meth:`LabelStudioPlatform.register_webhook`."""
    with LabelStudioPlatform(base_url, token, settings=settings, transport=transport) as ls:
        return ls.register_webhook(project_id, url, actions=actions, headers=headers)


register_platform(PLATFORM, LabelStudioPlatform)
