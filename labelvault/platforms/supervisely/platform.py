"""The Supervisely adapter: its capture and its restore over one API client."""

from __future__ import annotations

import logging

from labelvault.errors import AuthenticationError, PlatformError, PlatformNotFound
from labelvault.platforms.supervisely.capture import SuperviselyCapture
from labelvault.platforms.supervisely.restore import SuperviselyRestore

__all__ = ["SuperviselyPlatform"]

logger = logging.getLogger("labelvault.platforms.supervisely")


class SuperviselyPlatform(SuperviselyCapture, SuperviselyRestore):
    """A Supervisely server, as capture and restore see it (registered as ``supervisely``).

    Every part shares one :class:`~.api.SuperviselyApi`: :mod:`.capture` reads a project into
    labelvault's tables (row mapping in :mod:`.rows`), :mod:`.restore` drives a restore through
    the writes of :mod:`.writes`, and :mod:`.reconcile` finds what an interrupted restore left.
    """

    # --- previews (labelvault.preview) ------------------------------------------------------

    def delete_project(self, project_id: str) -> None:
        """Delete a project (``projects.remove``); one that is already gone counts as deleted."""
        try:
            self._call("projects.remove", {"id": int(project_id)}, project=project_id)
        except PlatformNotFound:
            logger.info("project %s was already gone", project_id)

    def preview_workspace(self, source_workspace_id: str, name: str, description: str) -> str:
        """The hidden workspace called ``name`` of the team that owns ``source_workspace_id``,
        made (and hidden) on first use; returns its id."""
        source = self._call("workspaces.info", {"id": int(source_workspace_id)})
        team = source.get("teamId")
        wanted = {"teamId": team, "filter": [{"field": "name", "operator": "=", "value": name}]}
        for page in self._list("workspaces.list", wanted, project=None):
            for workspace in page:
                if workspace.get("name") == name:
                    return str(workspace["id"])
        try:
            created = self._call(
                "workspaces.add",
                {"teamId": team, "name": name, "description": description},
                idempotent=False,
            )
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"supervisely: the token may not create the previews workspace {name!r} in "
                f"team {team} ({exc.message}); ask a team admin to create it, or use a token "
                "with the right to add workspaces",
                platform=self.name,
                status=exc.status,
            ) from None
        try:
            self._call("workspaces.visibility.set", {"id": created["id"], "hidden": True})
        except PlatformError as exc:  # a visible workspace still works; say so
            logger.warning("previews workspace %s was not hidden: %s", created["id"], exc.message)
        return str(created["id"])
