"""The agent loop of one run (PROTOCOL §7): prompt, model call, tools, repeat.

Each iteration builds the prompt from the store, streams one model call (publishing
``stream.chunk`` / ``stream.thinking`` as pieces arrive), stores the assistant message, and runs
the tool calls the model asked for (``stream.tool_start`` / ``stream.tool_end``), storing each
result. It stops when the model answers without tool calls and nobody sent more input, or
fails the run at ``runs.max_iterations`` or the token budget.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any, final

import attrs
import trio

from ..kernel import ErrorCode, RunsConfig, component_logger
from ..providers import (
    Finish,
    ModelRequest,
    ProviderError,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ..sessions import SessionService, estimate_tokens
from ..tools import ToolBox, ToolContext, ToolResult, parse_arguments
from ._live_run import LiveRun, utf8_size
from ._prompt import PromptBuilder, tool_call_json

__all__ = ["AgentLoop", "RunFailure"]

log = component_logger("runs")

#: First pause before retrying a model call that failed before any output; doubles each time.
RETRY_BACKOFF_S = 1.0
#: The longest ``Retry-After`` a run waits out; a provider asking for more fails the run.
MAX_RETRY_AFTER_S = 60.0


class RunFailure(Exception):
    """The run cannot go on; ``message`` and ``code`` go into ``agent.error``."""

    def __init__(self, message: str, code: int = ErrorCode.INTERNAL_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@attrs.define
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = attrs.Factory(list)


@attrs.frozen
class _ModelTurn:
    text: str
    calls: tuple[ToolCall, ...]
    tokens: int


@final
@attrs.frozen
class AgentLoop:
    """What the loop of every run uses: where messages are stored, the tools, the prompt."""

    sessions: SessionService
    tools: ToolBox
    prompts: PromptBuilder
    settings: Callable[[], RunsConfig]

    async def run(self, live: LiveRun) -> None:
        """Drive the run to its end; raises :class:`RunFailure` when it cannot get there."""
        await _run_agent(self, live)


async def _run_agent(loop: AgentLoop, live: LiveRun) -> None:
    sessions = loop.sessions
    key = live.session_key
    limits = loop.settings()
    with trio.CancelScope(shield=True):  # stored or not, never half-known
        await sessions.append(
            key, "user", live.message, run_id=live.run_id, owner_id=live.record.principal_id
        )
    tools = live.allowed(loop.tools.names(), loop.tools.opt_in())
    specs = loop.tools.specs(tools)
    reserved = sum(estimate_tokens(json.dumps(attrs.asdict(spec))) for spec in specs)
    while True:
        while live.inputs:
            with trio.CancelScope(shield=True):
                await sessions.append(
                    key,
                    "user",
                    live.next_input(),
                    run_id=live.run_id,
                    owner_id=live.record.principal_id,
                )
        if live.record.iterations >= limits.max_iterations:
            raise RunFailure(
                f"the run stopped after {limits.max_iterations} model calls (runs.max_iterations)"
            )
        messages = await loop.prompts.build(live.agent, key, live.model, reserved_tokens=reserved)
        request = ModelRequest(
            live.model.name,
            messages,
            tools=specs,
            thinking=live.thinking,  # type: ignore[arg-type]
            max_tokens=live.model.max_output_tokens,
        )
        live.count_call()
        turn = await _call_model(live, request, limits)
        live.count_tokens(turn.tokens)
        with trio.CancelScope(shield=True):
            if turn.text or turn.calls:
                await sessions.append(
                    key,
                    "assistant",
                    turn.text,
                    run_id=live.run_id,
                    tool_calls=[tool_call_json(c) for c in turn.calls] or None,
                )
            live.unsaved.clear()
            live.open_calls = [call.id for call in turn.calls]
            await live.manager.save(live.record)
        if live.record.tokens_used > limits.token_budget:
            raise RunFailure(
                f"the run used {live.record.tokens_used} tokens, over its budget of "
                f"{limits.token_budget} (runs.token_budget)"
            )
        if not turn.calls:
            if live.inputs:
                continue
            return
        for call in turn.calls:
            await _run_tool(loop, live, call)


async def _call_model(live: LiveRun, request: ModelRequest, limits: RunsConfig) -> _ModelTurn:
    """One model call, retried while it failed retryably before producing anything."""
    retries = limits.provider_retries
    attempt = 0
    while True:
        produced = live.received
        try:
            return await _stream(live, request, limits.max_text_bytes)
        except ProviderError as exc:
            nothing_shown = live.received == produced
            delay = RETRY_BACKOFF_S * 2**attempt
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            if exc.retryable and nothing_shown and attempt < retries:
                if delay > MAX_RETRY_AFTER_S:  # not worth holding the run (and its slot) for
                    raise RunFailure(
                        f"model {live.model.id}: {exc.message} "
                        f"(the provider asks to retry after {delay:g} s)",
                        ErrorCode.INTERNAL_ERROR,
                    ) from None
                log.warning("run %s: %s; retrying in %g s", live.run_id, exc.message, delay)
                attempt += 1
                await trio.sleep(delay)
                continue
            code = (
                ErrorCode.TIMEOUT_ERROR if "timed out" in exc.message else ErrorCode.INTERNAL_ERROR
            )
            raise RunFailure(f"model {live.model.id}: {exc.message}", code) from None


async def _stream(live: LiveRun, request: ModelRequest, max_text_bytes: int) -> _ModelTurn:
    """One model call, its text published as it comes; what the model wrote this turn is
    ``live.unsaved`` (the run's text that is not stored yet) once the stream has ended."""
    calls: dict[int, _CallParts] = {}
    usage: Usage | None = None
    async with contextlib.aclosing(live.provider.stream(request)) as batches:
        async for batch in batches:
            for delta in batch:
                if isinstance(delta, TextDelta):
                    if delta.text:
                        if live.text_bytes + utf8_size(delta.text) > max_text_bytes:
                            raise RunFailure(
                                f"the run's text passed {max_text_bytes} bytes "
                                "(runs.max_text_bytes)"
                            )
                        live.add_piece("stream.chunk", delta.text)
                elif isinstance(delta, ThinkingDelta):
                    if delta.text:
                        live.add_piece("stream.thinking", delta.text)
                elif isinstance(delta, ToolCallDelta):
                    parts = calls.setdefault(delta.index, _CallParts())
                    parts.id = parts.id or (delta.id or "")
                    parts.name = parts.name or (delta.name or "")
                    parts.arguments.append(delta.arguments)
                elif isinstance(delta, Usage):
                    usage = delta
                elif isinstance(delta, Finish) and delta.reason == "error":
                    raise ProviderError("the model stream ended with an error")
            live.flush_pieces()  # one event per batch: what arrived together leaves together
    answer = "".join(live.unsaved)
    tool_calls = tuple(
        ToolCall(parts.id or "call_" + uuid.uuid4().hex[:16], parts.name, "".join(parts.arguments))
        for _, parts in sorted(calls.items())
    )
    if usage is not None:
        tokens = usage.prompt_tokens + usage.completion_tokens
    else:  # the provider reported nothing: estimate
        written = answer + "".join(call.arguments for call in tool_calls)
        tokens = sum(estimate_tokens(m.content) for m in request.messages)
        tokens += estimate_tokens(written)
    return _ModelTurn(answer, tool_calls, tokens)


async def _run_tool(loop: AgentLoop, live: LiveRun, call: ToolCall) -> None:
    arguments = parse_arguments(call.arguments)
    shown: Any = arguments if isinstance(arguments, dict) else call.arguments
    live.emit("stream.tool_start", {"tool_call_id": call.id, "tool": call.name, "input": shown})
    started = trio.current_time()
    live.running_tool = (call.id, call.name, started)
    opt_in = loop.tools.opt_in()
    tool = loop.tools.get(call.name) if live.may_use(call.name, opt_in) else None
    if tool is None:
        allowed = ", ".join(live.allowed(loop.tools.names(), opt_in)) or "none"
        result = ToolResult(f"unknown tool {call.name!r}; this run may use: {allowed}", True)
    elif isinstance(arguments, str):
        result = ToolResult(f"{call.name}: {arguments}", is_error=True)
    else:
        try:
            result = await tool.call(ToolContext(live), arguments)
        except Exception as exc:  # a bug in a tool is the model's error result, not a crash
            log.exception("tool %s failed in run %s", call.name, live.run_id)
            result = ToolResult(f"{call.name} failed: {type(exc).__name__}: {exc}", True)
    duration_ms = round((trio.current_time() - started) * 1000)
    content = f"Error: {result.output}" if result.is_error else result.output
    with trio.CancelScope(shield=True):
        await loop.sessions.append(
            live.session_key, "tool", content, run_id=live.run_id, tool_call_id=call.id
        )
        if call.id in live.open_calls:
            live.open_calls.remove(call.id)
    live.running_tool = None
    live.emit(
        "stream.tool_end",
        {
            "tool_call_id": call.id,
            "tool": call.name,
            "output": result.output,
            "is_error": result.is_error,
            "duration_ms": duration_ms,
        },
    )
