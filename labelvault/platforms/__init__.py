"""Platform adapters and the registry that finds them by name.

Each platform is a package (``supervisely/``, ``labelstudio/``) with one module per concern;
importing this package registers every adapter the same way.
"""

from __future__ import annotations

from labelvault.platforms.base import (
    PLATFORMS,
    Platform,
    ProjectInfo,
    TablePage,
    get_platform_factory,
    instance_from_url,
    register_platform,
)
from labelvault.platforms.labelstudio import LabelStudioPlatform
from labelvault.platforms.supervisely import SuperviselyPlatform

__all__ = [
    "PLATFORMS",
    "LabelStudioPlatform",
    "Platform",
    "ProjectInfo",
    "SuperviselyPlatform",
    "TablePage",
    "get_platform_factory",
    "instance_from_url",
    "register_platform",
]

register_platform(SuperviselyPlatform.name, SuperviselyPlatform)
register_platform(LabelStudioPlatform.name, LabelStudioPlatform)
