"""A fake Supervisely server that follows ``reference/supervisely-api.md``.

Every call is ``POST /public/api/v3/<method>`` with an ``x-api-key`` header and a JSON body
(multipart where the reference says so). The fake keeps its state in memory and answers with
the reference's shapes: page-mode listings ``{"total","perPage","pagesCount","entities"}``,
token-mode listings ``{"total","after","entities"}``, errors as non-200 plus
``{"error": "...", "details": {...}}``, and the versions reserve/commit/cancel protocol.

One core (:meth:`FakeSupervisely.handle`) serves two front ends:

- :meth:`FakeSupervisely.transport` — an in-process ``httpx`` transport (no sockets);
- :attr:`FakeSupervisely.app` — an ASGI app, served on 127.0.0.1 by :meth:`FakeSupervisely.serve`
  for wire-level tests.

Faults (429 with ``Retry-After``, 5xx, slow answers, dropped connections) are switched on with a
:class:`FaultPlan`. A share of the 5xx, slow and dropped faults (``FaultPlan.landed``) hits after
the server did the work, as a real server's answer can be lost after the write landed. Whether
a request is hit depends only on the seed, the request and how often
the same request was seen — never on thread timing — and the same request is never failed more
than ``max_consecutive`` times in a row, so a retrying client always gets through.

:func:`generate_rich_project` fills the fake with a project that exercises everything capture
and restore must preserve.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import math
import random
import secrets
import string
import struct
import threading
import urllib.parse
import zlib
from collections import UserDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import orjson

from labelvault import jsonfast
from labelvault.http import RequestSettings
from labelvault.http.multipart import iter_multipart
from labelvault.platforms.supervisely import SuperviselyPlatform
from tests.servers.asgi import serve_in_thread

API_PREFIX = "/public/api/v3/"
#: where the fake serves Team Files' ``fullStorageUrl`` (plain GET, as a storage bucket does)
STORAGE_PREFIX = "/teams_storage/"
SERVER_VERSION = "6.19.2"
FAULT_KINDS = ("429", "500", "502", "503", "slow", "drop")
#: fields the API answer has but the stored row lacks or holds differently
_IMAGE_DERIVED = frozenset({"tags", "labelsCount"})
_FIGURE_DERIVED = frozenset({"tags", "geometry"})

Json = Any


class ApiError(Exception):
    """An error answer: status plus the ``{"error", "details"}`` body."""

    def __init__(self, status: int, error: str, details: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {
            "error": error,
            "details": details if details is not None else {},
        }


@dataclass
class Reply:
    """What the core answers; the front ends turn it into HTTP."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Json, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """A JSON answer, encoded in compiled code as a real server's is: the fake's own
        encoding must not take the cores a client is measured on. Like ``JSON.stringify``,
        it writes NaN as ``null``; an integer beyond 64 bits goes through the standard
        library."""
        try:
            data = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            data = json.dumps(value, ensure_ascii=False).encode("utf-8")
        return cls(status, data, "application/json", dict(headers or {}))


@dataclass
class FaultPlan:
    """Which requests fail, and how.

    ``rate`` is the probability per request; ``kinds`` the faults to draw from; ``methods``
    limits faults to some API methods. At most ``max_faults`` faults are injected in total, and
    one request is never failed more than ``max_consecutive`` times in a row.
    """

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after: str = "1"
    max_faults: int = 10_000
    max_consecutive: int = 2
    methods: frozenset[str] | None = None
    slow_seconds: float = 0.3
    #: the share of 5xx/slow/drop faults that hit after the request was handled (it landed)
    landed: float = 0.0


@dataclass
class ScriptedFault:
    """Fail the next ``times`` calls of ``method`` with ``status`` (or a transport fault)."""

    method: str
    kind: str
    times: int
    retry_after: str | None = None
    body: Json = None
    #: the request is handled first, then the answer is lost or replaced by the fault
    landed: bool = False


def _name_taken(kind: str, name: str, existing_id: int) -> ApiError:
    """The server's 400 for a name already used by ``existing_id`` among its siblings."""
    return ApiError(
        400,
        f"{kind} name already exists",
        [{"type": "NONUNIQUE", "errors": [{"name": name, "id": existing_id}]}],
    )


def _iso(moment: datetime) -> str:
    """``2026-01-01T00:00:19.000Z``: the server's notation, milliseconds in UTC."""
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _token(n: int = 64) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _round_geometry(value: Json) -> Json:
    """What the server does without ``integerCoords: false``: rounds every coordinate."""
    if isinstance(value, float):
        return round(value)
    if isinstance(value, list):
        return [_round_geometry(v) for v in value]
    if isinstance(value, dict):
        return {k: (v if k == "data" else _round_geometry(v)) for k, v in value.items()}
    return value


