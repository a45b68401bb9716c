"""The Label Studio adapter: capture, restore and webhooks over one API client."""

from __future__ import annotations

from labelvault.errors import PlatformNotFound
from labelvault.platforms.labelstudio.capture import LabelStudioCapture
from labelvault.platforms.labelstudio.restore import LabelStudioRestore
from labelvault.platforms.labelstudio.webhooks import LabelStudioWebhooks

__all__ = ["LabelStudioPlatform"]


class LabelStudioPlatform(LabelStudioCapture, LabelStudioRestore, LabelStudioWebhooks):
    """A Label Studio server, as capture and restore see it (registered as ``labelstudio``).

    Every part shares one :class:`~.api.LabelStudioApi`: :mod:`.capture` (with :mod:`.exports`)
    reads a project into labelvault's tables (row mapping in :mod:`.rows`), :mod:`.restore`
    imports a version as a new project (what already landed: :mod:`.reconcile`), and
    :mod:`.webhooks` registers the bridge's webhook.
    """

    def delete_project(self, project_id: str) -> None:
        """Delete a project (``DELETE /api/projects/{id}/``); one already gone counts as
        deleted."""
        number = self._project_number(project_id)
        try:
            self.api.request("DELETE", f"/api/projects/{number}/", project=str(number))
        except PlatformNotFound:
            return
