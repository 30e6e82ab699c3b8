"""session.compact and automatic compaction: summary, facts into memory, exclusivity."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from aleph_trio import Client, Config, open_gateway
from aleph_trio.identities import DEFAULT_IDENTITY, persona_prompt
from aleph_trio.kernel import AgentConfig, ProviderConfig, SessionsConfig
from aleph_trio.protocol import AlephError
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import run_events, start, wait_event

KEY = "agent:main:main"


@contextlib.asynccontextmanager
async def gateway_with(config: Config, data_dir: Path) -> AsyncIterator[Client]:
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        yield client


async def chat(client: Client, *messages: str, session_key: str = KEY) -> None:
    for message in messages:
        await run_events(client, await start(client, message, session_key=session_key))


async def test_compaction_summarises_and_extracts_facts(client: Client) -> None:
    await client.subscribe(["session.compacted"])
    await chat(client, "my name is Ada", "I live in Paris", "echo: three", "echo: four")
    before = await client.call("session.history", {"session_key": KEY})
    assert len(before["messages"]) == 8
    result = await client.call("session.compact", {"session_key": KEY})
    assert result["tokens_before"] == before["token_count"]
    assert result["tokens_after"] < result["tokens_before"]
    assert result["facts_extracted"] == 2
    event = await wait_event(client, "session.compacted")
    assert event.data == {"session_key": KEY, **result}

    after = await client.call("session.history", {"session_key": KEY})
    assert after["token_count"] == result["tokens_after"]
    summary, *kept = after["messages"]
    assert summary["role"] == "system"
    assert summary["content"].startswith("Summary of the earlier conversation:")
    assert "my name is Ada" in summary["content"]
    assert kept == before["messages"][-4:]
    facts = await client.call("memory.search", {"query": "Ada Paris", "filter": {"source": KEY}})
    assert sorted(f["content"] for f in facts["results"]) == [
        "The user lives in Paris",
        "The user's name is Ada",
    ]

    again = await client.call("session.compact", {"session_key": KEY})
    assert again == {
        "tokens_before": result["tokens_after"],
        "tokens_after": result["tokens_after"],
        "facts_extracted": 0,
    }


async def test_the_next_run_sees_the_summary(client: Client) -> None:
    await chat(client, "count to 40", "count to 41", "count to 42")
    assert (await client.call("session.compact", {"session_key": KEY}))["tokens_after"] < 100
    await chat(client, "echo: four")
    history = (await client.call("chat.history"))["messages"]
    assert history[0]["role"] == "system"
    assert [m["content"] for m in history[-2:]] == ["echo: four", "four"]


async def test_a_summary_longer_than_the_history_is_not_kept(client: Client) -> None:
    await chat(client, "echo: a", "echo: b", "echo: c")
    before = await client.call("session.history", {"session_key": KEY})
    result = await client.call("session.compact", {"session_key": KEY})
    assert result["tokens_after"] == result["tokens_before"] == before["token_count"]
    assert await client.call("session.history", {"session_key": KEY}) == before


async def test_compaction_is_refused_while_a_run_holds_the_session(client: Client) -> None:
    run_id = await start(client, "ask me why?")
    await wait_event(client, "agent.input_requested", run_id=run_id)
    with pytest.raises(AlephError) as err:
        await client.call("session.compact", {"session_key": KEY})
    assert err.value.code == -32602 and err.value.data == {"reason": "invalid_state"}
    await client.call("agent.cancel", {"run_id": run_id})
    await client.call("session.compact", {"session_key": KEY})


async def test_compacting_an_unknown_session_is_not_found(client: Client) -> None:
    with pytest.raises(AlephError) as err:
        await client.call("session.compact", {"session_key": "agent:main:nothing"})
    assert err.value.code == -32004


async def test_automatic_compaction_after_a_run(data_dir: Path) -> None:
    config = Config(sessions=SessionsConfig(compact_at_tokens=80, compact_keep=2))
    async with gateway_with(config, data_dir) as client:
        await client.subscribe(["session.compacted"])
        await chat(client, "count to 50")
        assert (await client.call("session.history", {"session_key": KEY}))["token_count"] < 80
        await chat(client, "count to 60")
        event = await wait_event(client, "session.compacted")
        assert event.data["tokens_after"] < event.data["tokens_before"]
        history = (await client.call("chat.history"))["messages"]
        assert [m["role"] for m in history] == ["system", "user", "assistant"]
        assert history[-1]["content"].startswith("1 2 3")


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


def llm_config(llm: LLMServer) -> Config:
    return Config(
        providers={"up": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",))},
        agents={"main": AgentConfig(model="up/m")},
        sessions=SessionsConfig(compact_keep=2),
    )


def say(text: str) -> Reply:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    return Reply(parts=sse(chunk))


async def test_a_remote_model_writes_the_summary_and_runs_wait_for_it(
    llm: LLMServer, data_dir: Path
) -> None:
    async with gateway_with(llm_config(llm), data_dir) as client:
        long_answer = "A1 " + "and so on " * 50
        llm.script += [say(long_answer), say("A2")]
        await chat(client, "Q1", "Q2")
        answer = "SUMMARY:\nThey asked two things.\nFACTS:\n- Likes tea\n- Lives in Oslo\n"
        written = trio.Event()  # the summary is held back until the run below is queued
        held = Reply(
            parts=[written, *sse({"choices": [{"index": 0, "delta": {"content": answer}}]})]
        )
        llm.script += [held, say("A3")]
        async with trio.open_nursery() as nursery:
            results: list[dict[str, int]] = []

            async def compact() -> None:
                results.append(await client.call("session.compact", {"session_key": KEY}))

            nursery.start_soon(compact)
            with trio.fail_after(5):
                await llm.wait_requests(3)  # the summary is being written
            queued = await client.call("agent.run", {"message": "Q3"})
            assert queued["status"] == "queued"  # the session is being rewritten
            written.set()
        assert results[0]["facts_extracted"] == 2
        await run_events(client, queued["run_id"])
        prompt = llm.requests[2].body["messages"][-1]["content"]
        assert "user: Q1" in prompt and "assistant: A1 and so on" in prompt
        assert "user: Q2" not in prompt
        third = llm.requests[3].body["messages"]
        assert third[0] == {"role": "system", "content": persona_prompt(DEFAULT_IDENTITY)}
        assert third[1] == {
            "role": "system",
            "content": "Summary of the earlier conversation:\nThey asked two things.",
        }
        assert [m["content"] for m in third[2:]] == ["Q2", "A2", "Q3"]
        facts = await client.call("memory.search", {"query": "tea Oslo"})
        assert {f["content"] for f in facts["results"]} == {"Likes tea", "Lives in Oslo"}


async def test_failed_compaction_leaves_the_history_alone(llm: LLMServer, data_dir: Path) -> None:
    async with gateway_with(llm_config(llm), data_dir) as client:
        llm.script += [say("A1"), say("A2")]
        await chat(client, "Q1", "Q2")
        before = await client.call("session.history", {"session_key": KEY})
        llm.script.append(Reply(500, ["down"], "text/plain"))
        with pytest.raises(AlephError) as err:
            await client.call("session.compact", {"session_key": KEY})
        assert err.value.code == -32603 and "HTTP 500" in err.value.message
        assert await client.call("session.history", {"session_key": KEY}) == before
