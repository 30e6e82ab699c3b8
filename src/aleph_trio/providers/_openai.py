"""Any OpenAI-compatible ``/chat/completions`` endpoint, streamed (vLLM, llama.cpp, LM Studio…).

Sends ``stream: true`` with ``stream_options.include_usage`` and turns the server-sent events into
deltas: text, ``reasoning_content`` as thinking, tool calls piece by piece (several per turn,
arguments split across chunks), usage from the final chunk. Every failure — HTTP status, refused
connection, timeout, a malformed stream — becomes a :class:`ProviderError` whose message names
the provider and never the key.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any, final

import httpx
import msgspec

from ._errors import ProviderError
from ._http import Endpoint, drain, error_detail, function_tools, joined_text, sse_data
from ._types import (
    ChatMessage,
    Delta,
    Finish,
    ModelInfo,
    ModelRequest,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["OpenAIProvider", "openai_messages"]

_EFFORT = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_FINISH = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
}


def openai_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id is not None:
            item["tool_call_id"] = m.tool_call_id
        out.append(item)
    return out


@final
class OpenAIProvider:
    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None,
        models: list[ModelInfo],
        http: httpx.AsyncClient,
        timeout_s: float = 120.0,
    ) -> None:
        self.name = name
        self._endpoint = Endpoint(name, base_url.rstrip("/") + "/chat/completions", http, timeout_s)
        self._api_key = api_key
        self._models = models

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": openai_messages(request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = function_tools(request.tools)
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.thinking != "off":
            body["reasoning_effort"] = _EFFORT[request.thinking]
        return body

    async def stream(self, request: ModelRequest) -> AsyncGenerator[list[Delta], None]:
        headers = {"accept": "text/event-stream"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        where = self._endpoint.where
        finished = False
        async with (
            self._endpoint.post(self._body(request), headers) as response,
            contextlib.aclosing(sse_data(response)) as events,
        ):
            async for batch in events:
                out: list[Delta | str] = []  # text as bare strings, joined per read below
                done = False
                try:
                    for data in batch:
                        if not data.startswith(b"{") and data.strip() == b"[DONE]":
                            done = True
                            break
                        finished = _chunk_deltas(data, where, out) or finished
                except ProviderError:
                    if out:  # what came before the failure is shown first
                        yield joined_text(out)
                    raise
                if done and not finished:
                    finished = True
                    out.append(Finish("stop"))
                if out:
                    yield joined_text(out)
                if done:
                    await drain(events)
                    break
        if not finished:
            raise ProviderError(
                f"{where} ended the stream without finishing the answer", retryable=True
            )


# What a streamed chunk holds, as far as the gateway reads it; msgspec skips every other field
# (``id``, ``model``, ``logprobs``…) without building it. Fields whose type servers disagree on
# are ``Any`` and checked when read, so an odd value is ignored rather than failing the stream.


class _Function(msgspec.Struct):
    name: Any = None
    arguments: Any = None


class _Call(msgspec.Struct):
    index: int = 0
    id: Any = None
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: Any = None
    reasoning_content: Any = None
    reasoning: Any = None
    tool_calls: list[_Call] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: Any = None


class _Usage(msgspec.Struct):
    prompt_tokens: Any = None
    completion_tokens: Any = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: Any = None


_decode = msgspec.json.Decoder(_Chunk).decode


def _chunk_deltas(data: bytes, where: str, out: list[Delta | str]) -> bool:
    """Append what one chunk says to ``out`` (its text as a bare string); true when it
    finished the answer."""
    try:
        chunk = _decode(data)
    except msgspec.DecodeError:
        raise ProviderError(f"{where} sent a malformed stream chunk") from None
    if isinstance(chunk.error, dict | str):
        message = error_detail(data)
        raise ProviderError(f"{where} reported an error mid-stream: {message}", retryable=True)
    finished = False
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta is not None:
            reasoning = delta.reasoning_content or delta.reasoning
            if isinstance(reasoning, str) and reasoning:
                out.append(ThinkingDelta(reasoning))
            content = delta.content
            if content.__class__ is str and content:
                out.append(content)
            for call in delta.tool_calls or ():
                function = call.function or _NO_FUNCTION
                arguments = function.arguments
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments) if isinstance(arguments, dict) else ""
                out.append(
                    ToolCallDelta(
                        index=call.index,
                        id=call.id if isinstance(call.id, str) else None,
                        name=function.name if isinstance(function.name, str) else None,
                        arguments=arguments,
                    )
                )
        reason = choice.finish_reason
        if isinstance(reason, str) and reason:
            out.append(Finish(_FINISH.get(reason, "stop")))  # type: ignore[arg-type]
            finished = True
    usage = chunk.usage
    if usage is not None:
        out.append(Usage(_count(usage.prompt_tokens), _count(usage.completion_tokens)))
    return finished


_NO_FUNCTION = _Function()


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
