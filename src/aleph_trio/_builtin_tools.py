"""The built-in tools every agent may use unless its config says otherwise (PROTOCOL §7)."""

from __future__ import annotations

from typing import Annotated

import attrs
from msgspec import Meta

from ._tools import AnyTool, Tool, ToolContext, ToolFailed

__all__ = ["builtin_tools"]


@attrs.frozen
class AskUserParams:
    question: Annotated[str, Meta(min_length=1, max_length=4096)]
    options: Annotated[list[Annotated[str, Meta(max_length=512)]], Meta(max_length=32)] | None = (
        None
    )


async def ask_user(ctx: ToolContext, params: AskUserParams) -> str:
    answer = await ctx.run.ask_user(params.question, params.options)
    return answer


@attrs.frozen
class MemorySearchParams:
    query: Annotated[str, Meta(min_length=1, max_length=4096)]
    limit: Annotated[int, Meta(ge=1, le=50)] = 5


async def memory_search(ctx: ToolContext, params: MemorySearchParams) -> str:
    hits = await ctx.gateway.store.search_memory(params.query, limit=params.limit)
    if not hits:
        return f"nothing stored matches {params.query!r}"
    return "\n".join(f"- {hit.item.content} (id {hit.item.id})" for hit in hits)


@attrs.frozen
class MemoryStoreParams:
    content: Annotated[str, Meta(min_length=1, max_length=100_000)]


async def memory_store(ctx: ToolContext, params: MemoryStoreParams) -> str:
    content = params.content.strip()
    if not content:
        raise ToolFailed("there is nothing to remember in blank text")
    item = await ctx.gateway.store.store_memory(
        content,
        source=ctx.run.record.session_key,
        metadata={"run_id": ctx.run.record.run_id, "agent_id": ctx.run.record.agent_id},
    )
    return f"remembered (id {item.id})"


def builtin_tools() -> list[AnyTool]:
    return [
        Tool(
            "ask_user",
            "Ask the user a question and wait for the answer. Use it when you need information "
            "only the user has; offer options when the answer is one of a few choices.",
            AskUserParams,
            ask_user,
        ),
        Tool(
            "memory_search",
            "Search long-term memory (facts stored earlier, in any session) by keywords.",
            MemorySearchParams,
            memory_search,
        ),
        Tool(
            "memory_store",
            "Store a durable fact in long-term memory so later conversations can find it.",
            MemoryStoreParams,
            memory_store,
        ),
    ]
