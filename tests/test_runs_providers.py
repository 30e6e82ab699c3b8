"""Agent runs against real HTTP servers on loopback speaking each provider's streaming format."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from aleph_trio import Client, Config, open_gateway
from aleph_trio.identities import DEFAULT_IDENTITY, persona_prompt
from aleph_trio.kernel import (
    AgentConfig,
    EnvSecret,
    ProviderConfig,
    RunsConfig,
    ServerConfig,
)
from llmserver import DROP, LLMServer, Reply, serve_llm, sse
from runhelp import assert_quiet, chunks, run_events, start, topics, wait_event

KEY = "sk-live-very-secret-789"
#: The agent's system prompt followed by the default identity's section.
SYSTEM = "You are terse.\n\n" + persona_prompt(DEFAULT_IDENTITY)


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aleph_trio.runs._agent_loop.RETRY_BACKOFF_S", 0.01)


@contextlib.asynccontextmanager
async def gateway_for(
    llm: LLMServer, data_dir: Path, kind: str = "openai", **runs: int
) -> AsyncIterator[Client]:
    config = Config(
        providers={
            "local": ProviderConfig(kind=kind, base_url=llm.base_url, api_key=KEY, models=("m",))  # type: ignore[arg-type]
        },
        agents={"main": AgentConfig(model="local/m", system_prompt="You are terse.")},
        runs=RunsConfig(**runs),
    )
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        client.gateway = gw  # type: ignore[attr-defined]  # for assert_quiet's barrier
        yield client


def text(content: str, finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


def tool_piece(index: int, arguments: str, *, id: str = "", name: str = "") -> dict[str, object]:
    call: dict[str, object] = {"index": index, "function": {"arguments": arguments}}
    if id:
        call["id"] = id
        call["type"] = "function"
        call["function"] = {"name": name, "arguments": arguments}
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}


USAGE = {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 2}}


async def test_a_flood_of_chunks_is_coalesced_not_dropped(llm: LLMServer, data_dir: Path) -> None:
    """A provider far faster than the client: 2,000 chunks in one write. What one read decodes
    leaves as one event, so the client's bounded queue (8 frames) never overflows."""
    words = [f"w{i} " for i in range(2000)]
    pieces = [text(word) for word in words]
    llm.script.append(Reply(parts=["".join(sse(*pieces, text("", "stop")))]))
    config = Config(
        providers={
            "local": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",)),  # type: ignore[arg-type]
        },
        agents={"main": AgentConfig(model="local/m")},
        server=ServerConfig(send_queue=8),
    )
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        run_id = await start(client, "hi")
        events = await run_events(client, run_id)
    assert topics(events)[-1] == "agent.completed"
    assert chunks(events) == "".join(words)
    sent = [e for e in events if e.topic == "stream.chunk"]
    assert len(sent) < len(words) / 10
    assert [e.data["index"] for e in sent] == list(range(len(sent)))


async def test_openai_run_streams_and_counts_reported_usage(llm: LLMServer, data_dir: Path) -> None:
    llm.script.append(Reply(parts=sse(text("Hel"), text("lo", "stop"), USAGE)))
    async with gateway_for(llm, data_dir) as client:
        run_id = await start(client, "hi")
        events = await run_events(client, run_id)
        assert topics(events)[-1] == "agent.completed"
        assert chunks(events) == "Hello"
        assert events[-1].data["tokens_used"] == 42
        assert events[0].data["model"] == "local/m"
        sent = llm.requests[0].body
        assert sent["model"] == "m"
        assert sent["messages"] == [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "hi"},
        ]
        assert {t["function"]["name"] for t in sent["tools"]} == {
            "ask_user",
            "exec",
            "memory_search",
            "memory_store",
        }


async def test_split_tool_calls_run_and_feed_results_back(llm: LLMServer, data_dir: Path) -> None:
    llm.script.append(
        Reply(
            parts=sse(
                tool_piece(0, '{"que', id="c0", name="memory_search"),
                tool_piece(1, '{"content"', id="c1", name="memory_store"),
                tool_piece(0, 'ry": "tea"}'),
                tool_piece(1, ': "tea is green"}'),
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            )
        )
    )
    llm.script.append(Reply(parts=sse(text("Done.", "stop"))))
    async with gateway_for(llm, data_dir) as client:
        run_id = await start(client, "note tea")
        events = await run_events(client, run_id)
        starts = [e.data for e in events if e.topic == "stream.tool_start"]
        ends = [e.data for e in events if e.topic == "stream.tool_end"]
        assert [(s["tool_call_id"], s["tool"], s["input"]) for s in starts] == [
            ("c0", "memory_search", {"query": "tea"}),
            ("c1", "memory_store", {"content": "tea is green"}),
        ]
        assert [e["tool_call_id"] for e in ends] == ["c0", "c1"]
        assert not any(e["is_error"] for e in ends)
        names = topics(events)
        assert names.index("stream.tool_end") > names.index("stream.tool_start")
        assert events[-1].data["iterations"] == 2
        second = llm.requests[1].body["messages"]
        assert second[-3]["tool_calls"][1]["function"] == {
            "name": "memory_store",
            "arguments": '{"content": "tea is green"}',
        }
        assert [(m["role"], m.get("tool_call_id")) for m in second[-2:]] == [
            ("tool", "c0"),
            ("tool", "c1"),
        ]
        assert second[-1]["content"].startswith("remembered")
        history = (await client.call("chat.history"))["messages"]
        assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool", "assistant"]


