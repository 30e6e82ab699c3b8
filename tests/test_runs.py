"""Agent runs with the built-in model: events, queues, cancellation, input, limits, routing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.kernel import AgentConfig, RunsConfig, ServerConfig
from aleph_trio.protocol import AlephError
from aleph_trio.runs import RunStatistics
from runhelp import (
    TERMINAL,
    assert_quiet,
    chunks,
    event_data,
    run_events,
    start,
    topics,
    wait_event,
)


@contextlib.asynccontextmanager
async def gateway_with(config: Config, data_dir: Path) -> AsyncIterator[tuple[Gateway, Client]]:
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        yield gw, client


async def test_streamed_run_events_come_in_order_and_match_what_is_stored(
    client: Client,
) -> None:
    result = await client.call("agent.run", {"message": "count to 12", "thinking": "low"})
    assert result["status"] == "running"
    assert result["session_key"] == "agent:main:main"
    events = await run_events(client, result["run_id"])
    names = topics(events)
    assert names[:2] == ["agent.started", "stream.start"]
    assert names[-2:] == ["stream.end", "agent.completed"]
    assert set(names[2:-2]) == {"stream.thinking", "stream.chunk"}
    assert names.index("stream.thinking") < names.index("stream.chunk")
    assert all(e.data["session_key"] == "agent:main:main" for e in events)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    indexes = [e.data["index"] for e in events if e.topic == "stream.chunk"]
    assert indexes == list(range(len(indexes)))  # pieces that arrive together share an event
    text = chunks(events)
    assert text == " ".join(str(i) for i in range(1, 13))
    assert events[-2].data == {
        "run_id": result["run_id"],
        "session_key": "agent:main:main",
        "status": "completed",
        "content": text,
    }
    done = events[-1].data
    assert done["iterations"] == 1 and done["tokens_used"] > 0 and done["duration_ms"] >= 0

    status = await client.call("agent.status", {"run_id": result["run_id"]})
    assert status["status"] == "completed"
    assert status["output"] == text
    assert status["iterations"] == 1 and status["tokens_used"] == done["tokens_used"]
    assert status["model"] == "builtin/offline" and status["agent_id"] == "main"
    assert status["created_at"] <= status["started_at"] <= status["finished_at"]
    history = (await client.call("chat.history"))["messages"]
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "count to 12"),
        ("assistant", text),
    ]
    assert all(m["run_id"] == result["run_id"] for m in history)


async def test_services_can_start_a_run_and_wait_for_its_end(gateway: Gateway) -> None:
    record = await gateway.runs.start("count to 3", session_key="agent:main:service")
    assert record.status == "running"
    final = await gateway.runs.wait_finished(record.run_id)
    assert final.status == "completed" and final.output == "1 2 3"
    assert (await gateway.runs.wait_finished(record.run_id)) == final


async def test_the_builtin_model_never_floods_a_small_queue(data_dir: Path) -> None:
    """A thousand words at the built-in model's pace through a client queue of 8 frames:
    nothing overflows and nothing is lost."""
    config = Config(server=ServerConfig(send_queue=8))
    async with gateway_with(config, data_dir) as (_, client):
        run_id = await start(client, "count to 1000")
        events = await run_events(client, run_id)
        assert topics(events)[-1] == "agent.completed"
        assert chunks(events) == " ".join(str(i) for i in range(1, 1001))
        assert events[-2].data["content"] == chunks(events)


async def test_the_builtin_model_says_what_it_is(client: Client) -> None:
    run_id = await start(client, "What is the capital of France?")
    text = chunks(await run_events(client, run_id))
    assert "offline built-in model" in text


async def test_runs_on_one_session_wait_their_turn(client: Client) -> None:
    first = await start(client, "ask me which colour?")
    await wait_event(client, "agent.input_requested", run_id=first)
    second = await client.call("agent.run", {"message": "echo: second"})
    assert second["status"] == "queued"
    assert (await client.call("agent.status", {"run_id": second["run_id"]}))["status"] == "queued"
    other = await client.call("agent.run", {"message": "echo: x", "session_key": "agent:main:b"})
    assert other["status"] == "running"  # another session is not held up
    await run_events(client, other["run_id"])

    await client.call("agent.respondToInput", {"run_id": first, "message": "green"})
    order = []
    with trio.fail_after(10):
        while "agent.started" not in [t for r, t in order if r == second["run_id"]]:
            event = await client.next_event()
            order.append((event.data["run_id"], event.topic))
    assert order.index((first, "agent.completed")) < order.index(
        (second["run_id"], "agent.started")
    )
    events = await run_events(client, second["run_id"])
    assert chunks(events) == "second"
    history = (await client.call("chat.history"))["messages"]
    assert [m["content"] for m in history if m["role"] == "user"] == [
        "ask me which colour?",
        "echo: second",
    ]


async def test_max_concurrent_queues_runs_across_sessions(data_dir: Path) -> None:
    config = Config(runs=RunsConfig(max_concurrent=1))
    async with gateway_with(config, data_dir) as (gw, client):
        first = await start(client, "ask me anything?", session_key="agent:main:one")
        await wait_event(client, "agent.input_requested", run_id=first)
        second = await client.call(
            "agent.run", {"message": "echo: hi", "session_key": "agent:main:two"}
        )
        assert second["status"] == "queued"
        assert (await client.call("health"))["runs"] == {"running": 1, "queued": 1}
        await client.call("agent.respondToInput", {"run_id": first, "message": "ok"})
        events = await run_events(client, second["run_id"])
        assert topics(events)[-1] == "agent.completed"
        assert gw.runs.statistics().live == 0


async def test_cancel_mid_stream_keeps_the_partial_text(client: Client, gateway: Gateway) -> None:
    run_id = await start(client, "a long answer please")
    seen = [await wait_event(client, "stream.chunk", run_id=run_id)]
    assert await client.call("agent.cancel", {"run_id": run_id}) == {
        "cancelled": True,
        "run_id": run_id,
    }
    # The answer came after cleanup: the status is final already.
    status = await client.call("agent.status", {"run_id": run_id})
    assert status["status"] == "cancelled"
    rest = await run_events(client, run_id)
    assert topics(rest)[-2:] == ["stream.end", "agent.cancelled"]
    assert rest[-1].data["reason"] == "cancelled by agent.cancel"
    partial = chunks(seen + rest)
    assert partial and partial.startswith("word1 ")
    assert rest[-2].data == {
        "run_id": run_id,
        "session_key": "agent:main:main",
        "status": "cancelled",
        "content": partial,
    }
    assert status["output"] == partial
    history = (await client.call("chat.history"))["messages"]
    assert history[-1]["role"] == "assistant" and history[-1]["content"] == partial
    await assert_quiet(client, gateway.bus, of_run=run_id)
    assert await client.call("agent.cancel", {"run_id": run_id}) == {
        "cancelled": False,
        "run_id": run_id,
    }


async def test_cancelling_a_queued_run_sends_only_its_terminal_event(client: Client) -> None:
    first = await start(client, "ask me what?")
    await wait_event(client, "agent.input_requested", run_id=first)
    queued = await start(client, "echo: never")
    assert (await client.call("agent.cancel", {"run_id": queued}))["cancelled"] is True
    events = await run_events(client, queued)
    assert topics(events) == ["agent.cancelled"]
    status = await client.call("agent.status", {"run_id": queued})
    assert status["status"] == "cancelled" and "started_at" not in status
    aborted = await client.call("chat.abort", {})
    assert aborted == {"aborted": True, "run_id": first}
    assert topics(await run_events(client, first))[-1] == "agent.cancelled"
    assert await client.call("chat.abort", {}) == {"aborted": False}
    history = (await client.call("chat.history"))["messages"]
    assert "echo: never" not in [m["content"] for m in history]
    # The cancelled question left a call without an answer; it is closed with an error result.
    assert history[-1]["role"] == "tool" and history[-1]["content"].startswith("Error:")


async def test_waiting_for_input_and_answering(client: Client) -> None:
    run_id = await start(client, "ask me favourite number?")
    asked = await wait_event(client, "agent.input_requested", run_id=run_id)
    assert asked.data["question"] == "favourite number?"
    assert asked.data["request_id"]
    status = await client.call("agent.status", {"run_id": run_id})
    assert status["status"] == "waiting_input"
    assert await client.call("agent.respondToInput", {"run_id": run_id, "message": "7"}) == {
        "queued": True
    }
    events = await run_events(client, run_id)
    end = next(e for e in events if e.topic == "stream.tool_end")
    assert end.data["tool"] == "ask_user" and end.data["output"] == "7"
    assert end.data["is_error"] is False
    assert "The tool returned: 7" in chunks(events)
    with pytest.raises(AlephError) as err:
        await client.call("agent.respondToInput", {"run_id": run_id, "message": "late"})
    assert err.value.code == -32602 and err.value.data == {"reason": "invalid_state"}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("agent.status", {"run_id": "run_nope"}),
        ("agent.cancel", {"run_id": "run_nope"}),
        ("agent.respondToInput", {"run_id": "run_nope", "message": "x"}),
        ("chat.abort", {"run_id": "run_nope"}),
        ("agent.run", {"message": "hi", "agent_id": "ghost"}),
        ("chat.send", {"message": "hi", "session_key": "agent:ghost:main"}),
    ],
)
async def test_unknown_runs_and_agents_are_not_found(
    client: Client, method: str, params: dict[str, object]
) -> None:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    assert err.value.code == -32004


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"message": ""}, "$.message"),
        ({"message": "   "}, "$.message"),
        ({"message": "hi", "model": "nowhere/nothing"}, "$.model"),
        ({"message": "hi", "thinking": "huge"}, "$.thinking"),
        ({"message": "hi", "session_key": "main"}, "$.session_key"),
        ({"message": "hi", "extra": 1}, "$.extra"),
    ],
)
async def test_bad_run_params_are_refused_and_start_nothing(
    client: Client, gateway: Gateway, params: dict[str, object], path: str
) -> None:
    with pytest.raises(AlephError) as err:
        await client.call("agent.run", params)
    assert err.value.code == -32602
    assert err.value.data is not None
    assert path in [e["path"] for e in err.value.data["errors"]]
    assert gateway.runs.statistics().live == 0
    assert (await client.call("session.list"))["total"] == 0


async def test_idempotency_key_returns_the_original_run(client: Client, gateway: Gateway) -> None:
    params = {"message": "echo: once", "idempotency_key": "k-1"}
    first = await client.call("agent.run", params)
    await run_events(client, first["run_id"])
    again = await client.call("agent.run", params)
    assert again == {**first, "status": "completed"}
    with pytest.raises(AlephError) as err:
        await client.call("agent.run", {**params, "message": "echo: twice"})
    assert err.value.code == -32602 and err.value.data == {"reason": "conflict"}
    history = (await client.call("chat.history"))["messages"]
    assert [m["content"] for m in history] == ["echo: once", "once"]


async def test_concurrent_requests_with_one_idempotency_key_start_one_run(
    client: Client, gateway: Gateway
) -> None:
    results: list[dict[str, str]] = []

    async def send() -> None:
        results.append(
            await client.call("agent.run", {"message": "ask me why?", "idempotency_key": "same"})
        )

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(send)
    assert len({r["run_id"] for r in results}) == 1
    assert gateway.runs.statistics().live == 1


async def test_run_timeout_fails_the_run(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    config = Config(runs=RunsConfig(timeout_s=600))
    async with gateway_with(config, data_dir) as (_, client):
        run_id = await start(client, "ask me something?")
        events = await run_events(client, run_id, timeout=700)  # virtual seconds
        assert topics(events)[-2:] == ["stream.end", "agent.error"]
        error = events[-1].data["error"]
        assert error["code"] == -32005 and "runs.timeout_s" in error["message"]
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["status"] == "failed" and status["error_code"] == -32005


async def test_token_budget_fails_the_run(data_dir: Path) -> None:
    config = Config(runs=RunsConfig(token_budget=10))
    async with gateway_with(config, data_dir) as (_, client):
        run_id = await start(client, "count to 200")
        events = await run_events(client, run_id)
        assert events[-1].topic == "agent.error"
        assert "runs.token_budget" in events[-1].data["error"]["message"]
        # What was written is kept.
        assert (await client.call("agent.status", {"run_id": run_id}))["output"].startswith("1 2")


async def test_a_run_whose_text_passes_its_byte_bound_fails_and_keeps_what_it_streamed(
    data_dir: Path,
) -> None:
    config = Config(runs=RunsConfig(max_text_bytes=1024))
    async with gateway_with(config, data_dir) as (_, client):
        run_id = await start(client, "count to 1000")  # about 3,900 bytes
        events = await run_events(client, run_id)
        assert topics(events)[-2:] == ["stream.end", "agent.error"]
        assert "runs.max_text_bytes" in events[-1].data["error"]["message"]
        streamed = chunks(events)
        assert streamed.startswith("1 2 3") and 0 < len(streamed) <= 1024
        assert events[-2].data["content"] == streamed
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["status"] == "failed" and status["output"] == streamed
        history = (await client.call("chat.history"))["messages"]
        assert history[-1]["role"] == "assistant" and history[-1]["content"] == streamed


async def test_waiting_input_is_bounded_by_bytes(client: Client) -> None:
    first = await start(client, "ask me something?")
    await wait_event(client, "agent.input_requested", run_id=first)
    queued = await start(client, "echo: later")  # waits behind the first on the session
    big = "z" * 900_000  # four fit in 4 MiB, a fifth does not
    for _ in range(4):
        reply = await client.call("agent.respondToInput", {"run_id": queued, "message": big})
        assert reply == {"queued": True}
    with pytest.raises(AlephError) as refused:
        await client.call("agent.respondToInput", {"run_id": queued, "message": big})
    assert refused.value.code == -32602 and refused.value.data == {"reason": "limit"}
    assert "bytes" in refused.value.message
    reply = await client.call("agent.respondToInput", {"run_id": queued, "message": "small"})
    assert reply == {"queued": True}
    await client.call("agent.cancel", {"run_id": queued})
    await client.call("agent.cancel", {"run_id": first})


async def test_stopping_the_gateway_ends_every_run(data_dir: Path) -> None:
    async with gateway_with(Config(), data_dir) as (gw, client):
        waiting = await start(client, "ask me later?")
        await wait_event(client, "agent.input_requested", run_id=waiting)
        queued = await start(client, "echo: queued")
        bus = gw.bus
    ends = [e for e in bus._ring if e.topic in TERMINAL]
    assert {(e.run_id, e.topic) for e in ends} == {
        (waiting, "agent.cancelled"),
        (queued, "agent.cancelled"),
    }
    reasons = [event_data(e)["reason"] for e in ends]
    assert reasons == ["gateway shutting down"] * 2
    async with gateway_with(Config(), data_dir) as (_, client):
        for run_id in (waiting, queued):
            status = await client.call("agent.status", {"run_id": run_id})
            assert status["status"] == "cancelled"


async def test_deleting_a_session_cancels_its_runs(client: Client, gateway: Gateway) -> None:
    run_id = await start(client, "ask me why?", session_key="agent:main:doomed")
    await wait_event(client, "agent.input_requested", run_id=run_id)
    queued = await start(client, "echo: x", session_key="agent:main:doomed")
    deleted = await client.call("session.delete", {"session_key": "agent:main:doomed"})
    assert deleted["deleted"] is True
    for rid in (run_id, queued):
        status = await client.call("agent.status", {"run_id": rid})
        assert status["status"] == "cancelled"
    with pytest.raises(AlephError) as err:
        await client.call("session.history", {"session_key": "agent:main:doomed"})
    assert err.value.code == -32004


async def test_a_run_being_finished_is_never_admitted(client: Client, gateway: Gateway) -> None:
    """When the head of a lane is released while the next run is itself being finished (both
    cancelled at once, as at shutdown), that run must not be started."""
    head = await start(client, "ask me why?")
    await wait_event(client, "agent.input_requested", run_id=head)
    queued = await start(client, "echo: later")
    live = gateway.runs.live(queued)
    assert live is not None
    live.finishing = True  # its cancellation is being recorded at this very moment
    await client.call("agent.cancel", {"run_id": head})
    assert not live.admitted.is_set() and live.record.status == "queued"
    live.finishing = False
    assert (await client.call("agent.cancel", {"run_id": queued}))["cancelled"] is True
    assert (await client.call("health"))["services"]["runs"] == "running"
    assert gateway.runs.statistics() == RunStatistics(0, 0, 0, 8, {"cancelled": 2})


async def test_run_events_reach_the_caller_and_subscribers_only(gateway: Gateway) -> None:
    async with (
        gateway.connect() as caller,
        gateway.connect() as bystander,
        gateway.connect() as watcher,
    ):
        await watcher.subscribe(["agent.*"])
        await caller.subscribe(["**"])  # also subscribed: still one copy of each event
        run_id = await start(caller, "count to 3")
        events = await run_events(caller, run_id)
        assert len({e.seq for e in events}) == len(events)
        assert chunks(events) == "1 2 3"
        watched = await run_events(watcher, run_id)
        assert topics(watched) == ["agent.started", "agent.completed"]
        await assert_quiet(bystander, gateway.bus)


async def test_agent_list_and_tool_globs(data_dir: Path) -> None:
    config = Config(
        agents={
            "main": AgentConfig(name="Main", system_prompt="Be brief."),
            "notes": AgentConfig(description="keeps notes", tools=("memory_*",)),
        }
    )
    async with gateway_with(config, data_dir) as (_, client):
        agents = (await client.call("agent.list"))["agents"]
        assert agents == [
            {
                "id": "main",
                "name": "Main",
                "description": "",
                "model": "builtin/offline",
                "tools": ["ask_user", "exec", "memory_search", "memory_store"],
            },
            {
                "id": "notes",
                "name": "notes",
                "description": "keeps notes",
                "model": "builtin/offline",
                "tools": ["memory_search", "memory_store"],
            },
        ]
        run_id = await start(client, "ask me why?", agent_id="notes")
        events = await run_events(client, run_id)
        assert "stream.tool_start" not in topics(events)
        assert "may not" in chunks(events)
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["session_key"] == "agent:notes:main"


async def test_memory_tools_store_and_find(client: Client) -> None:
    run_id = await start(client, "remember that the build server is called Hopper")
    events = await run_events(client, run_id)
    end = next(e for e in events if e.topic == "stream.tool_end")
    assert end.data["tool"] == "memory_store" and not end.data["is_error"]
    hits = (await client.call("memory.search", {"query": "Hopper"}))["results"]
    assert [h["content"] for h in hits] == ["the build server is called Hopper"]
    assert hits[0]["source"] == "agent:main:main"
    run_id = await start(client, "recall build server")
    events = await run_events(client, run_id)
    end = next(e for e in events if e.topic == "stream.tool_end")
    assert end.data["tool"] == "memory_search" and "Hopper" in end.data["output"]


async def test_a_queued_run_is_stored_before_it_starts(client: Client, gateway: Gateway) -> None:
    first = await start(client, "ask me why?")
    await wait_event(client, "agent.input_requested", run_id=first)
    queued = await start(client, "echo: later")
    stored = await gateway.store.get_run(queued)
    assert stored is not None and stored.status == "queued"
    await client.call("chat.abort", {})
    await run_events(client, queued)
    stored = await gateway.store.get_run(queued)
    assert stored is not None and stored.status == "completed"
