"""The built-in tools every agent may use unless its config says otherwise (PROTOCOL §7).

Each is built with what it uses: ``exec`` with the approvals and the config, the memory tools
with the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import attrs
import trio
from msgspec import Meta

from ..approvals import Approvals, ProcessGuard, Ticket, child_environment, run_command
from ..kernel import Config, secret_env_names
from ..store import Store
from ._tool import AnyTool, Tool, ToolContext, ToolFailed

__all__ = ["builtin_tools"]


@attrs.frozen
class ExecParams:
    command: Annotated[str, Meta(min_length=1, max_length=100_000)]
    cwd: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    timeout_ms: Annotated[int, Meta(ge=100, le=3_600_000)] | None = None


@attrs.frozen
class ExecTool:
    """``exec``: ask for approval (the run waits in ``waiting_approval``), then run the exact
    command."""

    approvals: Approvals
    config: Callable[[], Config]
    guard: ProcessGuard

    async def __call__(self, ctx: ToolContext, params: ExecParams) -> str:
        run = ctx.run
        if not params.command.strip():
            raise ToolFailed("the command is empty")
        cwd = await _working_directory(params.cwd, run.cwd)
        if not await cwd.is_dir():
            raise ToolFailed(f"cwd {str(cwd)!r} is not an existing directory")
        ticket = await self.approvals.submit(
            params.command, str(cwd), run.agent_id, run_id=run.run_id
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
            raise ToolFailed(f"the command was not run: {_refusal(decision.decision, ticket)}")
        config = self.config()  # read after the wait: a reload meanwhile applies
        limits = config.exec
        timeout_s = params.timeout_ms / 1000 if params.timeout_ms else limits.timeout_s
        try:
            result = await run_command(
                params.command,
                cwd=Path(cwd),
                timeout_s=timeout_s,
                max_output_bytes=limits.max_output_bytes,
                env=child_environment(secret_env_names(config)),
                guard=self.guard,
            )
        except OSError as exc:
            raise ToolFailed(f"the command could not be started: {exc}") from None
        if result.timed_out:
            raise ToolFailed(f"{result.describe()}\n(after {timeout_s:g} s)")
        return result.describe()


async def _working_directory(given: str | None, default: str | None) -> trio.Path:
    """Where a command runs: ``given`` (relative to the run's directory, when it has one), else
    the run's directory (its workspace's), else the gateway's."""
    base = trio.Path(default) if default is not None else await trio.Path.cwd()
    if given is None:
        return base
    return base / await trio.Path(given).expanduser()  # an absolute one replaces the base


def _refusal(decision: str, ticket: Ticket) -> str:
    """Why a command was not run, in words the model can pass on to the user."""
    if decision == "timeout":
        return (
            f"nobody answered the approval request within {ticket.timeout_s:g} s. The owner "
            "approves commands as they are asked (exec.approval.resolve, or `aleph-trio chat`, "
            "which asks inline); ask the user to approve it and try again"
        )
    if decision == "policy-deny":
        return "the exec policy denies it (exec-approvals.toml)"
    if decision == "deny":
        return "the owner denied it"
    return f"it was {decision}"


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


@attrs.frozen
class MemorySearchTool:
    store: Store

    async def __call__(self, ctx: ToolContext, params: MemorySearchParams) -> str:
        hits = await self.store.search_memory(params.query, limit=params.limit)
        if not hits:
            return f"nothing stored matches {params.query!r}"
        return "\n".join(f"- {hit.item.content} (id {hit.item.id})" for hit in hits)


@attrs.frozen
class MemoryStoreParams:
    content: Annotated[str, Meta(min_length=1, max_length=100_000)]


@attrs.frozen
class MemoryStoreTool:
    store: Store

    async def __call__(self, ctx: ToolContext, params: MemoryStoreParams) -> str:
        content = params.content.strip()
        if not content:
            raise ToolFailed("there is nothing to remember in blank text")
        run = ctx.run
        item = await self.store.store_memory(
            content,
            source=run.session_key,
            metadata={"run_id": run.run_id, "agent_id": run.agent_id},
        )
        return f"remembered (id {item.id})"


def builtin_tools(
    *, approvals: Approvals, guard: ProcessGuard, store: Store, config: Callable[[], Config]
) -> list[AnyTool]:
    """The built-in tools, bound to the services they use."""
    return [
        Tool(
            "exec",
            "Run a shell command (sh -c) and get its exit code and output. Every command needs "
            "approval under the gateway's exec policy; a denied command is not run.",
            ExecParams,
            ExecTool(approvals, config, guard),
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
            MemorySearchTool(store),
        ),
        Tool(
            "memory_store",
            "Store a durable fact in long-term memory so later conversations can find it.",
            MemoryStoreParams,
            MemoryStoreTool(store),
        ),
    ]
