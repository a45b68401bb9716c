"""Platform adapters and the registry that finds them by name.

Importing this package registers every adapter: ``supervisely`` and, when its module is present,
``labelstudio``.
"""

from __future__ import annotations

import importlib

from labelvault.platforms.base import (
    PLATFORMS,
    Platform,
    ProjectInfo,
    TablePage,
    get_platform_factory,
    instance_from_url,
    register_platform,
)
from labelvault.platforms.supervisely import SuperviselyPlatform

__all__ = [
    "PLATFORMS",
    "Platform",
    "ProjectInfo",
    "SuperviselyPlatform",
    "TablePage",
    "get_platform_factory",
    "instance_from_url",
    "register_platform",
]

register_platform("supervisely", SuperviselyPlatform)

# Other adapters register themselves when imported.
for _module in ("labelvault.platforms.labelstudio",):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:  # pragma: no cover - adapter not installed
        if exc.name != _module:
            raise