async def test_tool_errors_go_back_to_the_model_and_the_run_goes_on(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script.append(
        Reply(
            parts=sse(
                tool_piece(0, '{"query": 5}', id="bad", name="memory_search"),
                tool_piece(1, "{}", id="ghost", name="launch_rockets"),
                tool_piece(2, "not json", id="junk", name="memory_store"),
            )
        )
    )
    llm.script.append(Reply(parts=sse(text("Sorry.", "stop"))))
    async with gateway_for(llm, data_dir) as client:
        run_id = await start(client, "go")
        events = await run_events(client, run_id)
        ends = {e.data["tool_call_id"]: e.data for e in events if e.topic == "stream.tool_end"}
        assert all(end["is_error"] for end in ends.values())
        assert "query" in ends["bad"]["output"]
        assert "unknown tool 'launch_rockets'" in ends["ghost"]["output"]
        assert "not valid JSON" in ends["junk"]["output"]
        assert topics(events)[-1] == "agent.completed"
        results = [m for m in llm.requests[1].body["messages"] if m["role"] == "tool"]
        assert all(m["content"].startswith("Error: ") for m in results)


async def test_retryable_failures_are_retried_before_output(llm: LLMServer, data_dir: Path) -> None:
    llm.script += [
        Reply(429, ['{"error": {"message": "slow down"}}'], "application/json"),
        Reply(503, ["busy"], "text/plain"),
        Reply(parts=sse(text("ok", "stop"))),
    ]
    async with gateway_for(llm, data_dir, provider_retries=2) as client:
        events = await run_events(client, await start(client, "hi"))
        assert topics(events)[-1] == "agent.completed" and chunks(events) == "ok"
        assert len(llm.requests) == 3


async def test_retry_after_is_waited_out(
    llm: LLMServer, data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    llm.script += [
        Reply(429, ["slow down"], "text/plain", headers={"retry-after": "30"}),
        Reply(parts=sse(text("ok", "stop"))),
    ]
    async with gateway_for(llm, data_dir, provider_retries=2) as client:
        before = trio.current_time()
        events = await run_events(client, await start(client, "hi"), timeout=120)
        assert chunks(events) == "ok"
        assert trio.current_time() - before >= 30


async def test_a_retry_after_too_long_to_wait_fails_at_once(
    llm: LLMServer, data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    llm.script.append(Reply(429, ["quota"], "text/plain", headers={"retry-after": "3600"}))
    async with gateway_for(llm, data_dir, provider_retries=2) as client:
        before = trio.current_time()
        events = await run_events(client, await start(client, "hi"))
        assert topics(events)[-1] == "agent.error"
        assert "retry after 3600 s" in events[-1].data["error"]["message"]
        assert trio.current_time() - before < 30
        assert len(llm.requests) == 1


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply(500, ['{"error": {"message": "boom"}}'], "application/json"), "HTTP 500"),
        (Reply(429, ["try later"], "text/plain"), "HTTP 429"),
        (Reply(parts=["data: {not json\n\n"]), "malformed"),
    ],
)
async def test_provider_failures_end_the_run_with_agent_error(
    llm: LLMServer, data_dir: Path, reply: Reply, words: str
) -> None:
    llm.script.append(reply)
    async with gateway_for(llm, data_dir, provider_retries=0) as client:
        run_id = await start(client, "hi")
        events = await run_events(client, run_id)
        assert topics(events) == ["agent.started", "stream.start", "stream.end", "agent.error"]
        error = events[-1].data["error"]
        assert error["code"] == -32603
        assert words in error["message"] and "local/m" in error["message"]
        assert KEY not in json.dumps([e.data for e in events])
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["status"] == "failed" and words in status["error"]
        logs = await client.call("logs.tail", {"lines": 500})
        assert KEY not in json.dumps(logs)


