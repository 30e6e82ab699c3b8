"""``chat.history`` and ``chat.clear`` (PROTOCOL §8)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from .._sessions import DEFAULT_SESSION, SessionKey
from ..protocol import ResourceNotFound
from ._context import CallContext
from ._registry import Namespace

ns = Namespace()


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
    except ResourceNotFound:
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
