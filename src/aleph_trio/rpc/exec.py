"""``exec.approval.request``, ``exec.approval.resolve``, ``exec.approvals.get``,
``exec.approvals.set``, ``exec.approvals.pending`` (PROTOCOL §10).

Owner-only (PROTOCOL §4): resolving and the approvals policy; requesting is not."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import attrs
import trio
from msgspec import Meta

from ..kernel import AgentId
from ..protocol import InternalError, InvalidParams
from ..runs import resolve_agent
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

ApprovalId = Annotated[str, Meta(min_length=1, max_length=128)]
Hash = Annotated[str, Meta(min_length=1, max_length=128)]


def _invalid(path: str, message: str) -> InvalidParams:
    return InvalidParams(
        f"Invalid params: {path}: {message}", errors=[{"path": path, "message": message}]
    )


@attrs.frozen
class RequestParams:
    command: Annotated[str, Meta(min_length=1, max_length=100_000)]
    cwd: Annotated[str, Meta(min_length=1, max_length=4096)]
    agent_id: AgentId
    timeout_ms: Annotated[int, Meta(ge=1000, le=86_400_000)] | None = None


@ns.method(
    "exec.approval.request",
    RequestParams,
    description="Ask whether a command may run; waits for a human unless the policy decides.",
    owner_only=False,
)
async def request(ctx: CallContext, params: RequestParams) -> dict[str, Any]:
    if not params.command.strip():
        raise _invalid("$.command", "must not be blank")
    if not await trio.Path(params.cwd).is_dir():
        raise _invalid("$.cwd", f"{params.cwd!r} is not an existing directory")
    resolve_agent(ctx.gateway.config, params.agent_id)  # -32004 for an unknown agent
    ticket = await ctx.gateway.approvals.submit(
        params.command, params.cwd, params.agent_id, timeout_ms=params.timeout_ms
    )
    decision = await ticket.wait()
    return decision.to_json()


@attrs.frozen
class ResolveParams:
    id: ApprovalId
    decision: Literal["allow-once", "allow-always", "deny"]
    resolved_by: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


@ns.method(
    "exec.approval.resolve",
    ResolveParams,
    description="Answer a pending approval; the first answer wins.",
    owner_only=True,
)
async def resolve(ctx: CallContext, params: ResolveParams) -> dict[str, Any]:
    by = params.resolved_by or ctx.peer.client_id or ctx.peer.connection_id
    await ctx.gateway.approvals.resolve(params.id, params.decision, by)
    return {"resolved": True}


@ns.method(
    "exec.approvals.get",
    NoParams,
    description="The approval policy in force and its hash (for exec.approvals.set).",
    owner_only=True,
)
async def get(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    current = await ctx.gateway.approvals.policy()
    if not current.valid:
        first = current.errors[0]
        where = f"{first['path']}: " if first["path"] else ""
        raise InternalError(
            f"Internal error: exec-approvals.toml is invalid ({where}{first['message']}); "
            "every command is denied until it is fixed or replaced with exec.approvals.set",
            {"errors": current.errors, "hash": current.hash},
        )
    return {"config": current.policy.to_json(), "hash": current.hash}


@attrs.frozen
class SetParams:
    config: dict[str, Any]
    base_hash: Hash


@ns.method(
    "exec.approvals.set",
    SetParams,
    description="Replace the approval policy; base_hash must be the hash of the one in force.",
    owner_only=True,
)
async def set_policy(ctx: CallContext, params: SetParams) -> dict[str, Any]:
    written = await ctx.gateway.approvals.set_policy(params.config, params.base_hash)
    return {"applied": True, "hash": written.hash}


@ns.method(
    "exec.approvals.pending",
    NoParams,
    description="Approvals waiting for a decision, oldest first.",
    owner_only=True,
)
async def pending(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"pending": [r.to_json() for r in ctx.gateway.approvals.pending()]}