async def test_refused_connection_fails_the_run(data_dir: Path) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = LLMServer(port=port)
    async with gateway_for(dead, data_dir, provider_retries=0) as client:
        events = await run_events(client, await start(client, "hi"))
        assert "could not be reached" in events[-1].data["error"]["message"]


async def test_mid_stream_disconnect_keeps_the_partial_text(llm: LLMServer, data_dir: Path) -> None:
    llm.script.append(Reply(parts=[*sse(text("Half "), text("way"), done=False), DROP]))
    async with gateway_for(llm, data_dir) as client:
        run_id = await start(client, "hi")
        events = await run_events(client, run_id)
        assert topics(events)[-1] == "agent.error"
        assert len(llm.requests) == 1  # output was shown: not retried
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["output"] == "Half way"
        history = (await client.call("chat.history"))["messages"]
        assert history[-1] == {**history[-1], "role": "assistant", "content": "Half way"}


async def test_cancel_closes_the_provider_request_and_nothing_follows(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script.append(Reply(parts=[*sse(text("tick "), done=False), 30.0, *sse(text("late"))]))
    async with gateway_for(llm, data_dir) as client:
        run_id = await start(client, "hi")
        await wait_event(client, "stream.chunk", run_id=run_id)
        with trio.fail_after(2):
            assert (await client.call("agent.cancel", {"run_id": run_id}))["cancelled"]
            await llm.wait_all_closed()
        rest = await run_events(client, run_id)
        assert topics(rest) == ["stream.end", "agent.cancelled"]
        await assert_quiet(client, client.gateway.bus)  # type: ignore[attr-defined]


async def test_model_calls_reuse_one_kept_alive_connection(llm: LLMServer, data_dir: Path) -> None:
    """A run with a tool call makes two model calls and the next run a third, all on one
    connection; the gateway's shutdown closes it."""
    llm.keep_alive = True
    llm.script.append(
        Reply(parts=sse(tool_piece(0, '{"content": "tea"}', id="c0", name="memory_store")))
    )
    llm.script.append(Reply(parts=sse(text("Noted.", "stop"))))
    llm.script.append(Reply(parts=sse(text("Again.", "stop"))))
    async with gateway_for(llm, data_dir) as client:
        first = await run_events(client, await start(client, "note tea"))
        second = await run_events(client, await start(client, "hi"))
        assert (chunks(first), chunks(second)) == ("Noted.", "Again.")
        assert len(llm.requests) == 3
        assert llm.connections_accepted == 1
        assert llm.open_connections == 1  # idle in the pool
    with trio.fail_after(2):
        await llm.wait_all_closed()


async def test_an_answer_whose_body_never_ends_completes_anyway(
    llm: LLMServer, data_dir: Path
) -> None:
    """After the end marker the gateway waits only briefly for the body's end; a server that
    stalls there costs its connection, not the run."""
    llm.keep_alive = True
    llm.script.append(Reply(parts=[*sse(text("ok", "stop")), 30.0]))
    llm.script.append(Reply(parts=sse(text("next", "stop"))))
    async with gateway_for(llm, data_dir) as client:
        with trio.fail_after(5):
            events = await run_events(client, await start(client, "hi"))
        assert (chunks(events), topics(events)[-1]) == ("ok", "agent.completed")
        assert chunks(await run_events(client, await start(client, "again"))) == "next"
        assert llm.connections_accepted == 2


async def test_a_cancelled_answer_never_leaves_its_connection_in_the_pool(
    llm: LLMServer, data_dir: Path
) -> None:
    """What is left of a cancelled answer would precede the next one: that connection is
    closed, and the next run opens a new one."""
    llm.keep_alive = True
    llm.script.append(Reply(parts=[*sse(text("tick "), done=False), 30.0, *sse(text("late"))]))
    llm.script.append(Reply(parts=sse(text("fresh", "stop"))))
    async with gateway_for(llm, data_dir) as client:
        run_id = await start(client, "hi")
        await wait_event(client, "stream.chunk", run_id=run_id)
        with trio.fail_after(2):
            await client.call("agent.cancel", {"run_id": run_id})
            await llm.wait_all_closed()
        events = await run_events(client, await start(client, "again"))
        assert chunks(events) == "fresh"
        assert llm.connections_accepted == 2


async def test_input_sent_while_running_is_handed_over_at_the_next_turn(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script.append(Reply(parts=[*sse(text("first "), done=False), 0.3, *sse(text("answer"))]))
    llm.script.append(Reply(parts=sse(text("second answer", "stop"))))
    async with gateway_for(llm, data_dir) as client:
        run_id = await start(client, "hi")
        await wait_event(client, "stream.chunk", run_id=run_id)
        assert (await client.call("agent.status", {"run_id": run_id}))["status"] == "running"
        await client.call("agent.respondToInput", {"run_id": run_id, "message": "and also"})
        events = await run_events(client, run_id)
        assert chunks(events) == "answersecond answer"
        assert events[-1].data["iterations"] == 2
        follow_up = llm.requests[1].body["messages"]
        assert [m["content"] for m in follow_up[-3:]] == ["hi", "first answer", "and also"]


async def test_max_iterations_stops_a_model_that_never_finishes(
    llm: LLMServer, data_dir: Path
) -> None:
    for i in range(3):
        llm.script.append(
            Reply(parts=sse(tool_piece(0, '{"query": "x"}', id=f"c{i}", name="memory_search")))
        )
    async with gateway_for(llm, data_dir, max_iterations=3) as client:
        run_id = await start(client, "loop")
        events = await run_events(client, run_id)
        assert topics(events)[-1] == "agent.error"
        assert "runs.max_iterations" in events[-1].data["error"]["message"]
        assert topics(events).count("stream.tool_end") == 3
        assert len(llm.requests) == 3
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["iterations"] == 3


async def test_api_key_from_the_environment(
    llm: LLMServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALEPH_TEST_KEY", "env-key-1")
    llm.script.append(Reply(parts=sse(text("ok", "stop"))))
    config = Config(
        providers={
            "local": ProviderConfig(
                kind="openai",
                base_url=llm.base_url,
                api_key=EnvSecret("ALEPH_TEST_KEY"),
                models=("m",),
            )
        }
    )
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        events = await run_events(client, await start(client, "hi", model="m"))
        assert chunks(events) == "ok"
        assert llm.requests[0].headers["authorization"] == "Bearer env-key-1"


async def test_anthropic_run(llm: LLMServer, data_dir: Path) -> None:
    docs = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    llm.script.append(Reply(parts=[f"event: {d['type']}\ndata: {json.dumps(d)}\n\n" for d in docs]))
    async with gateway_for(llm, data_dir, kind="anthropic") as client:
        events = await run_events(client, await start(client, "hello"))
        assert chunks(events) == "Hi" and topics(events)[-1] == "agent.completed"
        assert events[-1].data["tokens_used"] == 13
        body = llm.requests[0].body
        assert body["system"] == SYSTEM
        assert llm.requests[0].headers["x-api-key"] == KEY


async def test_ollama_run(llm: LLMServer, data_dir: Path) -> None:
    lines = [
        {"message": {"role": "assistant", "content": "Yo"}, "done": False},
        {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"},
    ]
    llm.script.append(
        Reply(content_type="application/x-ndjson", parts=[json.dumps(x) + "\n" for x in lines])
    )
    async with gateway_for(llm, data_dir, kind="ollama") as client:
        events = await run_events(client, await start(client, "hello"))
        assert chunks(events) == "Yo" and topics(events)[-1] == "agent.completed"
        assert events[-1].data["tokens_used"] > 0  # estimated: Ollama reported no counts here


async def test_a_host_program_adds_its_own_tool(llm: LLMServer, data_dir: Path) -> None:
    """Embedding: a tool registered by the host program is offered and called like a built-in."""
    import attrs

    from aleph_trio import Tool, ToolContext, ToolFailed

    @attrs.frozen
    class Order:
        item: str
        count: int = 1

    async def place(ctx: ToolContext, params: Order) -> str:
        if params.count > 10:
            raise ToolFailed("at most 10 at a time")
        return f"ordered {params.count} x {params.item} for {ctx.run.session_key}"

    llm.script.append(
        Reply(
            parts=sse(
                tool_piece(0, '{"item": "tea", "count": 2}', id="a", name="place_order"),
                tool_piece(1, '{"item": "tea", "count": 99}', id="b", name="place_order"),
            )
        )
    )
    llm.script.append(Reply(parts=sse(text("Done.", "stop"))))
    config = Config(
        providers={"local": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",))}
    )
    async with open_gateway(config, data_dir=data_dir) as gw:
        gw.tools.add(Tool("place_order", "Order something.", Order, place))
        async with gw.connect() as client:
            events = await run_events(client, await start(client, "buy tea"))
    offered = {t["function"]["name"]: t["function"] for t in llm.requests[0].body["tools"]}
    assert offered["place_order"]["parameters"]["required"] == ["item"]
    ends = [e.data for e in events if e.topic == "stream.tool_end"]
    assert ends[0]["output"] == "ordered 2 x tea for agent:main:main" and not ends[0]["is_error"]
    assert ends[1]["output"] == "at most 10 at a time" and ends[1]["is_error"]
