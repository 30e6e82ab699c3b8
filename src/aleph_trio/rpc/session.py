"""``session.list``, ``session.history``, ``session.compact``, ``session.delete`` (PROTOCOL §8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import attrs
from msgspec import Meta

from ..kernel import format_ts, parse_ts
from ..protocol import InternalError, InvalidParams, ResourceNotFound
from ..runs import DEFAULT_AGENT
from ..sessions import CompactionFailed, SessionKey, agent_of
from ..store import SessionFilter
from ._context import CallContext
from ._registry import Namespace

if TYPE_CHECKING:
    from .._gateway import Gateway

ns = Namespace()


def session_model(gateway: Gateway, session_key: str) -> str:
    """The model of the session's agent (the main agent's if that agent is gone)."""
    agents = gateway.config.agents
    agent = agents.get(agent_of(session_key)) or agents.get(DEFAULT_AGENT)
    return (agent.model if agent else None) or gateway.models.default_model


@attrs.frozen
class ListFilter:
    agent_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    prefix: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    updated_after: Annotated[str, Meta(description="RFC 3339 time")] | None = None


@attrs.frozen
class ListParams:
    filter: ListFilter | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    offset: Annotated[int, Meta(ge=0, le=2**62)] = 0


@ns.method(
    "session.list", ListParams, description="Sessions, newest activity first.", owner_only=False
)
async def list_sessions(ctx: CallContext, params: ListParams) -> dict[str, Any]:
    flt = params.filter or ListFilter()
    updated_after = None
    if flt.updated_after is not None:
        try:
            updated_after = format_ts(parse_ts(flt.updated_after))
        except ValueError:
            path = "$.filter.updated_after"
            raise InvalidParams(
                f"Invalid params: {path}: expected an RFC 3339 time",
                errors=[{"path": path, "message": "expected an RFC 3339 time"}],
            ) from None
    principal = ctx.peer.principal
    guest = principal.principal_id if principal and principal.role != "owner" else None
    sessions, total = await ctx.gateway.store.list_sessions(
        SessionFilter(flt.agent_id, flt.prefix, updated_after, owner_id=guest),
        limit=params.limit,
        offset=params.offset,
    )
    return {"sessions": [s.to_json() for s in sessions], "total": total}


@attrs.frozen
class HistoryParams:
    session_key: SessionKey
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    before_id: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None


@ns.method(
    "session.history",
    HistoryParams,
    description="The most recent messages of a session (older than before_id), oldest first.",
    owner_only=False,
)
async def history(ctx: CallContext, params: HistoryParams) -> dict[str, Any]:
    key = params.session_key
    messages, tokens = await ctx.gateway.sessions.history(
        key, limit=params.limit, before_id=params.before_id
    )
    return {"messages": [m.to_json() for m in messages], "token_count": tokens}


@attrs.frozen
class DeleteParams:
    session_key: SessionKey


@ns.method(
    "session.delete",
    DeleteParams,
    description="Delete a session and all its messages; its runs are cancelled first.",
    owner_only=False,
)
async def delete(ctx: CallContext, params: DeleteParams) -> dict[str, Any]:
    await ctx.gateway.runs.cancel_session(params.session_key, "session deleted")
    removed = await ctx.gateway.sessions.delete(params.session_key)
    return {"deleted": True, "messages_removed": removed}


@attrs.frozen
class CompactParams:
    session_key: SessionKey


@ns.method(
    "session.compact",
    CompactParams,
    description="Summarise all but the newest messages into one, and keep durable facts in memory.",
    owner_only=False,
)
async def compact(ctx: CallContext, params: CompactParams) -> dict[str, Any]:
    gateway = ctx.gateway
    key = params.session_key
    if await gateway.store.get_session(key) is None:
        raise ResourceNotFound("session", key)
    model = gateway.models.resolve(session_model(gateway, key))

    async def work() -> dict[str, Any]:
        try:
            result = await gateway.compactor.compact(key, model=model)
        except CompactionFailed as exc:
            raise InternalError(f"Internal error: compaction failed: {exc}") from None
        return result.to_json()

    return await gateway.runs.exclusive(
        key,
        work,
        busy_message=f"a run is active on {key}; compact it once the run ended",
    )
