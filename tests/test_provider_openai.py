"""The OpenAI-compatible provider against a real HTTP server on loopback."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from aleph_trio.providers import (
    ChatMessage,
    Finish,
    ModelRequest,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from aleph_trio.providers._errors import ProviderError
from aleph_trio.providers._openai import OpenAIProvider
from llmserver import DROP, LLMServer, Reply, all_deltas, serve_llm, sse

KEY = "sk-test-secret-123"


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


@pytest.fixture
async def provider(llm: LLMServer) -> AsyncIterator[OpenAIProvider]:
    async with httpx.AsyncClient() as http:
        yield OpenAIProvider(
            "local", base_url=llm.base_url, api_key=KEY, models=[], http=http, timeout_s=2.0
        )


def request(text: str = "hi", **kw: object) -> ModelRequest:
    return ModelRequest("llama3", (ChatMessage("user", text),), **kw)  # type: ignore[arg-type]


async def run(provider: OpenAIProvider, req: ModelRequest | None = None) -> list[object]:
    return await all_deltas(provider, req or request())


def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def test_text_thinking_and_usage(llm: LLMServer, provider: OpenAIProvider) -> None:
    llm.script.append(
        Reply(
            parts=sse(
                chunk({"role": "assistant", "reasoning_content": "hmm"}),
                chunk({"content": "Hel"}),
                chunk({"content": "lo"}, "stop"),
                {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}},
            )
        )
    )
    tools = (ToolSpec("exec", "run a command", {"type": "object", "properties": {}}),)
    history = (
        ChatMessage("user", "run ls"),
        ChatMessage("assistant", "", (ToolCall("call_1", "exec", '{"command":"ls"}'),)),
        ChatMessage("tool", "a b", tool_call_id="call_1"),
    )
    deltas = await run(provider, ModelRequest("llama3", history, tools, "high", 100))
    assert deltas == [
        ThinkingDelta("hmm"),
        TextDelta("Hello"),
        Finish("stop"),
        Usage(12, 3),
    ]
    sent = llm.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["model"] == "llama3" and sent.body["max_tokens"] == 100
    assert sent.body["reasoning_effort"] == "high"
    assert sent.body["tools"][0]["function"]["name"] == "exec"
    assert sent.body["messages"][1]["tool_calls"][0]["function"] == {
        "name": "exec",
        "arguments": '{"command":"ls"}',
    }
    assert sent.body["messages"][2] == {"role": "tool", "content": "a b", "tool_call_id": "call_1"}


async def test_tool_calls_split_across_chunks(llm: LLMServer, provider: OpenAIProvider) -> None:
    llm.script.append(
        Reply(
            parts=sse(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c0",
                                "type": "function",
                                "function": {"name": "exec", "arguments": ""},
                            }
                        ]
                    }
                ),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"comm'}}]}),
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "memory_search", "arguments": '{"query"'},
                            }
                        ]
                    }
                ),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'and": "ls"}'}}]}),
                chunk(
                    {"tool_calls": [{"index": 1, "function": {"arguments": ': "x"}'}}]},
                    "tool_calls",
                ),
            )
        )
    )
    deltas = await run(provider)
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        if isinstance(d, ToolCallDelta):
            entry = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = d.id or entry["id"]
            entry["name"] = d.name or entry["name"]
            entry["arguments"] += d.arguments
    assert calls[0]["name"] == "exec" and json.loads(calls[0]["arguments"]) == {"command": "ls"}
    assert calls[1]["id"] == "c1" and json.loads(calls[1]["arguments"]) == {"query": "x"}
    assert deltas[-1] == Finish("tool_calls")


async def test_pieces_arrive_as_they_are_sent(llm: LLMServer, provider: OpenAIProvider) -> None:
    """One SSE event split over several writes, with pauses, still parses."""
    event = f"data: {json.dumps(chunk({'content': 'slow'}, 'stop'))}\n\n"
    llm.script.append(
        Reply(parts=[event[:7], 0.05, event[7:20], 0.05, event[20:], "data: [DONE]\n\n"])
    )
    assert await run(provider) == [TextDelta("slow"), Finish("stop")]


@pytest.mark.parametrize(
    ("status", "body", "retryable", "words"),
    [
        (429, '{"error": {"message": "rate limit reached"}}', True, "HTTP 429: rate limit reached"),
        (500, "upstream exploded", True, "HTTP 500: upstream exploded"),
        (401, '{"error": {"message": "bad key"}}', False, "HTTP 401: bad key"),
    ],
)
async def test_http_errors(
    llm: LLMServer, provider: OpenAIProvider, status: int, body: str, retryable: bool, words: str
) -> None:
    llm.script.append(Reply(status, [body], "application/json"))
    with pytest.raises(ProviderError) as info:
        await run(provider)
    assert words in info.value.message
    assert info.value.status == status and info.value.retryable is retryable
    assert KEY not in info.value.message


async def test_mid_stream_disconnect(llm: LLMServer, provider: OpenAIProvider) -> None:
    llm.script.append(Reply(parts=[*sse(chunk({"content": "partial"}), done=False), DROP]))
    got: list[object] = []

    async def consume() -> None:
        async with contextlib.aclosing(provider.stream(request())) as deltas:
            async for batch in deltas:
                got.extend(batch)

    with pytest.raises(ProviderError, match=r"without finishing|dropped the connection"):
        await consume()
    assert got == [TextDelta("partial")]


async def test_malformed_chunk(llm: LLMServer, provider: OpenAIProvider) -> None:
    llm.script.append(Reply(parts=["data: {not json\n\n"]))
    with pytest.raises(ProviderError, match="malformed"):
        await run(provider)


async def test_connection_refused(provider: OpenAIProvider) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        async with httpx.AsyncClient() as http:
            dead = OpenAIProvider(
                "local", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, models=[], http=http
            )
            with pytest.raises(ProviderError, match="could not be reached") as info:
                await run(dead)
    assert info.value.retryable and KEY not in str(info.value)


async def test_slow_stream_times_out(llm: LLMServer, provider: OpenAIProvider) -> None:
    llm.script.append(Reply(parts=[*sse(chunk({"content": "a"}), done=False), 5.0]))
    with pytest.raises(ProviderError, match="timed out"):
        await run(provider)


async def test_cancelling_closes_the_request(llm: LLMServer, provider: OpenAIProvider) -> None:
    llm.script.append(Reply(parts=[*sse(chunk({"content": "a"}), done=False), 30.0]))
    with trio.move_on_after(0.3):
        await run(provider)
    with trio.fail_after(5):
        await llm.wait_all_closed()
    assert llm.open_connections == 0


async def test_sse_lines_split_anywhere_across_reads(
    llm: LLMServer, provider: OpenAIProvider
) -> None:
    """CRLF, CR and LF line ends, with reads splitting lines, CRLF pairs and UTF-8 characters."""
    body = (
        'data: {"choices":[{"index":0,"delta":{"content":"Grüße"}}]}\r\n\r\n'
        'data: {"choices":[{"index":0,"delta":{"content":" ok"},"finish_reason":"stop"}]}\r\r'
        "data: [DONE]\n\n"
    ).encode()
    cuts = [3, 30, 38, 39, 40, 66, 67, 68, 69, 140, 141, len(body)]
    parts = [body[a:b] for a, b in zip([0, *cuts], cuts, strict=False)]
    llm.script.append(Reply(parts=[p for part in parts for p in (part, 0.001)]))
    deltas = await run(provider)
    assert [d for d in deltas if isinstance(d, TextDelta)] == [TextDelta("Grüße ok")]
    assert Finish("stop") in deltas
