"""Label Studio's REST API: one client, its error mapping, and streamed JSON answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Self

import httpx

from labelvault.errors import (
    AuthenticationError,
    ConfigurationError,
    PaginationError,
    PlatformError,
    PlatformNotFound,
    PlatformUnavailable,
    RequestRejected,
)
from labelvault.http.client import ApiClient, CallContext, build_client, default_error
from labelvault.http.retrying import RETRY_STATUSES, RetryableStatus, retry_policy
from labelvault.http.settings import RequestSettings
from labelvault.platforms.base import ProjectInfo, instance_from_url
from labelvault.platforms.labelstudio.auth import PersonalAccessTokenAuth, is_personal_access_token
from labelvault.platforms.labelstudio.jsonstream import iter_json_array
from labelvault.platforms.labelstudio.rows import PLATFORM
from labelvault.platforms.labelstudio.settings import LabelStudioOptions

logger = logging.getLogger("labelvault.platforms.labelstudio")


class LabelStudioApi:
    """A Label Studio server's API and the adapter's options; the base of the adapter's parts.

    ``token`` is a legacy API token (``Authorization: Token …``) or a personal access token
    (a JWT, exchanged for five-minute access tokens); which one is told from its form.
    ``settings`` are the HTTP retry and timeout settings, ``transport`` replaces the network
    in tests, ``options`` tune paging and imports (see :class:`LabelStudioOptions`).
    """

    name = PLATFORM

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
        self._pat_auth: PersonalAccessTokenAuth | None = None
        headers = {"Accept": "application/json"}
        if not self.options.keep_alive:
            headers["Connection"] = "close"
        auth: httpx.Auth | None = None
        if is_personal_access_token(token):
            self._pat_auth = PersonalAccessTokenAuth(
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

    @property
    def instance(self) -> str:
        """Host and port of the server (``127.0.0.1:8080``)."""
        return self._instance

    def close(self) -> None:
        """Close the connection pools."""
        self.api.close()
        if self._pat_auth is not None:
            self._pat_auth.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        body = json_body(response)
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

    def _fetch_user(self, user_id: int) -> dict[str, Any] | None:
        try:
            found = self.api.request_json("GET", f"/api/users/{user_id}/")
        except PlatformNotFound:
            return None
        return found if isinstance(found, dict) and isinstance(found.get("id"), int) else None

    def _list_users(self, project_id: str | None) -> list[dict[str, Any]]:
        listing = self.api.request_json("GET", "/api/users/", project=project_id)
        if isinstance(listing, dict):  # a paginated answer, should a server give one
            listing = listing.get("results", [])
        return [u for u in listing if isinstance(u, dict) and isinstance(u.get("id"), int)]


def json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return {}
    return body if isinstance(body, dict) else {}
