"""``chat.send``, ``chat.abort``, ``chat.history`` and ``chat.clear`` (PROTOCOL §8)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ..kernel import NotFound
from ..sessions import DEFAULT_SESSION, SessionKey, agent_of
from ._context import CallContext
from ._registry import Namespace
from .agent import IdempotencyKey, Message, RunId, WorkspaceId, start_run, visible_run

ns = Namespace()


@attrs.frozen
class SendParams:
    message: Message
    session_key: (
        Annotated[
            SessionKey,
            Meta(description="default agent:main:main, or in a workspace agent:<its agent>:main"),
        ]
        | None
    ) = None
    idempotency_key: IdempotencyKey | None = None
    workspace_id: WorkspaceId | None = None


@ns.method(
    "chat.send",
    SendParams,
    description="Send a chat message: an agent run by the session's agent; its events follow.",
)
async def send(ctx: CallContext, params: SendParams) -> dict[str, Any]:
    key = params.session_key
    if key is None and params.workspace_id is None:
        key = DEFAULT_SESSION
    # A session's agent is in its key; without one, a workspace's agent and its main session.
    return await start_run(
        ctx,
        params.message,
        session_key=key,
        agent_id=agent_of(key) if key is not None else None,
        idempotency_key=params.idempotency_key,
        workspace_id=params.workspace_id,
    )


@attrs.frozen
class AbortParams:
    run_id: RunId | None = None
    session_key: SessionKey = DEFAULT_SESSION


@ns.method(
    "chat.abort",
    AbortParams,
    description="Abort the given run, else the run active on the session; waits until it stopped.",
)
async def abort(ctx: CallContext, params: AbortParams) -> dict[str, Any]:
    runs = ctx.gateway.runs
    run_id = params.run_id
    if run_id is None:
        live = runs.active_run(params.session_key)
        if live is None:
            return {"aborted": False}
        run_id = live.run_id
    await visible_run(ctx, run_id)
    aborted = await runs.cancel(run_id, "aborted by chat.abort")
    return {"aborted": aborted, "run_id": run_id}


@attrs.frozen
class HistoryParams:
    session_key: SessionKey = DEFAULT_SESSION
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


@ns.method(
    "chat.history",
    HistoryParams,
    description="Messages of a chat session, oldest first (empty for a session not used yet).",
)
async def history(ctx: CallContext, params: HistoryParams) -> dict[str, Any]:
    key = params.session_key
    try:
        messages, _ = await ctx.gateway.sessions.history(key, limit=params.limit)
    except NotFound:
        return {"messages": []}
    return {"messages": [m.to_json() for m in messages]}


@attrs.frozen
class ClearParams:
    session_key: SessionKey = DEFAULT_SESSION


@ns.method(
    "chat.clear",
    ClearParams,
    description="Remove every message of a chat session; the session stays.",
)
async def clear(ctx: CallContext, params: ClearParams) -> dict[str, Any]:
    removed = await ctx.gateway.sessions.clear(params.session_key)
    return {"cleared": True, "messages_removed": removed}
