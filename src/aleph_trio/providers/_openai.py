"""Any OpenAI-compatible ``/chat/completions`` endpoint, streamed (vLLM, llama.cpp, LM Studio…).

Sends ``stream: true`` with ``stream_options.include_usage`` and turns the server-sent events into
deltas: text, ``reasoning_content`` as thinking, tool calls piece by piece (several per turn,
arguments split across chunks), usage from the final chunk. Every failure — HTTP status, refused
connection, timeout, a malformed stream — becomes a :class:`ProviderError` whose message names
the provider and never the key.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any, final

import httpx
import msgspec

from ._errors import ProviderError
from ._http import Endpoint, error_detail, function_tools, sse_data
from ._types import (
    ChatMessage,
    Delta,
    Finish,
    ModelInfo,
    ModelRequest,
    TextDelta,
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

    async def stream(self, request: ModelRequest) -> AsyncGenerator[Delta, None]:
        headers = {"accept": "text/event-stream"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        where = self._endpoint.where
        finished = False
        async with (
            self._endpoint.post(self._body(request), headers) as response,
            contextlib.aclosing(sse_data(response)) as events,
        ):
            async for data in events:
                if data.strip() == "[DONE]":
                    if not finished:
                        finished = True
                        yield Finish("stop")
                    break
                for delta in _chunk_deltas(data, where):
                    if isinstance(delta, Finish):
                        finished = True
                    yield delta
        if not finished:
            raise ProviderError(
                f"{where} ended the stream without finishing the answer", retryable=True
            )


#: Chunks are decoded with msgspec: several times faster than json, and a stream is many chunks.
_decode = msgspec.json.Decoder().decode


def _chunk_deltas(data: str, where: str) -> list[Delta]:
    try:
        chunk = _decode(data)
    except msgspec.DecodeError:
        raise ProviderError(f"{where} sent a malformed stream chunk") from None
    if not isinstance(chunk, dict):
        raise ProviderError(f"{where} sent a malformed stream chunk")
    if isinstance(chunk.get("error"), dict | str):
        message = error_detail(data.encode())
        raise ProviderError(f"{where} reported an error mid-stream: {message}", retryable=True)
    out: list[Delta] = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(ThinkingDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(TextDelta(content))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            out.append(
                ToolCallDelta(
                    index=int(call.get("index", 0)),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                )
            )
        reason = choice.get("finish_reason")
        if reason:
            out.append(Finish(_FINISH.get(reason, "stop")))  # type: ignore[arg-type]
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        out.append(
            Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        )
    return out