def _apply_filters(
    rows: list[dict[str, Any]], filters: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    for flt in filters or []:
        try:
            name, op, value = flt["field"], flt["operator"], flt["value"]
        except (KeyError, TypeError) as exc:
            raise ApiError(400, "Validation error", {"message": f"bad filter {flt!r}"}) from exc
        if op in ("=", "eq"):
            rows = [r for r in rows if r.get(name) == value]
        elif op in ("!=", "not"):
            rows = [r for r in rows if r.get(name) != value]
        elif op == "in":
            wanted = set(value)
            rows = [r for r in rows if r.get(name) in wanted]
        elif op == "!in":
            unwanted = set(value)
            rows = [r for r in rows if r.get(name) not in unwanted]
        else:
            raise ApiError(400, "Validation error", {"message": f"unsupported operator {op!r}"})
    return rows


def _filtered_fields(body: dict[str, Any]) -> set[str]:
    """The fields a listing request filters or sorts on."""
    fields = {f.get("field") for f in body.get("filter") or [] if isinstance(f, dict)}
    if body.get("pagination_mode") != "token":
        fields.add(body.get("sort") or "id")
    return {f for f in fields if isinstance(f, str)}


def _allowed_values(filters: list[Any], field_name: str) -> set[Any] | None:
    """The values ``=``/``in`` filters on ``field_name`` allow; None when they allow any.

    Only narrows the rows to look at: :func:`_apply_filters` still checks every filter.
    """
    wanted: set[Any] | None = None
    for flt in filters:
        if not isinstance(flt, dict) or flt.get("field") != field_name:
            continue
        op, value = flt.get("operator"), flt.get("value")
        try:
            if op in ("=", "eq"):
                allowed = {value}
            elif op == "in" and isinstance(value, list):
                allowed = set(value)
            else:
                continue
        except TypeError:  # unhashable values: leave the error to _apply_filters
            return None
        wanted = allowed if wanted is None else wanted & allowed
    return wanted


class IndexedTable(UserDict[int, dict[str, Any]]):
    """Stored rows by id, with the ids of the rows for each value of some fields.

    Every insert and delete goes through :meth:`__setitem__` / :meth:`__delitem__`, which keep
    the indexes; the indexed fields of a stored row never change (no API call changes them).
    Lookups answer in id order, which is creation order: ids only grow.
    """

    def __init__(self, *fields: str) -> None:
        self._indexes: dict[str, dict[Any, dict[int, None]]] = {f: {} for f in fields}
        super().__init__()

    def __setitem__(self, row_id: int, row: dict[str, Any]) -> None:
        if row_id in self.data:
            self._unindex(row_id)
        self.data[row_id] = row
        for name, index in self._indexes.items():
            index.setdefault(row[name], {})[row_id] = None

    def __delitem__(self, row_id: int) -> None:
        self._unindex(row_id)
        del self.data[row_id]

    def _unindex(self, row_id: int) -> None:
        row = self.data[row_id]
        for name, index in self._indexes.items():
            ids = index[row[name]]
            del ids[row_id]
            if not ids:
                del index[row[name]]

    def count(self, name: str, value: Any) -> int:
        """How many rows have ``value`` in field ``name``."""
        return len(self._indexes[name].get(value, ()))

    def where(self, name: str, values: Iterable[Any]) -> list[dict[str, Any]]:
        """The rows whose field ``name`` holds one of ``values``, in id order."""
        index = self._indexes[name]
        ids = [row_id for value in set(values) for row_id in index.get(value, ())]
        return [self.data[row_id] for row_id in sorted(ids)]


class FakeSupervisely:
    """The fake server's state and request handling (see the module docstring)."""

    def __init__(self, *, default_per_page: int = 50, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(5001)
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.default_per_page = default_per_page
        self.random = random.Random(seed)
        self.users: dict[int, dict[str, Any]] = {}
        self.tokens: dict[str, int] = {}
        self.teams: dict[int, dict[str, Any]] = {}
        self.workspaces: dict[int, dict[str, Any]] = {}
        self.projects: dict[int, dict[str, Any]] = {}
        self.metas: dict[int, dict[str, Any]] = {}
        self.datasets: dict[int, dict[str, Any]] = {}
        self.images = IndexedTable("datasetId")
        self.figures = IndexedTable("entityId", "datasetId")
        self.alpha: dict[int, Json] = {}
        #: figure id → the login of its labeler; only annotation info answers it (not
        #: ``figures.list``), as the reference says
        self.figure_authors: dict[int, str] = {}
        self.image_tags: dict[int, list[dict[str, Any]]] = {}
        self.figure_tags: dict[int, list[dict[str, Any]]] = {}
        self.versions: dict[int, dict[str, Any]] = {}
        #: Team Files: (team id, path) → FileInfo JSON plus the file's bytes under "content"
        self.team_files: dict[tuple[int, str], dict[str, Any]] = {}
        #: ids of workspaces hidden with ``workspaces.visibility.set``
        self.hidden_workspaces: set[int] = set()
        #: hash → media info, for every hash stored on the instance
        self.hashes: dict[str, dict[str, Any]] = {}
        #: link → media info, for every link that answers
        self.links: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Json]] = []
        self.faults = FaultPlan()
        self.scripted: list[ScriptedFault] = []
        self.fault_log: list[tuple[str, str]] = []
        self._seen: dict[str, int] = {}
        self._consecutive: dict[str, int] = {}
        #: method → added to the ``total`` of every page (to simulate inconsistent listings)
        self.total_skew: dict[str, int] = {}
        #: echo the caller's token in error bodies (a badly behaved server)
        self.echo_token_in_errors = False
        self.team_id = self._new_team("Team Ω")
        self.user_id, self.token = self.add_user("owner")
        self.workspace_id = self.add_workspace("Main workspace")
        self.methods: dict[str, Callable[[dict[str, Any], Json], Json]] = {
            "instance.version": self._instance_version,
            "projects.info": self._projects_info,
            "projects.meta": self._projects_meta,
            "projects.list": self._projects_list,
            "projects.add": self._projects_add,
            "projects.editInfo": self._projects_edit_info,
            "projects.meta.update": self._projects_meta_update,
            "projects.settings.update": self._projects_settings_update,
            "datasets.list": self._datasets_list,
            "datasets.info": self._datasets_info,
            "datasets.add": self._datasets_add,
            "images.list": self._images_list,
            "images.info": self._images_info,
            "images.internal.hashes.list": self._hashes_list,
            "images.bulk.add": self._images_bulk_add,
            "figures.list": self._figures_list,
            "figures.bulk.add": self._figures_bulk_add,
            "figures.bulk.download.geometry": self._figures_download_geometry,
            "figures.bulk.upload.geometry": self._figures_upload_geometry,
            "figures.tags.bulk.add": self._figure_tags_add,
            "tags.entities.bulk.add": self._image_tags_add,
            "annotations.bulk.info": self._annotations_bulk_info,
            "workspaces.info": self._workspaces_info,
            "workspaces.list": self._workspaces_list,
            "workspaces.add": self._workspaces_add,
            "workspaces.visibility.set": self._workspaces_visibility_set,
            "projects.remove": self._projects_remove,
            "projects.versions.reserve": self._versions_reserve,
            "projects.versions.commit": self._versions_commit,
            "projects.versions.cancel-reservation": self._versions_cancel,
            "projects.versions.list": self._versions_list,
            "projects.versions.update": self._versions_update,
            "file-storage.list": self._files_list,
            "file-storage.bulk.upload": self._files_bulk_upload,
            "file-storage.download": self._files_download,
        }
        from tests.fakes.supervisely_video import attach  # it imports this module

        #: the video endpoints and their data (``tests/fakes/supervisely_video.py``)
        self.video = attach(self)

    # --- setup helpers (used by tests and the generator) --------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def tick(self) -> str:
        """Advance the server clock by one second and return it."""
        self._clock += timedelta(seconds=1)
        return _iso(self._clock)

    def _new_team(self, name: str) -> int:
        team_id = self.next_id()
        self.teams[team_id] = {"id": team_id, "name": name, "usage": {"plan": "pro"}}
        return team_id

    def add_user(self, login: str, *, name: str | None = None) -> tuple[int, str]:
        """A user and a fresh API token (generated, never fixed in code)."""
        user_id = self.next_id()
        self.users[user_id] = {
            "id": user_id,
            "login": login,
            "name": name or login,
            "email": f"{login}@example.invalid",
        }
        token = _token(64)
        self.tokens[token] = user_id
        return user_id, token

    def add_workspace(self, name: str, description: str = "") -> int:
        ws_id = self.next_id()
        now = self.tick()
        self.workspaces[ws_id] = {
            "id": ws_id,
            "name": name,
            "description": description,
            "teamId": self.team_id,
            "createdAt": now,
            "updatedAt": now,
        }
        return ws_id

    def register_hash(self, *, width: int, height: int, ext: str = "jpg", seed: str = "") -> str:
        """Store media on the instance; returns its hash."""
        digest = base64.b64encode(hashlib.sha256(f"{seed}:{width}x{height}".encode()).digest())
        media_hash = digest.decode("ascii")
        self.hashes[media_hash] = {
            "width": width,
            "height": height,
            "size": width * height // 7 + 123,
            "ext": ext,
            "mime": f"image/{'jpeg' if ext == 'jpg' else ext}",
        }
        return media_hash

    def register_link(self, url: str, *, width: int, height: int, ext: str = "png") -> str:
        """A link that answers (``HEAD`` → 200, and the server can read its metadata)."""
        self.links[url] = {
            "width": width,
            "height": height,
            "size": width * height // 5 + 77,
            "ext": ext,
            "mime": f"image/{ext}",
        }
        return url

    def forget_hash(self, media_hash: str) -> None:
        """The instance lost this media (for ``skip_missed_entities`` tests)."""
        self.hashes.pop(media_hash, None)

    def break_link(self, url: str) -> None:
        """This link no longer answers."""
        self.links.pop(url, None)

    def touch_project(self, project_id: int) -> str:
        now = self.tick()
        self.projects[project_id]["updatedAt"] = now
        return now

    def fail_next(
        self,
        method: str,
        kind: str | int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        body: Json = None,
        landed: bool = False,
    ) -> None:
        """Script the next ``times`` calls of ``method`` to fail with ``kind`` (a status or
        ``"slow"``/``"drop"``); ``landed``: after the server did the work."""
        with self.lock:
            self.scripted.append(
                ScriptedFault(method, str(kind), times, retry_after, body, landed=landed)
            )

    def methods_called(self) -> list[str]:
        with self.lock:
            return [method for method, _ in self.calls]

    # --- the core ---------------------------------------------------------------------------

    def _decide_fault(self, method: str, raw: bytes) -> ScriptedFault | None:
        with self.lock:
            for scripted in self.scripted:
                if scripted.method == method and scripted.times > 0:
                    scripted.times -= 1
                    self.fault_log.append((method, scripted.kind))
                    return scripted
            plan = self.faults
            if plan.rate <= 0 or len(self.fault_log) >= plan.max_faults:
                return None
            if plan.methods is not None and method not in plan.methods:
                return None
            identity = hashlib.sha256(method.encode() + b"\0" + raw).hexdigest()
            seen = self._seen.get(identity, 0)
            self._seen[identity] = seen + 1
            draw = hashlib.sha256(f"{plan.seed}:{identity}:{seen}".encode()).digest()
            value = int.from_bytes(draw[:8], "big") / 2**64
            if value >= plan.rate or self._consecutive.get(identity, 0) >= plan.max_consecutive:
                self._consecutive[identity] = 0
                return None
            self._consecutive[identity] = self._consecutive.get(identity, 0) + 1
            kind = plan.kinds[int.from_bytes(draw[8:12], "big") % len(plan.kinds)]
            landed = kind != "429" and int.from_bytes(draw[12:20], "big") / 2**64 < plan.landed
            self.fault_log.append((method, f"{kind} landed" if landed else kind))
            return ScriptedFault(
                method, kind, 1, plan.retry_after if kind == "429" else None, landed=landed
            )

    @staticmethod
    def fault_reply(fault: ScriptedFault) -> Reply:
        status = int(fault.kind)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        body = fault.body or {
            "error": "Too Many Requests" if status == 429 else "Internal Server Error",
            "details": {"message": "injected fault"},
        }
        return Reply.json(body, status=status, headers=headers)

    def handle(
        self,
        method: str,
        raw: bytes,
        headers: dict[str, str],
        query: Mapping[str, str] | None = None,
    ) -> Reply:
        """Answer one API call (no faults; the front ends inject those).

        ``query`` is the URL's query string: only multipart calls read it (the Team Files
        upload takes ``?teamId=``), as ``body["__query__"]``.
        """
        token = headers.get("x-api-key", "")
        user_id = self.tokens.get(token)
        if user_id is None:
            details: dict[str, Any] = {"message": "Invalid or missing API token"}
            if self.echo_token_in_errors:
                details["received"] = {"x-api-key": token}
            return Reply.json({"error": "Unauthorized", "details": details}, status=401)
        content_type = headers.get("content-type", "")
        try:
            if content_type.startswith("multipart/form-data"):
                body: Json = {
                    "__multipart__": list(iter_multipart(raw, content_type)),
                    "__query__": dict(query or {}),
                    "__host__": headers.get("host", ""),
                }
            else:
                body = jsonfast.loads(raw or b"{}")  # json.loads' values, in compiled code
        except ValueError:
            return Reply.json({"error": "Bad request", "details": {"message": "invalid JSON"}}, 400)
        handler = self.methods.get(method)
        with self.lock:
            self.calls.append(
                (method, body if "__multipart__" not in (body or {}) else "<multipart>")
            )
        if handler is None:
            return Reply.json(
                {"error": "Not found", "details": {"message": f"unknown method {method}"}}, 404
            )
        try:
            with self.lock:
                result = handler(self.users[user_id], body)
        except ApiError as exc:
            if self.echo_token_in_errors:
                exc.body["details"] = {"detail": exc.body["details"], "token": token}
            return Reply.json(exc.body, status=exc.status)
        if isinstance(result, Reply):
            return result
        return Reply.json(result)

    def media(self, path: str) -> Reply:
        """``GET``/``HEAD`` on a link served by this fake."""
        for url in self.links:
            if url.endswith(path):
                return Reply(200, b"\x89PNG fake pixels", "image/png")
        return Reply(404, b"<html><body>404 Not Found</body></html>", "text/html")

    def get(self, path: str) -> Reply:
        """``GET``/``HEAD``: links served by this fake, and Team Files' storage URLs."""
        if path.startswith("/media/"):
            return self.media(path)
        if path.startswith(STORAGE_PREFIX):
            return self.storage_file(path)
        return Reply(404, b"<html><body>404 Not Found</body></html>", "text/html")

    # --- front end 1: in-process httpx transport ---------------------------------------------

    def platform(self, **options: Any) -> SuperviselyPlatform:
        """labelvault's Supervisely platform on :meth:`transport`: no sockets, and retries
        that do not sleep; ``options`` go to the platform (``batch_size``, …)."""
        return SuperviselyPlatform(
            "http://sly.test",
            self.token,
            settings=RequestSettings(backoff_jitter=0),
            transport=self.transport(),
            sleep=lambda seconds: None,
            **options,
        )

    def transport(self) -> httpx.BaseTransport:
        """An in-process transport: ``slow`` raises ReadTimeout, ``drop`` a protocol error."""

        def handler(request: httpx.Request) -> httpx.Response:
            path = request.url.path
            raw = request.read()
            if request.method == "POST" and path.startswith(API_PREFIX):
                method = path[len(API_PREFIX) :]
                fault = self._decide_fault(method, raw)
                query = dict(request.url.params)
                if fault is not None and fault.landed:
                    self.handle(
                        method, raw, {k.lower(): v for k, v in request.headers.items()}, query
                    )
                if fault is not None:
                    if fault.kind == "slow":
                        raise httpx.ReadTimeout("injected slow answer", request=request)
                    if fault.kind == "drop":
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a response.", request=request
                        )
                    reply = self.fault_reply(fault)
                else:
                    reply = self.handle(
                        method, raw, {k.lower(): v for k, v in request.headers.items()}, query
                    )
            elif request.method in ("GET", "HEAD"):
                reply = self.get(path)
            else:
                reply = Reply(404, b"<html><body>404 Not Found</body></html>", "text/html")
            headers = {"content-type": reply.content_type, **reply.headers}
            return httpx.Response(reply.status, headers=headers, content=reply.body)

        return httpx.MockTransport(handler)

    # --- front end 2: ASGI app on a real socket ----------------------------------------------

    @property
    def app(self) -> _AsgiApp:
        """The ASGI app (HTTP only)."""
        return _AsgiApp(self)

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer one ASGI HTTP request."""
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if scope["method"] == "POST" and path.startswith(API_PREFIX):
            method = path[len(API_PREFIX) :]
            fault = self._decide_fault(method, raw)
            handled = None
            if fault is not None and fault.landed:
                handled = await anyio.to_thread.run_sync(self.handle, method, raw, headers, query)
            if fault is not None and fault.kind == "slow":
                await anyio.sleep(self.faults.slow_seconds)
                fault = None
            if fault is not None and fault.kind == "drop":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"1000"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"tru', "more_body": True})
                raise ConnectionResetError("injected dropped connection")
            if fault is not None:
                reply = self.fault_reply(fault)
            elif handled is not None:
                reply = handled
            else:
                reply = await anyio.to_thread.run_sync(self.handle, method, raw, headers, query)
        elif scope["method"] in ("GET", "HEAD"):
            reply = self.get(path)
        else:
            reply = Reply(404, b"<html><body>404 Not Found</body></html>", "text/html")
        response_headers = [(b"content-type", reply.content_type.encode())]
        response_headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        response_headers.append((b"content-length", str(len(reply.body)).encode()))
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": response_headers}
        )
        body = b"" if scope["method"] == "HEAD" else reply.body
        await send({"type": "http.response.body", "body": body})

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the ASGI app on a free 127.0.0.1 port; yields the base URL."""
        with serve_in_thread(self.app) as url:
            yield url

    # --- listings -----------------------------------------------------------------------------

    def _page(self, method: str, body: dict[str, Any], rows: list[dict[str, Any]]) -> Json:
        total = len(rows) + self.total_skew.get(method, 0)
        if body.get("pagination_mode") == "token":
            per_page = int(body.get("per_page") or self.default_per_page)
            after = body.get("after")
            start = 0
            if after:
                try:
                    last_id = int(base64.urlsafe_b64decode(after.encode()).decode())
                except ValueError as exc:
                    raise ApiError(
                        400, "Validation error", {"message": "bad 'after' token"}
                    ) from exc
                start = next((i for i, r in enumerate(rows) if r["id"] > last_id), len(rows))
            chunk = rows[start : start + per_page]
            more = start + per_page < len(rows)
            token = (
                base64.urlsafe_b64encode(str(chunk[-1]["id"]).encode()).decode()
                if more and chunk
                else None
            )
            return {"total": total, "after": token, "entities": chunk}
        per_page = int(body.get("per_page") or self.default_per_page)
        page = int(body.get("page") or 1)
        if per_page < 1 or page < 1:
            raise ApiError(400, "Validation error", {"message": "page and per_page must be ≥ 1"})
        chunk = rows[(page - 1) * per_page : page * per_page]
        return {
            "total": total,
            "perPage": per_page,
            "pagesCount": math.ceil(len(rows) / per_page),
            "entities": chunk,
        }

    def _listing(
        self,
        method: str,
        body: dict[str, Any],
        rows: list[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
        derived: frozenset[str],
    ) -> Json:
        """Sort, filter and page stored rows, rendering only the page's rows as the API answers.

        ``derived`` names the fields ``render`` adds or changes; a request that filters or sorts
        on one of them has every row rendered first.
        """
        filters = body.get("filter") or []
        if _filtered_fields(body) & derived:
            rows = _apply_filters(self._sorted([render(r) for r in rows], body), filters)
            return self._page(method, body, rows)
        page = self._page(method, body, _apply_filters(self._sorted(rows, body), filters))
        page["entities"] = [render(r) for r in page["entities"]]
        return page

    @staticmethod
    def _sorted(rows: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
        key = body.get("sort") or "id"
        reverse = body.get("sort_order") == "desc"
        if body.get("pagination_mode") == "token":
            key, reverse = "id", False
        return sorted(rows, key=lambda r: (r.get(key) is None, r.get(key)), reverse=reverse)

    # --- lookups ------------------------------------------------------------------------------

    @staticmethod
    def _require(body: Json, *keys: str) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "Validation error", {"message": "body must be a JSON object"})
        missing = [k for k in keys if k not in body]
        if missing:
            raise ApiError(
                400, "Validation error", [{"field": k, "message": "required"} for k in missing]
            )

    @staticmethod
    def _entity(table: Mapping[int, dict[str, Any]], kind: str, entity_id: Any) -> dict[str, Any]:
        """The entity, or the server's 404 body for a missing ``kind``."""
        entity = table.get(entity_id) if isinstance(entity_id, int) else None
        if entity is None:
            raise ApiError(
                404,
                "Entity not found",
                {"type": "NONEXISTENT_ENTITY", "message": f"{kind} with id {entity_id} not found"},
            )
        return entity

    def _project(self, project_id: Any) -> dict[str, Any]:
        return self._entity(self.projects, "Project", project_id)

    def _dataset(self, dataset_id: Any) -> dict[str, Any]:
        return self._entity(self.datasets, "Dataset", dataset_id)

    def _image(self, image_id: Any) -> dict[str, Any]:
        return self._entity(self.images, "Image", image_id)

    # --- entity JSON --------------------------------------------------------------------------

    def project_json(self, project: dict[str, Any]) -> dict[str, Any]:
        pid = project["id"]
        images = [i for i in self.images.values() if i["projectId"] == pid]
        datasets = [d for d in self.datasets.values() if d["projectId"] == pid]
        out = dict(project)
        out.update(
            {
                "size": str(sum(i["size"] for i in images)),
                "imagesCount": len(images),
                "itemsCount": len(images),
                "datasetsCount": len(datasets),
                "localEntitiesCount": sum(1 for i in images if i["link"] is None),
                "remoteEntitiesCount": sum(1 for i in images if i["link"] is not None),
            }
        )
        return out

    def dataset_json(self, dataset: dict[str, Any], *, custom_data: bool) -> dict[str, Any]:
        images = self.images.where("datasetId", [dataset["id"]])
        out = {k: v for k, v in dataset.items() if k != "customData"}
        out.update(
            {
                "size": str(sum(i["size"] for i in images)),
                "imagesCount": len(images),
                "itemsCount": len(images),
            }
        )
        if custom_data:
            out["customData"] = dataset["customData"]
        return out

    def image_json(self, image: dict[str, Any]) -> dict[str, Any]:
        out = dict(image)
        out["tags"] = [dict(t) for t in self.image_tags.get(image["id"], [])]
        out["labelsCount"] = self.figures.count("entityId", image["id"])
        return out

    def figure_json(self, figure: dict[str, Any], *, integer_coords: bool) -> dict[str, Any]:
        out = dict(figure)
        out["tags"] = [
            {"id": t["id"], "tagId": t["tagId"], "value": t["value"]}
            for t in self.figure_tags.get(figure["id"], [])
        ]
        if figure["geometryType"] == "alpha_mask":
            out.pop("geometry", None)
        elif integer_coords:
            out["geometry"] = _round_geometry(figure["geometry"])
        return out

    # --- methods: instance, workspaces -------------------------------------------------------

    def _instance_version(self, user: dict[str, Any], body: Json) -> Json:
        return {"version": SERVER_VERSION}

    def _workspaces_info(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id")
        ws = self.workspaces.get(body["id"])
        if ws is None:
            raise ApiError(
                404,
                "Entity not found",
                {"type": "NONEXISTENT_ENTITY", "message": "Workspace not found"},
            )
        return ws

    def _workspaces_list(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "teamId")
        rows = [w for w in self.workspaces.values() if w["teamId"] == body["teamId"]]
        rows = _apply_filters(self._sorted(rows, body), body.get("filter") or [])
        return self._page("workspaces.list", body, rows)

    # --- methods: projects --------------------------------------------------------------------

    def _projects_info(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id")
        return self.project_json(self._project(body["id"]))

    def _projects_meta(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id")
        project = self._project(body["id"])
        meta = json.loads(json.dumps(self.metas[project["id"]]))
        meta["projectType"] = project["type"]
        return meta

    def _projects_list(self, user: dict[str, Any], body: Json) -> Json:
        rows = [self.project_json(p) for p in self.projects.values()]
        if "workspaceId" in body:
            rows = [p for p in rows if p["workspaceId"] == body["workspaceId"]]
        rows = _apply_filters(self._sorted(rows, body), body.get("filter") or [])
        if body.get("fields"):
            wanted = set(body["fields"]) | {"id"}
            rows = [{k: v for k, v in r.items() if k in wanted} for r in rows]
        return self._page("projects.list", body, rows)

    def create_project(
        self,
        *,
        name: str,
        workspace_id: int,
        kind: str = "images",
        description: str = "",
        readme: str = "",
        settings: dict[str, Any] | None = None,
        custom_data: dict[str, Any] | None = None,
        created_by: int | None = None,
    ) -> dict[str, Any]:
        if workspace_id not in self.workspaces:
            raise ApiError(
                404,
                "Entity not found",
                {"type": "NONEXISTENT_ENTITY", "message": "Workspace not found"},
            )
        for other in self.projects.values():
            if other["workspaceId"] == workspace_id and other["name"] == name:
                raise _name_taken("Project", name, other["id"])
        pid = self.next_id()
        now = self.tick()
        project = {
            "id": pid,
            "name": name,
            "description": description,
            "readme": readme,
            "workspaceId": workspace_id,
            "teamId": self.team_id,
            "createdAt": now,
            "updatedAt": now,
            "type": kind,
            "referenceImageUrl": None,
            "customData": dict(custom_data or {}),
            "backupArchive": None,
            "settings": dict(settings or {}),
            "importSettings": {},
            "version": None,
            "createdBy": created_by if created_by is not None else self.user_id,
            "embeddingsEnabled": False,
            "embeddingsUpdatedAt": None,
            "embeddingsInProgress": False,
        }
        self.projects[pid] = project
        self.metas[pid] = {"classes": [], "tags": []}
        return project

    def _projects_add(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "name", "workspaceId")
        project = self.create_project(
            name=body["name"],
            workspace_id=body["workspaceId"],
            kind=body.get("type", "images"),
            description=body.get("description") or "",
            readme=body.get("readme") or "",
            settings=body.get("settings"),
            custom_data=body.get("customData"),
            created_by=user["id"],
        )
        return self.project_json(project)

    def _projects_edit_info(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id")
        project = self._project(body["id"])
        for key in ("name", "description", "customData", "readme"):
            if key in body:
                project[key] = body[key]
        if not body.get("silent"):
            self.touch_project(project["id"])
        return self.project_json(project)

    def set_meta(self, project_id: int, meta: dict[str, Any]) -> dict[str, Any]:
        """Replace the meta; classes and tags keep their id when their name is kept."""
        old = self.metas[project_id]
        old_classes = {c["title"]: c["id"] for c in old["classes"]}
        old_tags = {t["name"]: t["id"] for t in old["tags"]}
        classes, tags = [], []
        for cls in meta.get("classes", []):
            if "title" not in cls or "shape" not in cls:
                raise ApiError(400, "Validation error", {"message": "class needs title and shape"})
            entry = {k: v for k, v in cls.items() if k != "id"}
            entry["id"] = old_classes.get(cls["title"]) or self.next_id()
            entry.setdefault("color", "#FF0000")
            entry.setdefault("geometry_config", {})
            entry.setdefault("hotkey", "")
            entry.setdefault("description", "")
            classes.append(entry)
        for tag in meta.get("tags", []):
            if "name" not in tag or "value_type" not in tag:
                raise ApiError(
                    400, "Validation error", {"message": "tag needs name and value_type"}
                )
            entry = {k: v for k, v in tag.items() if k != "id"}
            entry["id"] = old_tags.get(tag["name"]) or self.next_id()
            entry.setdefault("color", "#00FF00")
            entry.setdefault("hotkey", "")
            entry.setdefault("applicable_type", "all")
            entry.setdefault("classes", [])
            tags.append(entry)
        self.metas[project_id] = {"classes": classes, "tags": tags}
        self.touch_project(project_id)
        return json.loads(json.dumps(self.metas[project_id]))

    def _projects_meta_update(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id", "meta")
        project = self._project(body["id"])
        meta = self.set_meta(project["id"], body["meta"])
        if "projectSettings" in body and isinstance(body["projectSettings"], dict):
            project["settings"].update(body["projectSettings"])
        return meta

    def _projects_settings_update(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id", "settings")
        project = self._project(body["id"])
        settings = body["settings"]
        group = settings.get("groupImagesByTagId")
        if group is not None and group not in {t["id"] for t in self.metas[project["id"]]["tags"]}:
            raise ApiError(
                400, "Validation error", {"message": f"tag {group} is not in the project meta"}
            )
        project["settings"].update(settings)
        self.touch_project(project["id"])
        return {}

    # --- methods: datasets --------------------------------------------------------------------

    def create_dataset(
        self,
        project_id: int,
        name: str,
        *,
        parent_id: int | None = None,
        description: str = "",
        custom_data: dict[str, Any] | None = None,
        created_by: int | None = None,
    ) -> dict[str, Any]:
        project = self._project(project_id)
        if parent_id is not None and self._dataset(parent_id)["projectId"] != project_id:
            raise ApiError(
                400, "Validation error", {"message": "parent dataset is in another project"}
            )
        for other in self.datasets.values():
            if (
                other["projectId"] == project_id
                and other["parentId"] == parent_id
                and other["name"] == name
            ):
                raise _name_taken("Dataset", name, other["id"])
        did = self.next_id()
        now = self.tick()
        dataset = {
            "id": did,
            "name": name,
            "description": description,
            "projectId": project_id,
            "createdAt": now,
            "updatedAt": now,
            "referenceImageUrl": None,
            "teamId": project["teamId"],
            "workspaceId": project["workspaceId"],
            "parentId": parent_id,
            "customData": dict(custom_data or {}),
            "createdBy": created_by if created_by is not None else self.user_id,
        }
        self.datasets[did] = dataset
        self.touch_project(project_id)
        return dataset

    def _datasets_list(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "projectId")
        self._project(body["projectId"])
        rows = [d for d in self.datasets.values() if d["projectId"] == body["projectId"]]
        if "parentId" in body:
            rows = [d for d in rows if d["parentId"] == body["parentId"]]
        elif not body.get("recursive"):
            rows = [d for d in rows if d["parentId"] is None]
        custom = "customData" in (body.get("extraFields") or [])
        rows = [self.dataset_json(d, custom_data=custom) for d in self._sorted(rows, body)]
        rows = _apply_filters(rows, body.get("filter") or [])
        return self._page("datasets.list", body, rows)

    def _datasets_info(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id")
        return self.dataset_json(self._dataset(body["id"]), custom_data=True)

    def _datasets_add(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "projectId", "name")
        dataset = self.create_dataset(
            body["projectId"],
            body["name"],
            parent_id=body.get("parentId"),
            description=body.get("description") or "",
            custom_data=body.get("customData"),
            created_by=user["id"],
        )
        return self.dataset_json(dataset, custom_data=False)

    # --- methods: images ----------------------------------------------------------------------

    def create_image(
        self,
        dataset_id: int,
        name: str,
        *,
        media_hash: str | None = None,
        link: str | None = None,
        meta: dict[str, Any] | None = None,
        description: str = "",
        created_by: int | None = None,
    ) -> dict[str, Any]:
        dataset = self._dataset(dataset_id)
        if (media_hash is None) == (link is None):
            raise ApiError(
                400, "Validation error", {"message": "an image needs exactly one of hash and link"}
            )
        if media_hash is not None:
            media = self.hashes.get(media_hash)
            if media is None:
                raise ApiError(
                    400,
                    "Images with these hashes do not exist",
                    {"type": "HASHES_NOT_FOUND", "hashes": [media_hash]},
                )
        else:
            media = self.links.get(link or "")
            if media is None:
                raise ApiError(
                    400,
                    "Cannot download image by link",
                    {"type": "LINK_UNREACHABLE", "link": link},
                )
        for other in self.images.where("datasetId", [dataset_id]):
            if other["name"] == name:
                raise _name_taken("Image", name, other["id"])
        iid = self.next_id()
        now = self.tick()
        image = {
            "id": iid,
            "name": name,
            "link": link,
            "hash": media_hash,
            "mime": media["mime"],
            "ext": media["ext"],
            "size": media["size"],
            "width": media["width"],
            "height": media["height"],
            "datasetId": dataset_id,
            "projectId": dataset["projectId"],
            "createdAt": now,
            "updatedAt": now,
            "meta": dict(meta or {}),
            "pathOriginal": f"/storage/images/original/{iid}.{media['ext']}",
            "fullStorageUrl": f"https://storage.invalid/images/{iid}.{media['ext']}",
            "createdBy": created_by if created_by is not None else self.user_id,
            "relatedDataId": None,
            "downloadId": None,
            "offsetStart": None,
            "offsetEnd": None,
            "aiSearchMeta": None,
            "embeddingsUpdatedAt": None,
            "description": description,
            "parentId": None,
        }
        self.images[iid] = image
        self.touch_project(dataset["projectId"])
        return image

    def _images_list(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "datasetId")
        dataset = self._dataset(body["datasetId"])
        ids = {dataset["id"]}
        if body.get("recursive"):
            changed = True
            while changed:
                children = {d["id"] for d in self.datasets.values() if d["parentId"] in ids}
                changed = not children <= ids
                ids |= children
        rows = self.images.where("datasetId", ids)
        return self._listing("images.list", body, rows, self.image_json, _IMAGE_DERIVED)

    def _images_info(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id")
        return self.image_json(self._image(body["id"]))

    def _hashes_list(self, user: dict[str, Any], body: Json) -> Json:
        if not isinstance(body, list) or not all(isinstance(h, str) for h in body):
            raise ApiError(400, "Validation error", {"message": "body must be an array of hashes"})
        if len(body) > 900:
            raise ApiError(400, "Validation error", {"message": "at most 900 hashes per call"})
        return [h for h in body if h in self.hashes]

    def _images_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "datasetId", "images")
        self._dataset(body["datasetId"])
        names = [img.get("title") for img in body["images"]]
        clashes = [
            {"name": n, "id": i["id"]}
            for i in self.images.where("datasetId", [body["datasetId"]])
            for n in names
            if i["name"] == n
        ]
        if clashes or len(set(names)) != len(names):
            raise ApiError(
                400, "Image names are not unique", [{"type": "NONUNIQUE", "errors": clashes}]
            )
        missing_hashes = [
            i["hash"] for i in body["images"] if "hash" in i and i["hash"] not in self.hashes
        ]
        if missing_hashes:
            raise ApiError(
                400,
                "Images with these hashes do not exist",
                {"type": "HASHES_NOT_FOUND", "hashes": missing_hashes},
            )
        dead = [i["link"] for i in body["images"] if "link" in i and i["link"] not in self.links]
        if dead:
            raise ApiError(
                400, "Cannot download image by link", {"type": "LINK_UNREACHABLE", "links": dead}
            )
        created = [
            self.create_image(
                body["datasetId"],
                img["title"],
                media_hash=img.get("hash"),
                link=img.get("link"),
                meta=img.get("meta"),
                description=img.get("description") or "",
                created_by=user["id"],
            )
            for img in body["images"]
        ]
        return [self.image_json(i) for i in created]

    # --- methods: figures ---------------------------------------------------------------------

    def create_figure(
        self,
        image_id: int,
        class_id: int,
        geometry_type: str,
        geometry: Json,
        *,
        meta: dict[str, Any] | None = None,
        priority: int | None = None,
        custom_data: dict[str, Any] | None = None,
        description: str = "",
        login: str | None = None,
    ) -> dict[str, Any]:
        image = self._image(image_id)
        classes = {c["id"]: c for c in self.metas[image["projectId"]]["classes"]}
        cls = classes.get(class_id)
        if cls is None:
            raise ApiError(
                400, "Validation error", {"message": f"class {class_id} is not in the project meta"}
            )
        if cls["shape"] not in ("any", geometry_type):
            raise ApiError(
                400,
                "Validation error",
                {"message": f"class {cls['title']!r} is a {cls['shape']}, not a {geometry_type}"},
            )
        fid = self.next_id()
        now = self.tick()
        figure = {
            "id": fid,
            "classId": class_id,
            "createdAt": now,
            "updatedAt": now,
            "entityId": image_id,
            "objectId": None,
            "projectId": image["projectId"],
            "datasetId": image["datasetId"],
            "frameIndex": None,
            "geometryType": geometry_type,
            "geometry": geometry,
            "geometryMeta": {},
            "meta": dict(meta or {}),
            "area": None,
            "priority": priority,
            "customData": dict(custom_data or {}),
            "description": description,
            "nnCreated": False,
            "nnUpdated": False,
        }
        if geometry_type == "alpha_mask":
            figure["geometry"] = None
            if geometry is not None:
                self.alpha[fid] = geometry
        self.figures[fid] = figure
        self.figure_authors[fid] = login or self.users[self.user_id]["login"]
        self.touch_project(image["projectId"])
        return figure

    def _figures_list(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "datasetId")
        dataset_id = self._dataset(body["datasetId"])["id"]
        integer = body.get("integerCoords", True) is not False
        filters = body.get("filter") or []
        figure_ids = _allowed_values(filters, "id")
        image_ids = _allowed_values(filters, "entityId")
        if figure_ids is not None:
            candidates = sorted(
                (self.figures[f] for f in figure_ids if f in self.figures), key=lambda f: f["id"]
            )
        elif image_ids is not None:
            candidates = self.figures.where("entityId", image_ids)
        else:
            candidates = self.figures.where("datasetId", [dataset_id])
        rows = [f for f in candidates if f["datasetId"] == dataset_id]

        def render(figure: dict[str, Any]) -> dict[str, Any]:
            return self.figure_json(figure, integer_coords=integer)

        page = self._listing("figures.list", body, rows, render, _FIGURE_DERIVED)
        if body.get("fields"):
            wanted = {"imageId" if f == "entityId" else f for f in body["fields"]} | {
                "id",
                "entityId",
            }
            page["entities"] = [
                {k: v for k, v in r.items() if k in wanted} for r in page["entities"]
            ]
        return page

    def _figures_bulk_add(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "datasetId", "figures")
        self._dataset(body["datasetId"])
        for fig in body["figures"]:
            self._require(fig, "entityId", "classId", "geometryType")
            if self._image(fig["entityId"])["datasetId"] != body["datasetId"]:
                raise ApiError(
                    400,
                    "Validation error",
                    {"message": f"image {fig['entityId']} is not in the dataset"},
                )
            if fig["geometryType"] != "alpha_mask" and "geometry" not in fig:
                raise ApiError(400, "Validation error", {"message": "geometry is required"})
        created = [
            self.create_figure(
                fig["entityId"],
                fig["classId"],
                fig["geometryType"],
                fig.get("geometry"),
                meta=fig.get("meta"),
                priority=fig.get("priority"),
                custom_data=fig.get("customData"),
                description=fig.get("description") or "",
                login=user["login"],  # the caller: a labeler login in the body is not applied
            )
            for fig in body["figures"]
        ]
        return [{"id": f["id"]} for f in created]

    def _figures_download_geometry(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "ids")
        boundary = secrets.token_hex(12)
        parts = []
        for fid in body["ids"]:
            figure = self.figures.get(fid)
            if figure is None:
                raise ApiError(
                    404,
                    "Entity not found",
                    {"type": "NONEXISTENT_ENTITY", "message": f"Figure {fid} not found"},
                )
            geometry = (
                self.alpha.get(fid)
                if figure["geometryType"] == "alpha_mask"
                else figure["geometry"]
            )
            data = json.dumps(geometry, ensure_ascii=False).encode()
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{fid}"\r\n'
                f"Content-Type: application/json\r\n\r\n".encode()
                + data
                + b"\r\n"
            )
        payload = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return Reply(200, payload, f"multipart/form-data; boundary={boundary}")

    def _figures_upload_geometry(self, user: dict[str, Any], body: Json) -> Json:
        parts = body.get("__multipart__") if isinstance(body, dict) else None
        if parts is None:
            raise ApiError(400, "Validation error", {"message": "expected multipart/form-data"})
        declared = [int(p.content) for p in parts if p.name == "figureId"]
        geometries = {int(p.filename or -1): p.content for p in parts if p.name == "geometry"}
        if set(declared) != set(geometries):
            raise ApiError(
                400, "Validation error", {"message": "figureId and geometry parts disagree"}
            )
        for fid, content in geometries.items():
            figure = self.figures.get(fid)
            if figure is None or figure["geometryType"] != "alpha_mask":
                raise ApiError(
                    400, "Validation error", {"message": f"figure {fid} is not an alpha mask"}
                )
            self.alpha[fid] = json.loads(content)
            self.touch_project(figure["projectId"])
        return {}

    # --- methods: tags ------------------------------------------------------------------------

    def _tag_meta(self, project_id: int, tag_id: Any) -> dict[str, Any]:
        for tag in self.metas[project_id]["tags"]:
            if tag["id"] == tag_id:
                return tag
        raise ApiError(
            400, "Validation error", {"message": f"tag {tag_id} is not in the project meta"}
        )

    def add_image_tag(
        self, image_id: int, tag_id: int, value: Json, *, login: str | None = None
    ) -> dict[str, Any]:
        image = self._image(image_id)
        meta = self._tag_meta(image["projectId"], tag_id)
        now = self.tick()
        tag = {
            "id": self.next_id(),
            "tagId": tag_id,
            "name": meta["name"],
            "value": value,
            "labelerLogin": login or self.users[self.user_id]["login"],
            "createdAt": now,
            "updatedAt": now,
        }
        self.image_tags.setdefault(image_id, []).append(tag)
        self.touch_project(image["projectId"])
        return tag

    def add_figure_tag(
        self, figure_id: int, tag_id: int, value: Json, *, login: str | None = None
    ) -> dict[str, Any]:
        figure = self.figures.get(figure_id)
        if figure is None:
            raise ApiError(
                404,
                "Entity not found",
                {"type": "NONEXISTENT_ENTITY", "message": f"Figure {figure_id} not found"},
            )
        self._tag_meta(figure["projectId"], tag_id)
        tag = {
            "id": self.next_id(),
            "tagId": tag_id,
            "value": value,
            "labelerLogin": login or self.users[self.user_id]["login"],
        }
        self.figure_tags.setdefault(figure_id, []).append(tag)
        self.touch_project(figure["projectId"])
        return tag

    def _image_tags_add(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "projectId", "tags")
        project = self._project(body["projectId"])
        for tag in body["tags"]:
            self._require(tag, "tagId", "entityId")
            self._tag_meta(project["id"], tag["tagId"])
            if self._image(tag["entityId"])["projectId"] != project["id"]:
                raise ApiError(400, "Validation error", {"message": "image is in another project"})
        return [
            {
                "id": self.add_image_tag(
                    t["entityId"], t["tagId"], t.get("value"), login=user["login"]
                )["id"]
            }
            for t in body["tags"]
        ]

    def _figure_tags_add(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "projectId", "tags")
        project = self._project(body["projectId"])
        for tag in body["tags"]:
            self._require(tag, "tagId", "figureId")
            self._tag_meta(project["id"], tag["tagId"])
            figure = self.figures.get(tag["figureId"])
            if figure is None or figure["projectId"] != project["id"]:
                raise ApiError(
                    400,
                    "Validation error",
                    {"message": f"figure {tag['figureId']} is not in the project"},
                )
        return [
            {
                "id": self.add_figure_tag(
                    t["figureId"], t["tagId"], t.get("value"), login=user["login"]
                )["id"]
            }
            for t in body["tags"]
        ]

    def _annotations_bulk_info(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "datasetId", "imageIds")
        integer = body.get("integerCoords", True) is not False
        out = []
        for image_id in body["imageIds"]:
            image = self._image(image_id)
            classes = {c["id"]: c["title"] for c in self.metas[image["projectId"]]["classes"]}
            tag_names = {t["id"]: t["name"] for t in self.metas[image["projectId"]]["tags"]}
            objects = []
            for figure in self.figures.where("entityId", [image_id]):
                geometry = figure["geometry"]
                if integer and geometry is not None:
                    geometry = _round_geometry(geometry)
                obj = {
                    "id": figure["id"],
                    "classId": figure["classId"],
                    "classTitle": classes.get(figure["classId"]),
                    "geometryType": figure["geometryType"],
                    "labelerLogin": self.figure_authors.get(figure["id"]),
                    "createdAt": figure["createdAt"],
                    "updatedAt": figure["updatedAt"],
                    "tags": [
                        {
                            "id": t["id"],
                            "tagId": t["tagId"],
                            "name": tag_names.get(t["tagId"]),
                            "value": t["value"],
                            "labelerLogin": t.get("labelerLogin"),
                        }
                        for t in self.figure_tags.get(figure["id"], [])
                    ],
                }
                if isinstance(geometry, dict):
                    obj.update(geometry)
                objects.append(obj)
            out.append(
                {
                    "imageId": image_id,
                    "imageName": image["name"],
                    "datasetId": image["datasetId"],
                    "createdAt": image["createdAt"],
                    "updatedAt": image["updatedAt"],
                    "annotation": {
                        "description": "",
                        "size": {"height": image["height"], "width": image["width"]},
                        "tags": self.image_json(image)["tags"],
                        "objects": objects,
                    },
                }
            )
        return out

    # --- methods: versions --------------------------------------------------------------------

    def _version_json(self, version: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "id",
            "projectId",
            "createdBy",
            "teamFileId",
            "version",
            "description",
            "status",
            "createdAt",
            "updatedAt",
            "projectUpdatedAt",
            "teamId",
            "name",
            "previewProjectId",
        )
        return {k: version.get(k) for k in keys}

    def _versions_reserve(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "projectId")
        project = self._project(body["projectId"])
        mine = [v for v in self.versions.values() if v["projectId"] == project["id"]]
        for version in mine:
            if version["status"] == "reserved":
                raise ApiError(
                    400,
                    "Version reservation conflict",
                    {"message": f"Project {project['id']} is already committing a version"},
                )
        committed = [v for v in mine if v["status"] == "committed"]
        if committed:
            latest = max(committed, key=lambda v: v["version"])
            if latest["projectUpdatedAt"] == project["updatedAt"]:
                raise ApiError(
                    400,
                    "No changes since the last version",
                    {
                        "useExistingVersion": True,
                        "version": {"id": latest["id"], "version": latest["version"]},
                    },
                )
        number = max((v["version"] for v in mine), default=0) + 1
        vid = self.next_id()
        now = self.tick()
        self.versions[vid] = {
            "id": vid,
            "projectId": project["id"],
            "createdBy": user["id"],
            "teamFileId": None,
            "version": number,
            "description": None,
            "status": "reserved",
            "createdAt": now,
            "updatedAt": now,
            "projectUpdatedAt": None,
            "teamId": project["teamId"],
            "name": None,
            "previewProjectId": None,
            "commitToken": _token(64),
        }
        return {"id": vid, "commitToken": self.versions[vid]["commitToken"]}

    def _reserved(self, body: Json) -> dict[str, Any]:
        self._require(body, "id", "commitToken")
        version = self.versions.get(body["id"])
        if version is None:
            raise ApiError(
                404,
                "Entity not found",
                {"type": "NONEXISTENT_ENTITY", "message": "Version not found"},
            )
        if version["status"] != "reserved" or version["commitToken"] != body["commitToken"]:
            raise ApiError(400, "Invalid commit token", {"message": "the reservation is not valid"})
        return version

    def _versions_commit(self, user: dict[str, Any], body: Json) -> Json:
        version = self._reserved(body)
        self._require(body, "projectUpdatedAt", "teamFileId")
        for key in ("title", "name", "description"):
            if len(str(body.get(key) or "")) > 255:
                raise ApiError(
                    400, "Validation error", {"message": f"{key} is longer than 255 characters"}
                )
        version.update(
            {
                "status": "committed",
                "projectUpdatedAt": body["projectUpdatedAt"],
                "teamFileId": body["teamFileId"],
                "name": body.get("title") or body.get("name"),
                "description": body.get("description"),
                "previewProjectId": body.get("previewProjectId"),
                "updatedAt": self.tick(),
            }
        )
        self.projects[version["projectId"]]["version"] = {
            "id": version["id"],
            "version": version["version"],
        }
        return {"success": True}

    def _versions_cancel(self, user: dict[str, Any], body: Json) -> Json:
        version = self._reserved(body)
        version["status"] = "cancelled"
        version["updatedAt"] = self.tick()
        return {"success": True}

    def _versions_list(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "projectId")
        rows = [
            self._version_json(v)
            for v in self.versions.values()
            if v["projectId"] == body["projectId"]
        ]
        rows = _apply_filters(self._sorted(rows, body), body.get("filter") or [])
        return self._page("projects.versions.list", body, rows)

    def _versions_update(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id")
        version = self.versions.get(body["id"])
        if version is None:
            raise ApiError(
                404,
                "Entity not found",
                {"type": "NONEXISTENT_ENTITY", "message": "Version not found"},
            )
        fields = {k: body[k] for k in ("name", "description", "previewProjectId") if k in body}
        if not fields:
            raise ApiError(400, "Validation error", {"message": "nothing to update"})
        version.update(fields)
        return {"success": True}

    # --- methods: Team Files -------------------------------------------------------------------

    def _team(self, team_id: Any) -> int:
        if not isinstance(team_id, int) or team_id not in self.teams:
            raise ApiError(
                404, "Entity not found", {"type": "NONEXISTENT_ENTITY", "message": "Team not found"}
            )
        return team_id

    @staticmethod
    def _file_json(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in entry.items() if k != "content"}

    def _files_list(self, user: dict[str, Any], body: Json) -> Json:
        """``file-storage.list``: a bare array of FileInfo, not paginated.

        ``path`` names a file or a directory; recursive listings answer the file itself or
        everything under the directory, a non-recursive one only the directory's own files.
        """
        self._require(body, "teamId", "path")
        team_id = self._team(body["teamId"])
        path = str(body["path"])
        directory = path if path.endswith("/") else path + "/"
        out = []
        for (team, file_path), entry in sorted(self.team_files.items()):
            if team != team_id:
                continue
            if body.get("recursive", True):
                if file_path == path or file_path.startswith(directory):
                    out.append(self._file_json(entry))
            elif file_path.rsplit("/", 1)[0] + "/" == directory:
                out.append(self._file_json(entry))
        return out

    def _files_bulk_upload(self, user: dict[str, Any], body: Json) -> Json:
        """``file-storage.bulk.upload?teamId=T``: repeated ``name``, ``path`` (the directory,
        with a trailing slash), ``file`` parts; a file at the same path is replaced."""
        parts = body.get("__multipart__") if isinstance(body, dict) else None
        if parts is None:
            raise ApiError(400, "Validation error", {"message": "expected multipart/form-data"})
        try:
            team_id = self._team(int(body["__query__"].get("teamId", "")))
        except ValueError as exc:
            raise ApiError(400, "Validation error", {"message": "teamId is required"}) from exc
        pending: dict[str, str] = {}
        created = []
        for part in parts:
            if part.name in ("name", "path"):
                pending[part.name] = part.content.decode("utf-8")
                continue
            if part.name != "file":
                raise ApiError(400, "Validation error", {"message": f"unknown part {part.name}"})
            if set(pending) != {"name", "path"} or not pending["path"].endswith("/"):
                raise ApiError(
                    400,
                    "Validation error",
                    {"message": "each file needs a name and a directory path before it"},
                )
            created.append(
                self._store_file(
                    team_id,
                    pending["path"] + pending["name"],
                    part.content,
                    mime=part.headers.get("content-type") or "application/octet-stream",
                    user_id=user["id"],
                    host=body.get("__host__") or "",
                )
            )
            pending = {}
        if pending or not created:
            raise ApiError(400, "Validation error", {"message": "a name or path has no file"})
        return created

    def _store_file(
        self, team_id: int, path: str, content: bytes, *, mime: str, user_id: int, host: str
    ) -> dict[str, Any]:
        file_id = self.next_id()
        now = self.tick()
        name = path.rsplit("/", 1)[-1]
        storage_path = f"{STORAGE_PREFIX}{team_id}/{file_id}/{name}"
        entry = {
            "teamId": team_id,
            "id": file_id,
            "userId": user_id,
            "name": name,
            "hash": base64.b64encode(hashlib.sha256(content).digest()).decode("ascii"),
            "path": path,
            "storagePath": storage_path,
            "meta": {
                "ext": name.rsplit(".", 1)[-1] if "." in name else "",
                "mime": mime,
                "size": len(content),
            },
            "createdAt": now,
            "updatedAt": now,
            "fullStorageUrl": f"http://{host}{urllib.parse.quote(storage_path)}",
            "isDir": False,
            "content": content,
        }
        self.team_files[(team_id, path)] = entry
        return self._file_json(entry)

    def _files_download(self, user: dict[str, Any], body: Json) -> Json:
        """``file-storage.download``: the file's raw bytes."""
        self._require(body, "teamId", "path")
        entry = self.team_files.get((self._team(body["teamId"]), str(body["path"])))
        if entry is None:
            raise ApiError(
                404,
                "Entity not found",
                {"type": "NONEXISTENT_ENTITY", "message": f"File {body['path']} not found"},
            )
        return Reply(200, entry["content"], "application/octet-stream")

    def storage_file(self, path: str) -> Reply:
        """``GET`` on a Team Files ``fullStorageUrl``."""
        with self.lock:
            for entry in self.team_files.values():
                if urllib.parse.quote(entry["storagePath"]) == path or entry["storagePath"] == path:
                    return Reply(200, entry["content"], entry["meta"]["mime"])
        return Reply(404, b"<html><body>404 Not Found</body></html>", "text/html")

    # --- methods: workspaces and project removal (previews) -----------------------------------

    def _workspaces_add(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "teamId", "name")
        if body["teamId"] not in self.teams:
            raise ApiError(
                404, "Entity not found", {"type": "NONEXISTENT_ENTITY", "message": "Team not found"}
            )
        for other in self.workspaces.values():
            if other["teamId"] == body["teamId"] and other["name"] == body["name"]:
                raise _name_taken("Workspace", body["name"], other["id"])
        ws_id = self.add_workspace(body["name"], body.get("description") or "")
        self.workspaces[ws_id]["teamId"] = body["teamId"]
        return self.workspaces[ws_id]

    def _workspaces_visibility_set(self, user: dict[str, Any], body: Json) -> Json:
        self._require(body, "id", "hidden")
        self._workspaces_info(user, {"id": body["id"]})
        if body["hidden"]:
            self.hidden_workspaces.add(body["id"])
        else:
            self.hidden_workspaces.discard(body["id"])
        return {}

    def _projects_remove(self, user: dict[str, Any], body: Json) -> Json:
        """Remove a project and everything in it (``api.project.remove``)."""
        self._require(body, "id")
        project = self._project(body["id"])
        for dataset in [d for d in self.datasets.values() if d["projectId"] == project["id"]]:
            self.remove_dataset(dataset["id"])
        del self.projects[project["id"]]
        self.metas.pop(project["id"], None)
        return {}

    def remove_dataset(self, dataset_id: int) -> None:
        """Delete one dataset with its images, their figures and tags (not its children)."""
        with self.lock:
            for image in self.images.where("datasetId", [dataset_id]):
                for figure in self.figures.where("entityId", [image["id"]]):
                    self.alpha.pop(figure["id"], None)
                    self.figure_tags.pop(figure["id"], None)
                    del self.figures[figure["id"]]
                self.image_tags.pop(image["id"], None)
                del self.images[image["id"]]
            del self.datasets[dataset_id]


class _AsgiApp:
    """An ASGI 3 callable over a :class:`FakeSupervisely`."""

    def __init__(self, fake: FakeSupervisely) -> None:
        self.fake = fake

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.fake.asgi(scope, receive, send)


# --- the rich project -----------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_mask(pixels: bytes, width: int, height: int) -> bytes:
    """An 8-bit greyscale PNG of ``pixels`` (row-major, one byte a pixel): a real image, as
    the platform stores a bitmap's mask and as the SDK decodes it."""
    rows = b"".join(
        b"\x00" + pixels[row * width : (row + 1) * width] for row in range(height)
    )  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _bitmap(rng: random.Random, width: int, height: int) -> dict[str, Any]:
    """A tiny PNG mask in Supervisely's bitmap JSON (base64 of zlib of PNG bytes)."""
    pixels = bytes(rng.getrandbits(8) & 1 for _ in range(width * height))
    png = png_mask(pixels, width, height)
    return {
        "data": base64.b64encode(zlib.compress(png)).decode("ascii"),
        "origin": [rng.randint(0, 50), rng.randint(0, 50)],
    }


def _xy(rng: random.Random, width: int, height: int) -> list[float]:
    # Sub-pixel coordinates with many significant digits; exact floats must survive.
    return [rng.uniform(0, width) + 1e-9 * rng.random(), rng.uniform(0, height) + 1 / 3]


def _geometry(rng: random.Random, shape: str, width: int, height: int) -> Json:
    if shape == "rectangle":
        (x1, y1), (x2, y2) = _xy(rng, width, height), _xy(rng, width, height)
        return {
            "points": {
                "exterior": [[min(x1, x2), min(y1, y2)], [max(x1, x2), max(y1, y2)]],
                "interior": [],
            }
        }
    if shape == "polygon":
        hole = [_xy(rng, width, height) for _ in range(3)]
        return {
            "points": {"exterior": [_xy(rng, width, height) for _ in range(5)], "interior": [hole]}
        }
    if shape == "line":
        return {"points": {"exterior": [_xy(rng, width, height) for _ in range(4)], "interior": []}}
    if shape == "point":
        return {"points": {"exterior": [_xy(rng, width, height)], "interior": []}}
    if shape == "bitmap":
        return {"bitmap": _bitmap(rng, 6, 5)}
    if shape == "alpha_mask":
        # Stored apart from the figure, and as the bitmap's own JSON (data and origin): the
        # SDK uploads ``geometry.to_json()["bitmap"]`` through ``figures.bulk.upload.geometry``
        # and puts what ``figures.bulk.download.geometry`` answers back under ``"bitmap"``.
        return _bitmap(rng, 6, 5)
    if shape == "graph":
        return {
            "nodes": {
                name: {"loc": _xy(rng, width, height)} for name in ("nose", "left_eye", "right_eye")
            }
        }
    if shape == "cuboid":
        return {
            "points": [_xy(rng, width, height) for _ in range(7)],
            "faces": [[0, 1, 2, 3], [0, 4, 5, 1], [1, 5, 6, 2]],
        }
    if shape == "oriented_bbox":
        # Two corners as a bare list (no exterior/interior), as ``OrientedBBox.to_json`` has it.
        (x1, y1), (x2, y2) = _xy(rng, width, height), _xy(rng, width, height)
        return {
            "points": [[min(x1, x2), min(y1, y2)], [max(x1, x2), max(y1, y2)]],
            "angle": rng.uniform(-math.pi, math.pi),
        }
    if shape == "multipolygon":
        return {
            "parts": [
                {"exterior": [_xy(rng, width, height) for _ in range(3)], "interior": []}
                for _ in range(2)
            ]
        }
    raise ValueError(shape)


SHAPES = (
    "rectangle",
    "polygon",
    "line",
    "point",
    "bitmap",
    "alpha_mask",
    "graph",
    "cuboid",
    "oriented_bbox",
    "multipolygon",  # a shape labelvault does not model: captured as UNKNOWN with the raw kept
)


@dataclass(frozen=True)
class RichProject:
    """What the generator made, for assertions."""

    project_id: int
    workspace_id: int
    hash_images: tuple[int, ...]
    link_images: tuple[int, ...]
    dataset_ids: tuple[int, ...]


def generate_rich_project(
    fake: FakeSupervisely,
    *,
    seed: int = 0,
    images_per_dataset: int = 5,
    link_base: str = "http://media.fake.invalid/media",
    name: str = "Проект λ — rich 🚀",
    labelers: bool = False,
) -> RichProject:
    """Nested datasets 3 deep, hash and link images, every geometry type with sub-pixel
    coordinates, alpha masks, duplicate tag assignments with values on images and figures,
    custom data, settings incl. ``groupImagesByTagId``, unicode names.

    ``labelers``: figures and tags are labelled by three users besides the token's owner
    (whom a restore cannot replace: the API sets no author); otherwise the owner did it all,
    so a restore by the owner gives back the same content hash.
    """
    rng = random.Random(seed)
    with fake.lock:
        labeler_ids = [fake.add_user(login)[0] for login in ("anna.k", "Βασίλης", "李雷")]
        owner = fake.users[fake.user_id]["login"]
        logins = [fake.users[u]["login"] if labelers else owner for u in labeler_ids]
        project = fake.create_project(
            name=name,
            workspace_id=fake.workspace_id,
            description="Street scenes — 街景, with ünïcode",
            readme="# Rich project\n\nEvery geometry type, nested datasets, tags with values.\n",
            settings={
                "groupImages": True,
                "groupImagesSync": False,
                "allowDuplicateTags": True,
                "labelingInterface": "default",
            },
            custom_data={"source": "generator", "nested": {"a": [1, 2.5, "ü"], "b": None}},
        )
        pid = project["id"]
        classes = [
            {
                "title": f"cls {shape} ✓",
                "shape": shape,
                "color": f"#{rng.randrange(0x1000000):06X}",
                "geometry_config": (
                    {"nodes": {"nose": {"label": "nose"}, "left_eye": {}, "right_eye": {}}}
                    if shape == "graph"
                    else {}
                ),
                "hotkey": "",
                "description": f"{shape} objects",
            }
            for shape in SHAPES
        ]
        classes.append({"title": "anything", "shape": "any", "color": "#123456", "description": ""})
        tags = [
            {"name": "group", "value_type": "any_string", "applicable_type": "imagesOnly"},
            {"name": "quality", "value_type": "oneof_string", "values": ["good", "bad", "ужасно"]},
            {"name": "score", "value_type": "any_number", "applicable_type": "all"},
            {
                "name": "flag",
                "value_type": "none",
                "applicable_type": "objectsOnly",
                "classes": ["anything"],
            },
            {"name": "ñote ✎", "value_type": "any_string"},
        ]
        meta = fake.set_meta(pid, {"classes": classes, "tags": tags})
        class_by_shape = {c["shape"]: c for c in meta["classes"]}
        tag_ids = {t["name"]: t["id"] for t in meta["tags"]}
        fake.projects[pid]["settings"]["groupImagesByTagId"] = tag_ids["group"]

        tree = [
            ("train", None, "training split"),
            ("city", "train", "урбан"),
            ("night 🌙", "city", ""),
            ("val", None, "validation"),
            ("rural", "val", "field scenes"),
            ("テスト", None, ""),
        ]
        by_name: dict[str, int] = {}
        for ds_name, parent, description in tree:
            ds = fake.create_dataset(
                pid,
                ds_name,
                parent_id=by_name.get(parent) if parent else None,
                description=description,
                custom_data={"split": ds_name, "weights": [0.5, 1 / 3]} if ds_name != "val" else {},
            )
            by_name[ds_name] = ds["id"]

        hash_images: list[int] = []
        link_images: list[int] = []
        counter = 0
        for ds_id in by_name.values():
            for n in range(images_per_dataset):
                counter += 1
                width, height = rng.randint(320, 1920), rng.randint(240, 1080)
                use_link = counter % 3 == 0
                suffix = "лінк.png" if use_link else "хэш.jpg"
                image_name = f"img_{counter:03d}_{suffix}"
                meta_json = (
                    {"camera": rng.choice(["front", "rear"]), "exposure": rng.random()}
                    if n % 2
                    else {}
                )
                if use_link:
                    url = fake.register_link(
                        f"{link_base}/{ds_id}/{counter}.png", width=width, height=height
                    )
                    image = fake.create_image(ds_id, image_name, link=url, meta=meta_json)
                    link_images.append(image["id"])
                else:
                    media = fake.register_hash(width=width, height=height, seed=f"{seed}:{counter}")
                    image = fake.create_image(
                        ds_id,
                        image_name,
                        media_hash=media,
                        meta=meta_json,
                        description="a clear day" if n == 1 else "",
                    )
                    hash_images.append(image["id"])
                iid = image["id"]
                # image tags: values, unicode, and a duplicate assignment
                fake.add_image_tag(
                    iid, tag_ids["group"], f"seq-{counter % 4}", login=logins[counter % 3]
                )
                if n % 2 == 0:
                    fake.add_image_tag(iid, tag_ids["quality"], "good", login=logins[0])
                    fake.add_image_tag(
                        iid, tag_ids["quality"], "good", login=logins[1]
                    )  # duplicate
                if n % 3 == 1:
                    fake.add_image_tag(iid, tag_ids["score"], rng.uniform(0, 1), login=logins[2])
                    fake.add_image_tag(iid, tag_ids["ñote ✎"], "ещё — 注意", login=logins[2])
                # figures: every shape appears across the project, some several times
                shapes = [SHAPES[(counter + k) % len(SHAPES)] for k in range(3)]
                if n == 0:
                    shapes.append("alpha_mask")
                for k, shape in enumerate(shapes):
                    cls = class_by_shape[shape]
                    figure = fake.create_figure(
                        iid,
                        cls["id"],
                        shape,
                        _geometry(rng, shape, width, height),
                        meta={"note": "occluded"} if k == 1 else {},
                        priority=k if k != 2 else None,
                        custom_data={"by": "generator"} if k == 0 else {},
                        login=logins[(counter + k) % 3],
                    )
                    if k == 0:
                        fake.add_figure_tag(
                            figure["id"],
                            tag_ids["score"],
                            round(rng.uniform(0, 10), 6) + 0.1,
                            login=logins[2],
                        )
                        fake.add_figure_tag(
                            figure["id"], tag_ids["score"], round(rng.uniform(0, 10), 6) + 0.1
                        )
                    if k == 1:
                        fake.add_figure_tag(figure["id"], tag_ids["quality"], "bad")
                        fake.add_figure_tag(figure["id"], tag_ids["quality"], "bad")  # duplicate
                # one free-form figure on the "any" class
                if n % 2:
                    any_fig = fake.create_figure(
                        iid,
                        class_by_shape["any"]["id"],
                        "polygon",
                        _geometry(rng, "polygon", width, height),
                    )
                    fake.add_figure_tag(any_fig["id"], tag_ids["flag"], None)
        return RichProject(
            project_id=pid,
            workspace_id=fake.workspace_id,
            hash_images=tuple(hash_images),
            link_images=tuple(link_images),
            dataset_ids=tuple(by_name.values()),
        )


def add_plain_project(fake: FakeSupervisely, *, kind: str = "videos", name: str = "clips") -> int:
    """A project of another type (videos, volumes, point clouds …)."""
    with fake.lock:
        return int(fake.create_project(name=name, workspace_id=fake.workspace_id, kind=kind)["id"])


# --- helpers for tests that capture and restore ----------------------------------------------


def capture_tables(platform: Any, project_id: str) -> dict[str, list[Any]]:
    """Every page of a capture, grouped by table (record batches in arrival order)."""
    tables: dict[str, list[Any]] = {}
    for page in platform.iter_pages(project_id):
        tables.setdefault(page.table, []).append(page.batch)
    return tables


def table_reader(tables: dict[str, list[Any]]) -> Callable[[str], Iterator[Any]]:
    """A ``read_table`` for :func:`labelvault.restore.restore_version` over captured pages."""

    def read(table: str) -> Iterator[Any]:
        return iter(tables.get(table, []))

    return read


def fingerprint_multisets(tables: dict[str, list[Any]]) -> dict[str, dict[str, int]]:
    """Per table, how often each fingerprint occurs."""
    out: dict[str, dict[str, int]] = {}
    for table, batches in tables.items():
        counts: dict[str, int] = {}
        for batch in batches:
            for value in batch.column("fingerprint").to_pylist():
                counts[value] = counts.get(value, 0) + 1
        out[table] = counts
    return out


def keys_in_order(tables: dict[str, list[Any]], table: str) -> list[str]:
    return [key for batch in tables.get(table, []) for key in batch.column("key").to_pylist()]
