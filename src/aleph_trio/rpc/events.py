"""``events.subscribe``, ``events.unsubscribe``, ``events.list`` (PROTOCOL §6.4)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ..kernel import ReplayLost, TopicPattern, pattern_error
from ..protocol import InvalidParams
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

MAX_PATTERNS = 64
Patterns = Annotated[list[str], Meta(min_length=1, max_length=MAX_PATTERNS)]


def _compile(patterns: list[str]) -> list[TopicPattern]:
    errors = []
    for i, text in enumerate(patterns):
        problem = pattern_error(text)
        if problem is not None:
            errors.append({"path": f"$.patterns[{i}]", "message": problem})
    if errors:
        raise InvalidParams(
            f"Invalid params: {errors[0]['path']}: {errors[0]['message']}", errors=errors
        )
    unique = dict.fromkeys(patterns)
    return [TopicPattern(text) for text in unique]


@attrs.frozen
class SubscribeParams:
    patterns: Patterns
    since_seq: Annotated[int, Meta(ge=0)] | None = None


@ns.method(
    "events.subscribe",
    SubscribeParams,
    description="Add topic patterns; with since_seq, first replay buffered events after it.",
    owner_only=False,
)
async def subscribe(ctx: CallContext, params: SubscribeParams) -> dict[str, Any]:
    bus = ctx.gateway.bus
    sub = ctx.peer.subscriber
    compiled = _compile(params.patterns)
    added = [p.text for p in compiled if p.text not in sub.patterns]
    if len(sub.patterns) + len(added) > MAX_PATTERNS:
        raise InvalidParams(
            f"Invalid params: at most {MAX_PATTERNS} active patterns per connection",
            reason="limit",
        )
    if params.since_seq is not None and params.since_seq > bus.seq:
        raise InvalidParams(
            f"Invalid params: since_seq {params.since_seq} is ahead of this gateway's event head "
            f"{bus.seq} (after a restart, subscribe without since_seq)",
            errors=[{"path": "$.since_seq", "message": f"greater than the current seq {bus.seq}"}],
            seq=bus.seq,
        )
    try:
        outcome = await bus.add_patterns(
            sub, compiled, since_seq=params.since_seq, send=ctx.peer.send_event
        )
    except ReplayLost:
        sub.on_overflow()
        raise
    return {
        "subscribed": added,
        "active_patterns": list(sub.patterns),
        "seq": bus.seq,
        "replayed": outcome.replayed,
        "gap": outcome.gap,
    }


@attrs.frozen
class UnsubscribeParams:
    patterns: Annotated[
        list[Annotated[str, Meta(max_length=256)]], Meta(min_length=1, max_length=256)
    ]


@ns.method(
    "events.unsubscribe", UnsubscribeParams, description="Remove topic patterns.", owner_only=False
)
async def unsubscribe(ctx: CallContext, params: UnsubscribeParams) -> dict[str, Any]:
    sub = ctx.peer.subscriber
    removed = ctx.gateway.bus.remove_patterns(sub, params.patterns)
    return {"unsubscribed": removed, "active_patterns": list(sub.patterns)}


@ns.method(
    "events.list",
    NoParams,
    description="This connection's active topic patterns.",
    owner_only=False,
)
async def list_patterns(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    patterns = list(ctx.peer.subscriber.patterns)
    return {"patterns": patterns, "total": len(patterns)}
