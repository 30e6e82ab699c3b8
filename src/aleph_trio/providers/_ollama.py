"""Ollama's ``/api/chat``, streamed as one JSON object per line, with tools and thinking."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, final

import attrs
import httpx

from ._errors import ProviderError
from ._http import Endpoint, function_tools, ndjson_lines, tool_arguments
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

__all__ = ["OllamaProvider", "ollama_messages"]

_DONE = {"stop": "stop", "length": "length"}


def ollama_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            calls = []
            for call in m.tool_calls:
                arguments = tool_arguments(call.arguments)
                calls.append({"function": {"name": call.name, "arguments": arguments}})
            item["tool_calls"] = calls
        out.append(item)
    return out


@final
class OllamaProvider:
    def __init__(
        self,
        name: str,
        *,
        base_url: str | None,
        models: list[ModelInfo],
        http: httpx.AsyncClient,
        timeout_s: float = 300.0,
    ) -> None:
        self.name = name
        self._endpoint = Endpoint(
            name, (base_url or "http://127.0.0.1:11434").rstrip("/") + "/api/chat", http, timeout_s
        )
        self._models = models

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": ollama_messages(request.messages),
            "stream": True,
        }
        if request.tools:
            body["tools"] = function_tools(request.tools)
        if request.thinking != "off":
            body["think"] = True
        if request.max_tokens is not None:
            body["options"] = {"num_predict": request.max_tokens}
        return body

    def stream(self, request: ModelRequest) -> AsyncGenerator[list[Delta], None]:
        where = self._endpoint.where
        return self._endpoint.answer(
            self._body(request),
            {},
            lambda response: ndjson_lines(response, where),
            _StreamState(where),
        )


@attrs.define
class _StreamState:
    """What one answer's lines have said so far."""

    where: str
    calls: int = 0  #: tool calls so far; each arrives whole, numbered in order
    finished: bool = False  #: the ``done`` line has come

    def read(self, line: dict[str, Any], out: list[Delta | str]) -> bool:
        """Append what one line says to ``out`` (text as a bare string); true once done."""
        if isinstance(line.get("error"), str):
            message = line["error"][:200]
            raise ProviderError(f"{self.where} reported an error mid-stream: {message}")
        message = line.get("message") or {}
        if message.get("thinking"):
            out.append(ThinkingDelta(str(message["thinking"])))
        if message.get("content"):
            out.append(str(message["content"]))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            encoded = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
            number = self.calls
            self.calls += 1
            out.append(
                ToolCallDelta(
                    number, id=f"call_{number}", name=function.get("name"), arguments=encoded
                )
            )
        if not line.get("done"):
            return False
        if "prompt_eval_count" in line or "eval_count" in line:
            out.append(
                Usage(int(line.get("prompt_eval_count") or 0), int(line.get("eval_count") or 0))
            )
        reason = "tool_calls" if self.calls else _DONE.get(str(line.get("done_reason")), "stop")
        out.append(Finish(reason))  # type: ignore[arg-type]
        self.finished = True
        return True
