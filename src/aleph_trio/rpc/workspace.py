"""``workspace.create``, ``workspace.list``, ``workspace.get``, ``workspace.update``,
``workspace.archive`` (PROTOCOL §17)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import attrs
from msgspec import Meta

from ..kernel import AgentId
from ..workspaces import WorkspaceConfig
from ._context import CallContext
from ._registry import Namespace

ns = Namespace()

WorkspaceId = Annotated[str, Meta(min_length=1, max_length=128)]
ToolName = Annotated[str, Meta(min_length=1, max_length=128)]


@attrs.frozen
class ConfigParams:
    """Overrides for runs in the workspace; a key left out leaves the run's own choice."""

    agent_id: Annotated[AgentId, Meta(description="the agent when a run names none")] | None = None
    model: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    tools: (
        Annotated[
            list[ToolName],
            Meta(max_length=256, description="the only tools runs may use (of their agent's)"),
        ]
        | None
    ) = None

    def to_config(self) -> WorkspaceConfig:
        return WorkspaceConfig(self.agent_id, self.model, self.tools)


@attrs.frozen
class CreateParams:
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    config: ConfigParams | None = None
    path: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=4096,
                description="absolute; created when missing (default: under the data dir)",
            ),
        ]
        | None
    ) = None
    description: Annotated[str, Meta(max_length=2000)] = ""


@ns.method(
    "workspace.create",
    CreateParams,
    description="Create a workspace: a directory and the overrides runs in it use.",
    owner_only=True,
)
async def create(ctx: CallContext, params: CreateParams) -> dict[str, Any]:
    workspace = await ctx.gateway.workspaces.create(
        params.name,
        config=params.config.to_config() if params.config is not None else None,
        path=params.path,
        description=params.description,
    )
    return {"workspace_id": workspace.workspace_id}


@attrs.frozen
class ListParams:
    include_archived: bool = False


@ns.method(
    "workspace.list",
    ListParams,
    description="Workspaces, oldest first; archived ones only with include_archived.",
    owner_only=False,
)
async def list_(ctx: CallContext, params: ListParams) -> dict[str, Any]:
    workspaces = await ctx.gateway.workspaces.list_all(include_archived=params.include_archived)
    return {"workspaces": [workspace.to_json() for workspace in workspaces]}


@attrs.frozen
class WorkspaceRef:
    workspace_id: WorkspaceId


@ns.method("workspace.get", WorkspaceRef, description="One workspace.", owner_only=False)
async def get(ctx: CallContext, params: WorkspaceRef) -> dict[str, Any]:
    return (await ctx.gateway.workspaces.get(params.workspace_id)).to_json()


@attrs.frozen
class UpdateParams:
    workspace_id: WorkspaceId
    config: (
        Annotated[ConfigParams, Meta(description="replaces the config; keys left out are removed")]
        | None
    ) = None
    status: (
        Annotated[Literal["active"], Meta(description="make an archived workspace active again")]
        | None
    ) = None


@ns.method(
    "workspace.update",
    UpdateParams,
    description="Replace a workspace's config, or make an archived workspace active again.",
    owner_only=True,
)
async def update(ctx: CallContext, params: UpdateParams) -> dict[str, Any]:
    await ctx.gateway.workspaces.update(
        params.workspace_id,
        config=params.config.to_config() if params.config is not None else None,
        status=params.status,
    )
    return {"updated": True}


@ns.method(
    "workspace.archive",
    WorkspaceRef,
    description="Archive a workspace: kept with its directory, but no new runs start in it.",
    owner_only=True,
)
async def archive(ctx: CallContext, params: WorkspaceRef) -> dict[str, Any]:
    await ctx.gateway.workspaces.archive(params.workspace_id)
    return {"archived": True}
