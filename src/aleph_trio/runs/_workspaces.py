"""What a run needs of a workspace (PROTOCOL §17), as narrow interfaces: the run manager looks a
workspace up by id and uses its directory and overrides, without knowing the workspace service."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

__all__ = ["RunWorkspace", "WorkspaceLookup"]


class RunWorkspace(Protocol):
    """A workspace as a run sees it; ``None`` overrides leave the run's own choice."""

    @property
    def workspace_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str:
        """The directory ``exec`` runs in by default."""
        ...

    @property
    def agent_id(self) -> str | None:
        """The agent when the caller names none."""
        ...

    @property
    def model(self) -> str | None: ...

    @property
    def tools(self) -> Collection[str] | None:
        """The only tools the run may use (of those its agent may)."""
        ...


class WorkspaceLookup(Protocol):
    async def for_run(self, workspace_id: str) -> RunWorkspace:
        """The workspace a new run is to use; raises ``NotFound`` when there is none and
        ``InvalidState`` when it takes no new runs (archived)."""
        ...
