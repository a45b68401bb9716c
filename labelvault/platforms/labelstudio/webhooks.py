"""Label Studio webhooks: one per project and URL, registered idempotently."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from labelvault.http.settings import RequestSettings
from labelvault.platforms.labelstudio.api import LabelStudioApi

#: The annotation events a labelvault webhook listens to.
DEFAULT_WEBHOOK_ACTIONS: Final[tuple[str, ...]] = (
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
)


@dataclass(frozen=True)
class Webhook:
    """A Label Studio webhook (its headers are left out: they may hold secrets)."""

    id: int
    project_id: str
    url: str
    actions: tuple[str, ...]
    is_active: bool
    created: bool


class LabelStudioWebhooks(LabelStudioApi):
    """Registers the webhook that tells the bridge a project changed."""

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
                return webhook_of(updated, project_id, created=False)
            return webhook_of(hook, project_id, created=False)
        created = self.api.request_json(
            "POST", "/api/webhooks/", json={"project": number, **wanted}, project=project_id
        )
        return webhook_of(created, project_id, created=True)


def webhook_of(hook: dict[str, Any], project_id: str, *, created: bool) -> Webhook:
    return Webhook(
        id=int(hook["id"]),
        project_id=project_id,
        url=str(hook.get("url")),
        actions=tuple(sorted(hook.get("actions") or [])),
        is_active=bool(hook.get("is_active")),
        created=created,
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
    :meth:`LabelStudioWebhooks.register_webhook`."""
    with LabelStudioWebhooks(base_url, token, settings=settings, transport=transport) as ls:
        return ls.register_webhook(project_id, url, actions=actions, headers=headers)
