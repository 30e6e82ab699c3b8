"""Creating, listing, changing and archiving workspaces, and handing one to a run.

A workspace is a directory (``<data dir>/workspaces/<workspace_id>`` unless a path is given)
and a ``config`` whose keys override a run's defaults: ``agent_id`` (the agent when the caller
names none), ``model`` and ``tools`` (the tools a run may use, among those its agent may).
Every value is checked against what the gateway has now (configured agents, the model catalogue,
the registered tools) when it is written. Names are unique, archived workspaces included.

Archiving keeps the workspace and its directory, takes it out of ``workspace.list`` (unless
asked) and refuses new runs in it; an archived workspace cannot be changed except to make it
active again (``status: "active"``). Every change publishes ``workspace.created``,
``workspace.updated`` or ``workspace.archived`` with the workspace as it now is.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Literal, final

import attrs
import trio

from ..kernel import (
    Conflict,
    EventBus,
    InvalidArgument,
    InvalidState,
    NotFound,
    OperationFailed,
    component_logger,
    now_ts,
)
from ..providers import ModelCatalog
from ..store import Store, Workspace

__all__ = ["WorkspaceConfig", "WorkspaceService"]

log = component_logger("workspaces")

#: Where workspaces without a given path get their directory, under the data dir.
DIRECTORY = "workspaces"


@attrs.frozen
class WorkspaceConfig:
    """A workspace's overrides; ``None`` leaves the run's own choice."""

    agent_id: str | None = None
    model: str | None = None
    tools: Sequence[str] | None = None


@final
class WorkspaceService:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        data_dir: Path,
        *,
        agents: Callable[[], Collection[str]],
        models: ModelCatalog,
        tools: Callable[[], Collection[str]],
    ) -> None:
        """``agents`` and ``tools`` name the agents configured and the tools registered now."""
        self._store = store
        self._bus = bus
        self._root = data_dir / DIRECTORY
        self._agents = agents
        self._models = models
        self._tools = tools
        #: Changes read, check and write; one at a time so none is lost.
        self._lock = trio.Lock()

    # -- queries -----------------------------------------------------------------------------

    async def get(self, workspace_id: str) -> Workspace:
        workspace = await self._store.get_workspace(workspace_id)
        if workspace is None:
            raise NotFound("workspace", workspace_id)
        return workspace

    async def list_all(self, *, include_archived: bool = False) -> list[Workspace]:
        return await self._store.list_workspaces(include_archived=include_archived)

    async def for_run(self, workspace_id: str) -> Workspace:
        """The workspace a new run is to use: ``NotFound`` when there is none, ``InvalidState``
        when it is archived."""
        workspace = await self.get(workspace_id)
        if workspace.status != "active":
            raise InvalidState(
                f"workspace {workspace_id} ({workspace.name!r}) is archived: no new runs start "
                'in it (workspace.update with status "active" brings it back)'
            )
        return workspace

    # -- changes -----------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        *,
        config: WorkspaceConfig | None = None,
        path: str | None = None,
        description: str = "",
    ) -> Workspace:
        """Store a new workspace, its directory created first; ``Conflict`` for a name in use."""
        name = name.strip()
        if not name:
            raise InvalidArgument.field("$.name", "must not be blank")
        checked = self._checked(config or WorkspaceConfig())
        workspace_id = "ws_" + uuid.uuid4().hex[:16]
        async with self._lock:
            if any(w.name == name for w in await self.list_all(include_archived=True)):
                raise _taken(name)
            if path is None:
                directory = self._root / workspace_id
                try:
                    await trio.Path(self._root).mkdir(mode=0o700, exist_ok=True)
                    await trio.Path(directory).mkdir(mode=0o700)
                except OSError as exc:
                    raise OperationFailed(
                        f"cannot create the workspace directory {str(directory)!r}: "
                        f"{exc.strerror or exc}"
                    ) from None
            else:
                directory = await _given_directory(path)
            now = now_ts()
            workspace = Workspace(
                workspace_id=workspace_id,
                name=name,
                path=str(directory),
                description=description,
                status="active",
                created_at=now,
                updated_at=now,
                agent_id=checked.agent_id,
                model=checked.model,
                tools=_tuple(checked.tools),
            )
            if not await self._store.insert_workspace(workspace):
                raise _taken(name)
        log.info("workspace %s (%r) created at %s", workspace_id, name, workspace.path)
        self._publish("workspace.created", workspace)
        return workspace

    async def update(
        self,
        workspace_id: str,
        *,
        config: WorkspaceConfig | None = None,
        status: Literal["active"] | None = None,
    ) -> Workspace:
        """Replace the workspace's config (keys left out are removed) and/or make an archived
        workspace active again. An archived workspace is otherwise refused (``InvalidState``)."""
        if config is None and status is None:
            raise InvalidArgument.field("$.config", "give config, status or both")
        checked = self._checked(config) if config is not None else None
        async with self._lock:
            workspace = await self.get(workspace_id)
            if workspace.status == "archived" and status != "active":
                raise InvalidState(
                    f"workspace {workspace_id} ({workspace.name!r}) is archived and cannot be "
                    'changed; pass status "active" to bring it back'
                )
            workspace = attrs.evolve(
                workspace, status=status or workspace.status, updated_at=now_ts()
            )
            if checked is not None:
                workspace = attrs.evolve(
                    workspace,
                    agent_id=checked.agent_id,
                    model=checked.model,
                    tools=_tuple(checked.tools),
                )
            if not await self._store.save_workspace(workspace):
                raise NotFound("workspace", workspace_id)
        self._publish("workspace.updated", workspace)
        return workspace

    async def archive(self, workspace_id: str) -> Workspace:
        """Archive the workspace (its directory stays); archiving it again changes nothing."""
        async with self._lock:
            workspace = await self.get(workspace_id)
            if workspace.status == "archived":
                return workspace
            workspace = attrs.evolve(workspace, status="archived", updated_at=now_ts())
            if not await self._store.save_workspace(workspace):
                raise NotFound("workspace", workspace_id)
        log.info("workspace %s (%r) archived", workspace_id, workspace.name)
        self._publish("workspace.archived", workspace)
        return workspace

    # -- helpers -----------------------------------------------------------------------------

    def _checked(self, config: WorkspaceConfig) -> WorkspaceConfig:
        """``config`` with every value known to the gateway now (the model by its full id,
        tools without repeats); ``InvalidArgument`` naming the field otherwise."""
        if config.agent_id is not None:
            agents = self._agents()
            if config.agent_id not in agents:
                raise InvalidArgument.field(
                    "$.config.agent_id",
                    f"no agent {config.agent_id!r} is configured "
                    f"(configured: {', '.join(sorted(agents))}; see agent.list)",
                )
        model = None
        if config.model is not None:
            try:
                model = self._models.resolve(config.model).id
            except NotFound:
                raise InvalidArgument.field(
                    "$.config.model", f"unknown model {config.model!r} (see models.list)"
                ) from None
        tools = None
        if config.tools is not None:
            known = self._tools()
            for index, tool in enumerate(config.tools):
                if tool not in known:
                    raise InvalidArgument.field(
                        f"$.config.tools[{index}]",
                        f"unknown tool {tool!r} (known: {', '.join(sorted(known))})",
                    )
            tools = tuple(dict.fromkeys(config.tools))
        return WorkspaceConfig(config.agent_id, model, tools)

    def _publish(self, topic: str, workspace: Workspace) -> None:
        self._bus.publish(topic, {"workspace": workspace.to_json()})


def _tuple(tools: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(tools) if tools is not None else None


def _taken(name: str) -> Conflict:
    return Conflict.field("$.name", f"a workspace named {name!r} exists already")


def _absolute(path: str) -> Path:
    if not os.path.isabs(path):
        raise InvalidArgument.field("$.path", f"{path!r} is not an absolute path")
    return Path(os.path.normpath(path))


async def _given_directory(path: str) -> Path:
    """``path`` as an absolute, normalised directory, created when missing."""
    directory = _absolute(path)
    try:
        await trio.Path(directory).mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise InvalidArgument.field("$.path", f"{str(directory)!r} is not a directory") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidArgument.field(
            "$.path", f"cannot create {str(directory)!r}: {reason}"
        ) from None
    return directory
