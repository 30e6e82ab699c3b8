"""The built-in offline model and the model catalogue (PROTOCOL §14)."""

from __future__ import annotations

import json

import pytest
import trio

from aleph_trio import Client, Config
from aleph_trio.kernel import ProviderConfig
from aleph_trio.protocol import AlephError
from aleph_trio.providers import (
    HELP_TEXT,
    BuiltinProvider,
    ChatMessage,
    Finish,
    ModelRequest,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolSpec,
    Usage,
)

TOOLS = tuple(
    ToolSpec(name, f"the {name} tool", {"type": "object"})
    for name in ("exec", "ask_user", "memory_store", "memory_search")
)


async def collect(
    text: str, *, tools: tuple[ToolSpec, ...] = TOOLS, thinking: str = "off", role: str = "user"
) -> list[object]:
    request = ModelRequest("offline", (ChatMessage(role, text),), tools, thinking)  # type: ignore[arg-type]
    return [delta async for batch in BuiltinProvider().stream(request) for delta in batch]


def text_of(deltas: list[object]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


async def test_echo_streams_word_by_word() -> None:
    deltas = await collect("echo: hello there  world")
    assert text_of(deltas) == "hello there  world"
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["hello ", "there  ", "world"]
    assert isinstance(deltas[-1], Finish) and deltas[-1].reason == "stop"
    usage = [d for d in deltas if isinstance(d, Usage)]
    assert len(usage) == 1 and usage[0].completion_tokens > 0


async def test_count_is_deterministic() -> None:
    assert text_of(await collect("please count to 5")) == "1 2 3 4 5"
    assert text_of(await collect("please count to 5")) == text_of(
        await collect("please count to 5")
    )


@pytest.mark.parametrize(
    ("message", "tool", "arguments"),
    [
        ("run `ls -la /tmp`", "exec", {"command": "ls -la /tmp"}),
        ("run echo hi", "exec", {"command": "echo hi"}),
        ("Ask me which colour you like?", "ask_user", {"question": "which colour you like?"}),
        (
            "remember that the door code is 1234",
            "memory_store",
            {"content": "the door code is 1234"},
        ),
        ("recall door code", "memory_search", {"query": "door code"}),
    ],
)
async def test_directives_call_tools_with_split_arguments(
    message: str, tool: str, arguments: dict[str, str]
) -> None:
    deltas = await collect(message)
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert calls[0].name == tool and calls[0].id
    assert len(calls) > 2  # the arguments arrive in pieces
    assert json.loads("".join(c.arguments for c in calls)) == arguments
    assert isinstance(deltas[-1], Finish) and deltas[-1].reason == "tool_calls"


async def test_tool_not_offered_is_explained() -> None:
    text = text_of(await collect("run rm -rf /", tools=()))
    assert "exec tool" in text and "offline built-in model" in text


async def test_says_what_it_is_when_it_cannot_help() -> None:
    assert text_of(await collect("What is the capital of France?")) == HELP_TEXT
    assert "offline built-in model" in HELP_TEXT


async def test_reports_tool_results() -> None:
    assert (
        text_of(await collect("exit 0, stdout: hi", role="tool"))
        == "The tool returned: exit 0, stdout: hi"
    )


async def test_thinking_comes_first_when_on() -> None:
    deltas = await collect("echo: x", thinking="low")
    kinds = [type(d) for d in deltas]
    assert kinds[0] is ThinkingDelta
    assert kinds.index(TextDelta) > max(i for i, k in enumerate(kinds) if k is ThinkingDelta)
    assert not any(isinstance(d, ThinkingDelta) for d in await collect("echo: x"))


async def test_long_answer_streams_slowly(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    deltas = await collect("give me a long answer")
    assert len([d for d in deltas if isinstance(d, TextDelta)]) == 120
    assert trio.current_time() - start >= 5


async def test_models_list_default_is_builtin(client: Client) -> None:
    models = (await client.call("models.list"))["models"]
    assert models == [
        {
            "id": "builtin/offline",
            "provider": "builtin",
            "name": "offline",
            "context_window": 32768,
            "capabilities": {
                "streaming": True,
                "tools": True,
                "thinking": True,
                "vision": False,
                "context_window": 32768,
                "max_output_tokens": 4096,
            },
        }
    ]


@pytest.mark.parametrize(
    "config",
    [
        Config(
            providers={
                "local": ProviderConfig(
                    kind="openai", base_url="http://127.0.0.1:1/v1", models=("llama3", "qwen")
                ),
                "claude": ProviderConfig(kind="anthropic", models=("sonnet",)),
                "other": ProviderConfig(kind="ollama", models=("llama3",)),
            }
        )
    ],
)
async def test_configured_models(client: Client) -> None:
    ids = [m["id"] for m in (await client.call("models.list"))["models"]]
    assert ids == ["claude/sonnet", "local/llama3", "local/qwen", "other/llama3", "builtin/offline"]
    assert (await client.call("models.get", {"model_id": "qwen"}))["id"] == "local/qwen"
    assert (await client.call("models.capabilities", {"model_id": "claude/sonnet"}))[
        "thinking"
    ] is True
    with pytest.raises(AlephError) as ambiguous:
        await client.call("models.get", {"model_id": "llama3"})
    assert ambiguous.value.code == -32602
    with pytest.raises(AlephError) as missing:
        await client.call("models.get", {"model_id": "local/gpt-9"})
    assert missing.value.code == -32004
    assert missing.value.data == {"resource": "model", "id": "local/gpt-9"}
    with pytest.raises(AlephError) as bad:
        await client.call("models.capabilities", {"model_id": 5})
    assert bad.value.code == -32602


async def test_catalog_builds_each_kind_and_the_gateway_owns_one_http_client(
    data_dir: object,
) -> None:
    from aleph_trio import open_gateway
    from aleph_trio.providers._anthropic import AnthropicProvider
    from aleph_trio.providers._ollama import OllamaProvider
    from aleph_trio.providers._openai import OpenAIProvider

    config = Config(
        providers={
            "a": ProviderConfig(kind="openai", base_url="http://127.0.0.1:1/v1", models=("m",)),
            "b": ProviderConfig(kind="anthropic", models=("m",)),
            "c": ProviderConfig(kind="ollama", models=("m",)),
            "d": ProviderConfig(kind="builtin"),
        }
    )
    async with open_gateway(config, data_dir=data_dir) as gateway:  # type: ignore[arg-type]
        kinds = {name: type(p) for name, p in gateway.models.providers.items()}
        assert kinds == {
            "a": OpenAIProvider,
            "b": AnthropicProvider,
            "c": OllamaProvider,
            "d": BuiltinProvider,
            "builtin": BuiltinProvider,
        }
        model = gateway.models.resolve("d/offline")
        assert gateway.models.provider_for(model) is gateway.models.providers["d"]
        http = gateway.http
        assert not http.is_closed
    assert http.is_closed
