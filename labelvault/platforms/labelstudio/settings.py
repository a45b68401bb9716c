"""How the Label Studio adapter talks to its server (env prefix ``LABELVAULT_LABELSTUDIO_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LabelStudioOptions(BaseSettings):
    """How the adapter talks to Label Studio (env prefix ``LABELVAULT_LABELSTUDIO_``).

    The defaults follow measurements on 1.23 (``benchmarks/labelstudio.py``):

    - ``capture_mode``: ``"list"`` (``/api/tasks?fields=all``, about 300–400 tasks/s; leaves
      nothing on the server, but cannot see a task's ``allow_skip``) or ``"export"``
      (snapshot exports, about 1,000 tasks/s on one server process; Label Studio 1.23 keeps
      every export's file on its disk after the export is deleted, so each capture leaves
      files in the server's ``media/export`` folder);
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

    capture_mode: Literal["export", "list"] = "list"
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
