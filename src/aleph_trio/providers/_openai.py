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
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, final

import httpx

from ._errors import ProviderError
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


async def sse_data(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event, multi-line data joined with newlines."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


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
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._models = models
        self._http = http
        self._timeout = httpx.Timeout(timeout_s, connect=10.0)

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
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.thinking != "off":
            body["reasoning_effort"] = _EFFORT[request.thinking]
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[Delta]:
        headers = {"accept": "text/event-stream"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        where = f"provider {self.name!r}"
        finished = False
        try:
            async with self._http.stream(
                "POST", self._url, json=self._body(request), headers=headers, timeout=self._timeout
            ) as response:
                if response.status_code >= 400:
                    detail = _error_detail(await response.aread())
                    suffix = f": {detail}" if detail else ""
                    raise ProviderError(
                        f"{where} answered HTTP {response.status_code}{suffix}",
                        status=response.status_code,
                        retryable=response.status_code in (408, 409, 429)
                        or response.status_code >= 500,
                    )
                async with contextlib.aclosing(sse_data(response)) as events:
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
        except httpx.TimeoutException:
            raise ProviderError(f"{where} timed out", retryable=True) from None
        except httpx.ConnectError as exc:
            raise ProviderError(
                f"{where} could not be reached ({_reason(exc)})", retryable=True
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise ProviderError(
                f"{where} dropped the connection mid-answer ({_reason(exc)})", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"{where} failed: {type(exc).__name__}") from None
        if not finished:
            raise ProviderError(
                f"{where} ended the stream without finishing the answer", retryable=True
            )


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text[:200] if text else type(exc).__name__


def _error_detail(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:200]
    if isinstance(error, str):
        return error[:200]
    return ""


def _chunk_deltas(data: str, where: str) -> list[Delta]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ProviderError(f"{where} sent a malformed stream chunk") from None
    if not isinstance(chunk, dict):
        raise ProviderError(f"{where} sent a malformed stream chunk")
    if isinstance(chunk.get("error"), dict | str):
        message = _error_detail(data.encode())
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
