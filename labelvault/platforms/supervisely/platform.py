"""The Supervisely adapter: its capture and its restore over one API client."""

from __future__ import annotations

from labelvault.platforms.supervisely.capture import SuperviselyCapture
from labelvault.platforms.supervisely.restore import SuperviselyRestore

__all__ = ["SuperviselyPlatform"]


class SuperviselyPlatform(SuperviselyCapture, SuperviselyRestore):
    """A Supervisely server, as capture and restore see it (registered as ``supervisely``).

    Every part shares one :class:`~.api.SuperviselyApi`: :mod:`.capture` reads a project into
    labelvault's tables (row mapping in :mod:`.rows`), :mod:`.restore` drives a restore through
    the writes of :mod:`.writes`, and :mod:`.reconcile` finds what an interrupted restore left.
    """
