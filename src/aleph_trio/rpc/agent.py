"""``agent.run``, ``agent.status``, ``agent.cancel``, ``agent.list``, ``agent.respondToInput``
(PROTOCOL §7)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import attrs
from msgspec import Meta

from ..kernel import AgentId
from ..protocol import InvalidParams
from ..runs import agents_of
from ..sessions import SessionKey
from ..store import Run
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

Message = Annotated[str, Meta(min_length=1, max_length=1_000_000)]
RunId = Annotated[str, Meta(min_length=1, max_length=128)]
Thinking = Literal["off", "minimal", "low", "medium", "high", "xhigh"]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=256)]
WorkspaceId = Annotated[
    str, Meta(min_length=1, max_length=128, description="run in this workspace (PROTOCOL §17)")
]


def run_result(record: Run) -> dict[str, Any]:
    return {"run_id": record.run_id, "status": record.status, "session_key": record.session_key}


async def start_run(
    ctx: CallContext,
    message: str,
    *,
    session_key: str | None,
    agent_id: str | None = None,
    model: str | None = None,
    thinking: str | bool | None = None,
    idempotency_key: str | None = None,
    workspace_id: str | None = None,
) -> dict[str, Any]:
    """Start a run for the calling connection, which then gets its events (PROTOCOL §6.2)."""
    if not message.strip():
        raise InvalidParams(
            "Invalid params: $.message: must not be blank",
            errors=[{"path": "$.message", "message": "must not be blank"}],
        )
    principal = ctx.peer.principal
    record = await ctx.gateway.runs.start(
        message,
        session_key=session_key,
        agent_id=agent_id,
        model=model,
        thinking=thinking,
        idempotency_key=idempotency_key,
        principal_id=principal.principal_id if principal and principal.role != "owner" else None,
        watcher=ctx.peer.subscriber,
        workspace_id=workspace_id,
    )
    return run_result(record)


@attrs.frozen
class RunParams:
    message: Message
    session_key: SessionKey | None = None
    thinking: Thinking | bool | None = None
    model: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    agent_id: AgentId | None = None
    idempotency_key: IdempotencyKey | None = None
    workspace_id: WorkspaceId | None = None


@ns.method(
    "agent.run",
    RunParams,
    description="Start an agent run; its stream.* and agent.* events follow on this connection.",
    owner_only=False,
)
async def run(ctx: CallContext, params: RunParams) -> dict[str, Any]:
    return await start_run(
        ctx,
        params.message,
        session_key=params.session_key,
        agent_id=params.agent_id,
        model=params.model,
        thinking=params.thinking,
        idempotency_key=params.idempotency_key,
        workspace_id=params.workspace_id,
    )


@attrs.frozen
class RunRef:
    run_id: RunId


@ns.method(
    "agent.status",
    RunRef,
    description="A run's status and counters (also once finished).",
    owner_only=False,
)
async def status(ctx: CallContext, params: RunRef) -> dict[str, Any]:
    record = await ctx.gateway.runs.get(params.run_id)
    out: dict[str, Any] = {
        "run_id": record.run_id,
        "status": record.status,
        "iterations": record.iterations,
        "tokens_used": record.tokens_used,
        "session_key": record.session_key,
        "agent_id": record.agent_id,
        "model": record.model,
        "created_at": record.created_at,
    }
    for name in ("started_at", "finished_at", "error", "error_code", "output", "workspace_id"):
        value = getattr(record, name)
        if value is not None:
            out[name] = value
    return out


@ns.method(
    "agent.cancel",
    RunRef,
    description="Cancel a run; answers once nothing of it is running any more.",
    owner_only=False,
)
async def cancel(ctx: CallContext, params: RunRef) -> dict[str, Any]:
    await ctx.gateway.runs.get(params.run_id)
    cancelled = await ctx.gateway.runs.cancel(params.run_id, "cancelled by agent.cancel")
    return {"cancelled": cancelled, "run_id": params.run_id}


@ns.method(
    "agent.list",
    NoParams,
    description="The configured agents and the tools each may use.",
    owner_only=False,
)
async def list_agents(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    gateway = ctx.gateway
    default_model = gateway.models.default_model
    tools = gateway.tools.names()
    return {
        "agents": [
            agent.to_json(
                model=agent.model or default_model, tools=tools, opt_in=gateway.tools.opt_in()
            )
            for agent in agents_of(gateway.config)
        ]
    }


@attrs.frozen
class RespondParams:
    run_id: RunId
    message: Message


@ns.method(
    "agent.respondToInput",
    RespondParams,
    description="Answer a run's question (waiting_input), or give a running run more input.",
    owner_only=False,
)
async def respond(ctx: CallContext, params: RespondParams) -> dict[str, Any]:
    record = await ctx.gateway.runs.get(params.run_id)
    if not ctx.gateway.runs.respond(params.run_id, params.message):
        raise InvalidParams(
            f"Invalid params: run {params.run_id} has finished ({record.status})",
            reason="invalid_state",
        )
    return {"queued": True}
