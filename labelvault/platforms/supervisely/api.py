"""Supervisely's public API: one client, its error mapping, listings and project info."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import httpx

from labelvault.errors import (
    ConfigurationError,
    PlatformError,
    PlatformNotFound,
    RequestRejected,
    UnsupportedProject,
)
from labelvault.http import (
    ApiClient,
    CallContext,
    CursorPaginator,
    PageNumberPaginator,
    PageRequest,
    RequestSettings,
    build_client,
    paginate,
)
from labelvault.platforms.base import ProjectInfo, instance_from_url
from labelvault.platforms.supervisely.rows import Definitions, as_int, timestamp

logger = logging.getLogger("labelvault.platforms.supervisely")

#: Where the public API lives under the server's address.
API_PATH = "/public/api/v3/"
#: Project types labelvault captures; others raise ``UnsupportedProject``.
SUPPORTED_KINDS = frozenset({"images", "videos", "volumes"})


class SuperviselyApi:
    """A Supervisely server's API and the adapter's settings; the base of the adapter's parts.

    ``settings`` are the HTTP request settings; ``transport`` replaces the network (tests);
    ``concurrency`` bounds the image batches fetched in parallel during capture (results are
    still yielded in key order), shared by the partitions read at once; ``sleep`` is used
    between retries (injectable for tests).
    """

    name = "supervisely"
    #: Every restore option applies to Supervisely.
    restore_ignores: tuple[str, ...] = ()

    def get_project(self, project_id: str) -> ProjectInfo:
        """Describe an images, videos or volumes project; raises ``PlatformNotFound`` or
        ``UnsupportedProject``."""
        return self._info(self._project_json(project_id), project_id)

    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        settings: RequestSettings | None = None,
        transport: httpx.BaseTransport | None = None,
        concurrency: int = 4,
        batch_size: int = 200,
        list_page_size: int = 1000,
        image_listing: Literal["token", "page"] = "token",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(server_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"supervisely server URL {server_url!r} is not an http(s) URL with a host "
                "(expected something like https://app.supervisely.com)"
            )
        if not token:
            raise ConfigurationError("supervisely: the API token is empty")
        if concurrency < 1 or batch_size < 1:
            raise ConfigurationError("supervisely: concurrency and batch_size must be at least 1")
        path = parts.path.rstrip("/")
        if path.endswith(API_PATH.rstrip("/")):
            path = path[: -len(API_PATH.rstrip("/"))]
        self.server_url = f"{parts.scheme}://{parts.netloc}{path}"
        self.settings = settings or RequestSettings()
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.list_page_size = list_page_size
        self.image_listing = image_listing
        self._instance = instance_from_url(self.server_url)
        client = build_client(
            self.server_url + API_PATH,
            headers={"x-api-key": token},
            settings=self.settings,
            transport=transport,
        )
        self.api = ApiClient(
            client,
            platform=self.name,
            settings=self.settings,
            secrets=[token],
            sleep=sleep,
            classify=self._classify,
        )
        link_settings = self.settings.model_copy(update={"max_retries": 1, "connection_retries": 1})
        self._links = ApiClient(
            httpx.Client(
                timeout=link_settings.timeout(),
                transport=transport,
                follow_redirects=True,
                trust_env=False,
            ),
            platform=self.name,
            settings=link_settings,
            secrets=[token],
            sleep=sleep,
        )
        self._definitions: dict[str, Definitions] = {}
        #: One slot per batch a capture may be reading at once; partitions read side by side
        #: take theirs from the same ``concurrency``.
        self._batch_slots = threading.Semaphore(concurrency)
        #: One slot per restore (or partition of one) writing at once, shared the same way.
        self._write_slots = threading.Semaphore(concurrency)

    @property
    def instance(self) -> str:
        """``host:port`` of the server, lowercased."""
        return self._instance

    @property
    def write_retries(self) -> int:
        """How often a restore sends a write again after an ambiguous failure, having checked
        what landed first (the request settings' ``max_retries``)."""
        return self.settings.max_retries

    def close(self) -> None:
        """Close the connection pools."""
        self.api.close()
        self._links.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _classify(
        self, response: httpx.Response, context: CallContext, detail: str
    ) -> PlatformError | None:
        """A 404 or 405 that is not Supervisely's JSON error means this is not its API."""
        if response.status_code in (404, 405):
            try:
                body = response.json()
            except ValueError:
                body = None
            if not (isinstance(body, dict) and "error" in body):
                kind = response.headers.get("content-type", "no content type")
                return RequestRejected(
                    f"supervisely: {context.method} {context.url} answered "
                    f"{response.status_code} ({kind}) instead of a Supervisely API error; "
                    f"is {self.server_url} a Supervisely server?",
                    platform=self.name,
                    project=context.project,
                    status=response.status_code,
                )
        return None

    def _call(
        self,
        method: str,
        body: Any,
        *,
        project: str | None = None,
        idempotent: bool = True,
    ) -> Any:
        return self.api.request_json(
            "POST", method, json=body, project=project, idempotent=idempotent
        )

    def _list(
        self,
        method: str,
        body: dict[str, Any],
        *,
        project: str | None,
        mode: Literal["page", "token"] = "page",
        per_page: int | None = None,
    ) -> Iterator[list[Any]]:
        paginator: PageNumberPaginator | CursorPaginator
        if mode == "token":
            paginator = CursorPaginator(per_page=per_page, extra={"pagination_mode": "token"})
        else:
            paginator = PageNumberPaginator(per_page=per_page)
        request = PageRequest("POST", method, json=dict(body))
        yield from paginate(self.api, request, paginator, project=project)

    def _project_json(self, project_id: str) -> dict[str, Any]:
        try:
            pid = int(project_id)
        except (TypeError, ValueError):
            raise PlatformNotFound(
                f"supervisely: project id {project_id!r} is not a number",
                platform=self.name,
                project=str(project_id),
            ) from None
        try:
            info = self._call("projects.info", {"id": pid}, project=str(project_id))
        except PlatformNotFound as exc:
            raise PlatformNotFound(
                f"supervisely: project {pid} does not exist on {self.instance} "
                f"(or the token cannot see it): {exc.message}",
                platform=self.name,
                project=str(project_id),
                status=exc.status,
            ) from None
        if not isinstance(info, dict) or "id" not in info:
            raise RequestRejected(
                f"supervisely: projects.info for {pid} did not answer a project "
                f"(expected key 'id'); is {self.server_url} a Supervisely server?",
                platform=self.name,
                project=str(project_id),
            )
        return info

    def _info(self, info: dict[str, Any], project_id: str) -> ProjectInfo:
        kind = str(info.get("type") or "unknown")
        if kind not in SUPPORTED_KINDS:
            raise UnsupportedProject(
                f"supervisely project {info.get('id')} ({info.get('name')!r}) is a {kind!r} "
                "project; labelvault captures images, videos and volumes projects only",
                platform=self.name,
                project=str(project_id),
            )
        counts = {
            "items": as_int(info.get("imagesCount") or info.get("itemsCount")) or 0,
            "datasets": as_int(info.get("datasetsCount")) or 0,
        }
        workspace = info.get("workspaceId")
        return ProjectInfo(
            platform=self.name,
            instance=self.instance,
            project_id=str(info["id"]),
            name=str(info.get("name") or ""),
            kind=kind,
            updated_at=timestamp(info.get("updatedAt")),
            workspace_id=str(workspace) if workspace is not None else None,
            counts=counts,
        )

    @staticmethod
    def _dataset_id(dataset_id: str | None) -> int:
        if dataset_id is None:
            raise ConfigurationError("supervisely: every image belongs to a dataset")
        return int(dataset_id)
