"""Anthropic's ``/v1/messages``, streamed: text, thinking and tool_use blocks, usage.

Tool-use input arrives as ``input_json_delta`` pieces; each tool_use block becomes one tool call
(numbered among the turn's tool calls, not among all content blocks).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, final

import attrs
import httpx
import msgspec

from ._errors import ProviderError
from ._http import Endpoint, sse_data, tool_arguments
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

__all__ = ["AnthropicProvider", "anthropic_messages"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}


def anthropic_messages(messages: tuple[ChatMessage, ...]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) in Anthropic's shape; tool results travel as user turns."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if m.role == "assistant" and m.tool_calls:
            content: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            for call in m.tool_calls:
                arguments = tool_arguments(call.arguments)
                content.append(
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}
                )
            out.append({"role": "assistant", "content": content})
            continue
        out.append({"role": m.role, "content": m.content})
    return system, out


_decode = msgspec.json.Decoder().decode


@final
class AnthropicProvider:
    def __init__(
        self,
        name: str,
        *,
        base_url: str | None,
        api_key: str | None,
        models: list[ModelInfo],
        http: httpx.AsyncClient,
        timeout_s: float = 120.0,
    ) -> None:
        self.name = name
        root = (base_url or "https://api.anthropic.com").rstrip("/")
        self._endpoint = Endpoint(
            name, root + ("/messages" if root.endswith("/v1") else "/v1/messages"), http, timeout_s
        )
        self._api_key = api_key
        self._models = models

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        system, messages = anthropic_messages(request.messages)
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True}
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if request.thinking != "off":
            budget = _BUDGET[request.thinking]
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            max_tokens = max(max_tokens, budget + 1024)
        body["max_tokens"] = max_tokens
        return body

    def stream(self, request: ModelRequest) -> AsyncGenerator[list[Delta], None]:
        headers = {"anthropic-version": API_VERSION, "accept": "text/event-stream"}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        where = self._endpoint.where
        return self._endpoint.answer(self._body(request), headers, sse_data, _StreamState(where))


@attrs.define
class _StreamState:
    """What one answer's events have said so far."""

    where: str
    tool_index: dict[int, int] = attrs.Factory(dict)  #: content block index -> tool call number
    prompt_tokens: int = 0
    output_tokens: int = 0
    stop: str | None = None
    finished: bool = False  #: ``message_stop`` has come

    def read(self, data: bytes, out: list[Delta | str]) -> bool:
        """Append what one event says to ``out`` (text as a bare string); true once stopped."""
        try:
            event = _decode(data)
        except msgspec.DecodeError:
            raise ProviderError(f"{self.where} sent a malformed stream event") from None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                out.append(str(delta["text"]))
            elif dtype == "thinking_delta" and delta.get("thinking"):
                out.append(ThinkingDelta(delta["thinking"]))
            elif dtype == "input_json_delta":
                owner = self.tool_index.get(int(event.get("index", 0)))
                if owner is None:
                    raise ProviderError(f"{self.where} sent tool input for no tool call")
                out.append(ToolCallDelta(owner, arguments=delta.get("partial_json") or ""))
        elif kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self.prompt_tokens = int(usage.get("input_tokens") or 0)
            self.output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                number = self.tool_index[int(event.get("index", 0))] = len(self.tool_index)
                out.append(ToolCallDelta(number, id=block.get("id"), name=block.get("name")))
        elif kind == "message_delta":
            self.stop = (event.get("delta") or {}).get("stop_reason") or self.stop
            usage = event.get("usage") or {}
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
        elif kind == "message_stop":
            out.append(Usage(self.prompt_tokens, self.output_tokens))
            out.append(Finish(_STOP.get(self.stop or "end_turn", "stop")))  # type: ignore[arg-type]
            self.finished = True
            return True
        elif kind == "error":
            error = event.get("error") or {}
            message = error.get("message") or error.get("type") or "unknown error"
            raise ProviderError(
                f"{self.where} reported an error mid-stream: {message}", retryable=True
            )
        return False
