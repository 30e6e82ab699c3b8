"""Errors a person can read: each names what is wrong, where it is set, and what to do."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
import trio.testing

from aleph_trio import AlephError, Client, Config, open_gateway
from aleph_trio.kernel import AgentConfig
from runhelp import run_events, start


async def test_an_unknown_model_in_the_config_is_named_at_start_and_at_run(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(agents={"main": AgentConfig(model="gpt-nonexistent")})
    caplog.set_level(logging.WARNING, logger="aleph_trio")
    async with open_gateway(config, data_dir=data_dir) as gateway:
        warned = [r.getMessage() for r in caplog.records if "agents.main.model" in r.getMessage()]
        assert warned == [
            "configuration: agents.main.model: unknown model 'gpt-nonexistent': no configured "
            "provider offers it (models.list shows those that do); runs of this agent fail"
        ]
        async with gateway.connect() as client:
            checked = await client.call(
                "config.validate", {"config": {"agents": {"main": {"model": "gpt-nonexistent"}}}}
            )
            assert checked["valid"] is True
            assert any(
                w.startswith("agents.main.model: unknown model") for w in checked["warnings"]
            )
            with pytest.raises(AlephError) as failed:
                await client.call("agent.run", {"message": "hello"})
    assert failed.value.code == -32602
    assert "agents.main.model" in failed.value.message
    assert (
        failed.value.data is None or "errors" not in failed.value.data
    )  # not the caller's $.model


async def test_a_model_the_caller_names_is_still_the_callers_field(client: Client) -> None:
    with pytest.raises(AlephError) as failed:
        await client.call("agent.run", {"message": "hi", "model": "nope/nothing"})
    assert failed.value.data is not None
    assert failed.value.data["errors"] == [
        {"path": "$.model", "message": "unknown model 'nope/nothing'"}
    ]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("agent.run", {"message": "x", "session_key": "main"}),
        ("chat.send", {"message": "x", "session_key": "main"}),
        ("session.history", {"session_key": "agent:"}),
        (
            "cron.create",
            {
                "name": "n",
                "schedule": "every 1h",
                "agent_id": "main",
                "prompt": "p",
                "session_key": "work",
            },
        ),
    ],
)
async def test_a_malformed_session_key_says_what_one_looks_like(
    client: Client, method: str, params: dict[str, object]
) -> None:
    with pytest.raises(AlephError) as failed:
        await client.call(method, params)
    message = failed.value.message
    assert "regex" not in message
    assert message == (
        "Invalid params: $.session_key: expected a session key agent:<agent_id>:<name>, "
        "e.g. agent:main:main or agent:main:work:today (segments of A-Z a-z 0-9 _ . @ + -)"
    )


async def test_an_unanswered_approval_says_nobody_answered_and_how_to(
    client: Client, patient_clock: trio.testing.MockClock
) -> None:
    current = await client.call("exec.approvals.get")
    await client.call(
        "exec.approvals.set",
        {"config": {"mode": "ask", "ask_timeout_ms": 5000}, "base_hash": current["hash"]},
    )
    events = await run_events(client, await start(client, "run ls"), timeout=60)
    [end] = [e.data for e in events if e.topic == "stream.tool_end"]
    assert end["is_error"] is True
    assert end["output"].startswith(
        "the command was not run: nobody answered the approval request within 5 s."
    )
    assert "exec.approval.resolve" in end["output"] and "aleph-trio chat" in end["output"]


async def test_memory_scores_run_from_0_to_1_with_the_best_at_1(client: Client) -> None:
    for text in ("my cat is named Felix", "the cat sat on the cat mat", "dogs bark at night"):
        await client.call("memory.store", {"content": text})
    results = (await client.call("memory.search", {"query": "cat mat"}))["results"]
    scores = [r["score"] for r in results]
    assert len(scores) == 2
    assert scores[0] == 1.0
    assert 0 < scores[1] < 1.0
    assert results[0]["content"] == "the cat sat on the cat mat"
