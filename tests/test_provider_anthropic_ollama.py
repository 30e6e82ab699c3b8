"""The Anthropic and Ollama providers against a real HTTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

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
from aleph_trio.providers._anthropic import AnthropicProvider
from aleph_trio.providers._errors import ProviderError
from aleph_trio.providers._ollama import OllamaProvider
from llmserver import DROP, LLMServer, Reply, all_deltas, serve_llm

KEY = "sk-ant-secret-456"
TOOLS = (ToolSpec("exec", "run a command", {"type": "object"}),)


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def run(provider: AnthropicProvider | OllamaProvider, request: ModelRequest) -> list[object]:
    return await all_deltas(provider, request)


def events(*docs: dict[str, object]) -> list[str]:
    return [f"event: {d['type']}\ndata: {json.dumps(d)}\n\n" for d in docs]


def tool_args(deltas: list[object]) -> dict[int, tuple[str | None, str]]:
    calls: dict[int, tuple[str | None, str]] = {}
    for d in deltas:
        if isinstance(d, ToolCallDelta):
            name, args = calls.get(d.index, (None, ""))
            calls[d.index] = (d.name or name, args + d.arguments)
    return calls


# -- Anthropic -----------------------------------------------------------------------------------


async def test_anthropic_text_thinking_tools_usage(llm: LLMServer, http: httpx.AsyncClient) -> None:
    llm.script.append(
        Reply(
            parts=events(
                {
                    "type": "message_start",
                    "message": {"usage": {"input_tokens": 20, "output_tokens": 1}},
                },
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "let me see"},
                },
                {"type": "content_block_stop", "index": 0},
                {"type": "ping"},
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "text", "text": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "text_delta", "text": "Running it."},
                },
                {
                    "type": "content_block_start",
                    "index": 2,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "exec",
                        "input": {},
                    },
                },
                {
                    "type": "content_block_delta",
                    "index": 2,
                    "delta": {"type": "input_json_delta", "partial_json": '{"comm'},
                },
                {
                    "type": "content_block_delta",
                    "index": 2,
                    "delta": {"type": "input_json_delta", "partial_json": 'and": "ls"}'},
                },
                {
                    "type": "content_block_start",
                    "index": 3,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "exec",
                        "input": {},
                    },
                },
                {
                    "type": "content_block_delta",
                    "index": 3,
                    "delta": {"type": "input_json_delta", "partial_json": '{"command": "pwd"}'},
                },
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use"},
                    "usage": {"output_tokens": 42},
                },
                {"type": "message_stop"},
            )
        )
    )
    provider = AnthropicProvider(
        "claude", base_url=f"http://127.0.0.1:{llm.port}", api_key=KEY, models=[], http=http
    )
    history = (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "list files"),
        ChatMessage("assistant", "", (ToolCall("toolu_0", "exec", '{"command":"ls"}'),)),
        ChatMessage("tool", "a b", tool_call_id="toolu_0"),
    )
    deltas = await run(provider, ModelRequest("sonnet", history, TOOLS, "low"))
    assert [d for d in deltas if isinstance(d, ThinkingDelta | TextDelta)] == [
        ThinkingDelta("let me see"),
        TextDelta("Running it."),
    ]
    calls = tool_args(deltas)
    assert calls[0] == ("exec", '{"command": "ls"}') and calls[1] == ("exec", '{"command": "pwd"}')
    assert deltas[-2:] == [Usage(20, 42), Finish("tool_calls")]
    sent = llm.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["system"] == "Be brief."
    assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent.body["max_tokens"] > 2048
    assert sent.body["tools"] == [
        {"name": "exec", "description": "run a command", "input_schema": {"type": "object"}}
    ]
    assert sent.body["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_0",
        "name": "exec",
        "input": {"command": "ls"},
    }
    assert sent.body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "a b"}],
    }


async def test_anthropic_errors(llm: LLMServer, http: httpx.AsyncClient) -> None:
    provider = AnthropicProvider(
        "claude", base_url=f"http://127.0.0.1:{llm.port}/v1", api_key=KEY, models=[], http=http
    )
    request = ModelRequest("sonnet", (ChatMessage("user", "hi"),))
    llm.script.append(
        Reply(
            529,
            ['{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'],
            "application/json",
        )
    )
    with pytest.raises(ProviderError, match="HTTP 529: Overloaded") as info:
        await run(provider, request)
    assert info.value.retryable and KEY not in str(info.value)
    llm.script.append(
        Reply(parts=events({"type": "error", "error": {"type": "api_error", "message": "boom"}}))
    )
    with pytest.raises(ProviderError, match="mid-stream: boom"):
        await run(provider, request)
    llm.script.append(
        Reply(parts=[*events({"type": "message_start", "message": {"usage": {}}}), DROP])
    )
    with pytest.raises(ProviderError, match="without finishing"):
        await run(provider, request)
    assert llm.requests[0].path == "/v1/messages"


# -- Ollama --------------------------------------------------------------------------------------


def lines(*docs: dict[str, object]) -> list[str]:
    return [json.dumps(d) + "\n" for d in docs]


async def test_ollama_stream_tools_usage(llm: LLMServer, http: httpx.AsyncClient) -> None:
    llm.script.append(
        Reply(
            content_type="application/x-ndjson",
            parts=lines(
                {"message": {"role": "assistant", "thinking": "hmm"}, "done": False},
                {"message": {"role": "assistant", "content": "Hel"}, "done": False},
                {"message": {"role": "assistant", "content": "lo"}, "done": False},
                {
                    "message": {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"function": {"name": "exec", "arguments": {"command": "ls"}}},
                            {"function": {"name": "exec", "arguments": {"command": "pwd"}}},
                        ],
                    },
                    "done": False,
                },
                {
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": 9,
                    "eval_count": 7,
                },
            ),
        )
    )
    provider = OllamaProvider(
        "local", base_url=f"http://127.0.0.1:{llm.port}", models=[], http=http
    )
    deltas = await run(
        provider, ModelRequest("llama3", (ChatMessage("user", "hi"),), TOOLS, "medium", 50)
    )
    assert [d for d in deltas if isinstance(d, ThinkingDelta | TextDelta)] == [
        ThinkingDelta("hmm"),
        TextDelta("Hello"),
    ]
    calls = tool_args(deltas)
    assert {i: (n, json.loads(a)) for i, (n, a) in calls.items()} == {
        0: ("exec", {"command": "ls"}),
        1: ("exec", {"command": "pwd"}),
    }
    assert deltas[-2:] == [Usage(9, 7), Finish("tool_calls")]
    sent = llm.requests[0]
    assert sent.path == "/api/chat"
    assert sent.body["stream"] is True and sent.body["think"] is True
    assert sent.body["options"] == {"num_predict": 50}
    assert sent.body["tools"][0]["function"]["name"] == "exec"


async def test_ollama_errors(llm: LLMServer, http: httpx.AsyncClient) -> None:
    provider = OllamaProvider(
        "local", base_url=f"http://127.0.0.1:{llm.port}", models=[], http=http
    )
    request = ModelRequest("llama3", (ChatMessage("user", "hi"),))
    llm.script.append(Reply(404, ['{"error": "model \\"llama3\\" not found"}'], "application/json"))
    with pytest.raises(ProviderError, match='HTTP 404: model "llama3" not found'):
        await run(provider, request)
    llm.script.append(
        Reply(parts=['{"error": "out of memory"}\n'], content_type="application/x-ndjson")
    )
    with pytest.raises(ProviderError, match="out of memory"):
        await run(provider, request)
    llm.script.append(Reply(parts=["{broken\n"], content_type="application/x-ndjson"))
    with pytest.raises(ProviderError, match="malformed"):
        await run(provider, request)
    llm.script.append(
        Reply(
            parts=[*lines({"message": {"content": "part"}, "done": False}), DROP],
            content_type="application/x-ndjson",
        )
    )
    with pytest.raises(ProviderError, match="without finishing"):
        await run(provider, request)
