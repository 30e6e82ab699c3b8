"""``mcp.list_pending_approvals``, ``mcp.respond_approval``, ``mcp.cancel_approval``
(PROTOCOL §15): MCP tool calls waiting for the owner's approval."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

ApprovalId = Annotated[str, Meta(min_length=1, max_length=128)]


@ns.method(
    "mcp.list_pending_approvals",
    NoParams,
    description="MCP tool calls waiting for approval, oldest first (guests: their own runs').",
    owner_only=False,
)
async def list_pending(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    pending = ctx.gateway.mcp.approvals.pending()
    principal = ctx.peer.principal
    if principal is not None and principal.role != "owner":
        mine = []
        for call in pending:
            run = await ctx.gateway.runs.get(call.run_id)
            if run.principal_id == principal.principal_id:
                mine.append(call)
        pending = mine
    return {"approvals": [call.to_json() for call in pending]}


@attrs.frozen
class RespondParams:
    id: ApprovalId
    approved: bool


@ns.method(
    "mcp.respond_approval",
    RespondParams,
    description="Approve or deny a waiting MCP tool call.",
    owner_only=True,
)
async def respond(ctx: CallContext, params: RespondParams) -> dict[str, Any]:
    ctx.gateway.mcp.approvals.respond(params.id, params.approved)
    return {"responded": True}


@attrs.frozen
class CancelParams:
    id: ApprovalId


@ns.method(
    "mcp.cancel_approval",
    CancelParams,
    description="Withdraw a waiting MCP tool call: it fails without being made.",
    owner_only=True,
)
async def cancel(ctx: CallContext, params: CancelParams) -> dict[str, Any]:
    ctx.gateway.mcp.approvals.cancel(params.id)
    return {"cancelled": True}
