"""What a run form shows for a flow parameter: a title beside the docstring's description.

Prefect titles each parameter with its raw name (``project_id``) and takes the description from
the flow's docstring. ``Annotated[int | str, titled("Project id")]`` gives the form a title
people read; the value the flow receives is unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from tasks.blocks import ConnectionChoice, StoreChoice


def titled(text: str) -> Any:
    """``Annotated`` metadata that sets a flow parameter's title in the run form."""
    return Field(json_schema_extra={"title": text})


#: The parameters most flows share, each with its form title.
ProjectId = Annotated[int | str, titled("Project id")]
Connection = Annotated[ConnectionChoice, titled("Platform connection")]
Store = Annotated[StoreChoice, titled("Version store")]
VersionNumber = Annotated[int | None, titled("Version")]
ProjectWaitSeconds = Annotated[float, titled("Longest wait for the project (seconds)")]
