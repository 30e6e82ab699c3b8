"""The built-in tools every agent may use unless its config says otherwise (PROTOCOL §7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import attrs
import trio
from msgspec import Meta

from ._config_file import secret_env_names
from ._exec import child_environment, run_command
from ._tools import AnyTool, Tool, ToolContext, ToolFailed

__all__ = ["builtin_tools"]


@attrs.frozen
class ExecParams:
    command: Annotated[str, Meta(min_length=1, max_length=100_000)]
    cwd: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    timeout_ms: Annotated[int, Meta(ge=100, le=3_600_000)] | None = None


async def exec_command(ctx: ToolContext, params: ExecParams) -> str:
    """Ask for approval (the run waits in ``waiting_approval``), then run the exact command."""
    gateway, run = ctx.gateway, ctx.run
    if not params.command.strip():
        raise ToolFailed("the command is empty")
    cwd = await (trio.Path(params.cwd).expanduser() if params.cwd else trio.Path.cwd())
    if not await cwd.is_dir():
        raise ToolFailed(f"cwd {str(cwd)!r} is not an existing directory")
    ticket = await gateway.approvals.submit(
        params.command, str(cwd), run.agent.id, run_id=run.run_id
    )
    try:
        if ticket.pending:
            await run.set_status("waiting_approval")
            decision = await ticket.wait()
            await run.set_status("running")
        else:
            decision = await ticket.wait()
    except BaseException:
        await ticket.withdraw()
        raise
    if not decision.approved:
        raise ToolFailed(f"the command was not run: {decision.decision}")
    limits = gateway.config.exec
    timeout_s = params.timeout_ms / 1000 if params.timeout_ms else limits.timeout_s
    try:
        result = await run_command(
            params.command,
            cwd=Path(cwd),
            timeout_s=timeout_s,
            max_output_bytes=limits.max_output_bytes,
            env=child_environment(secret_env_names(gateway.config)),
        )
    except OSError as exc:
        raise ToolFailed(f"the command could not be started: {exc}") from None
    if result.timed_out:
        raise ToolFailed(f"{result.describe()}\n(after {timeout_s:g} s)")
    return result.describe()


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
            "exec",
            "Run a shell command (sh -c) and get its exit code and output. Every command needs "
            "approval under the gateway's exec policy; a denied command is not run.",
            ExecParams,
            exec_command,
        ),
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
