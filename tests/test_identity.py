"""Identities (PROTOCOL §17) through the real gateway: a real SQLite file, and a loopback HTTP
server standing in for the LLM provider to see the system prompt a run sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.auth import Principal
from aleph_trio.identities import DEFAULT_IDENTITY
from aleph_trio.kernel import AgentConfig, ProviderConfig
from aleph_trio.protocol import AlephError
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import run_events, start, topics, wait_event

DEFAULT = DEFAULT_IDENTITY.to_json()


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


async def call_error(client: Client, method: str, params: dict[str, Any] | None) -> AlephError:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    return err.value


async def test_get_returns_the_shipped_default(client: Client) -> None:
    identity = await client.call("identity.get")
    assert identity == DEFAULT
    assert set(identity) == {"id", "name", "description", "persona"}
    assert identity["persona"]
    assert await client.call("identity.list") == {"identities": [DEFAULT]}


async def test_set_changes_the_active_identity_and_reports_the_fields(client: Client) -> None:
    await client.call("events.subscribe", {"patterns": ["identity.*"]})
    result = await client.call(
        "identity.set", {"fields": {"persona": "You speak like a ship's log.", "language": "fr"}}
    )
    assert result == {"updated": ["persona", "language"]}
    expected = {**DEFAULT, "persona": "You speak like a ship's log.", "language": "fr"}
    assert await client.call("identity.get") == expected
    event = await wait_event(client, "identity.changed", timeout=5)
    assert event.data == {"identity": expected}

    assert await client.call("identity.set", {"fields": {"language": ""}}) == {
        "updated": ["language"]
    }
    assert "language" not in await client.call("identity.get")


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"mood": "grim"}, "$.fields.mood"),
        ({"persona": "ok", "colour": "red"}, "$.fields.colour"),
        ({"persona": 5}, "$.fields.persona"),
        ({"name": "  "}, "$.fields.name"),
        ({}, "$.fields"),
        ({"id": "newcomer", "name": "New"}, "$.fields.persona"),
    ],
)
async def test_bad_fields_are_refused_and_change_nothing(
    client: Client, fields: dict[str, Any], path: str
) -> None:
    err = await call_error(client, "identity.set", {"fields": fields})
    assert err.code == -32602
    assert path in err.message
    assert err.data is not None
    assert path in [e["path"] for e in err.data["errors"]]
    assert await client.call("identity.get") == DEFAULT
    assert await client.call("identity.list") == {"identities": [DEFAULT]}


async def test_an_id_switches_to_or_creates_an_identity(client: Client) -> None:
    poet = {"id": "poet", "name": "Verse", "persona": "You answer in rhyme.", "tone": "playful"}
    assert await client.call("identity.set", {"fields": poet}) == {
        "updated": ["id", "name", "persona", "tone"]
    }
    poet_json = {**poet, "description": ""}
    assert await client.call("identity.get") == poet_json
    await client.call("identity.set", {"fields": {"id": "default", "tone": "dry"}})
    assert await client.call("identity.get") == {**DEFAULT, "tone": "dry"}
    listed = await client.call("identity.list")
    assert listed == {"identities": [{**DEFAULT, "tone": "dry"}, poet_json]}
    await client.call("identity.set", {"fields": {"id": "poet"}})
    assert await client.call("identity.get") == poet_json


async def test_clear_goes_back_to_the_default_as_shipped(client: Client) -> None:
    await client.call("identity.set", {"fields": {"name": "Changed"}})
    await client.call("identity.set", {"fields": {"id": "other", "name": "O", "persona": "P"}})
    assert await client.call("identity.clear") == {"cleared": True}
    assert await client.call("identity.get") == DEFAULT
    names = [i["id"] for i in (await client.call("identity.list"))["identities"]]
    assert names == ["default", "other"]


async def test_identities_survive_a_restart(data_dir: Path) -> None:
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        await client.call("identity.set", {"fields": {"id": "kept", "name": "K", "persona": "P"}})
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        kept = {"id": "kept", "name": "K", "description": "", "persona": "P"}
        assert await client.call("identity.get") == kept
        await client.call("identity.clear")
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        assert await client.call("identity.get") == DEFAULT
        assert len((await client.call("identity.list"))["identities"]) == 2


async def test_guests_may_read_but_not_change_the_identity(gateway: Gateway) -> None:
    guest = Principal("guest", "guest-1", ("identity.*",), invitation_id="inv_1")
    gateway.auth.guest_resolvers.append(lambda token: guest if token == "guest-token" else None)
    async with gateway.connect(token="guest-token") as client:
        assert await client.call("identity.get") == DEFAULT
        for method, params in [("identity.set", {"fields": {"name": "X"}}), ("identity.clear", {})]:
            assert (await call_error(client, method, params)).code == -32002
        assert await client.call("identity.get") == DEFAULT


async def test_the_active_persona_is_in_the_system_prompt_the_provider_gets(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script += [Reply(parts=sse(_text("ok", "stop"))) for _ in range(2)]
    config = Config(
        providers={
            "local": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",)),  # type: ignore[arg-type]
        },
        agents={"main": AgentConfig(model="local/m", system_prompt="You are terse.")},
    )
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        events = await run_events(client, await start(client, "hi"))
        assert topics(events)[-1] == "agent.completed"
        system = llm.requests[0].body["messages"][0]
        assert system["role"] == "system"
        assert system["content"].startswith("You are terse.\n\n")
        assert DEFAULT_IDENTITY.persona in system["content"]

        fields = {"name": "Mira", "persona": "You are a lighthouse keeper.", "language": "Welsh"}
        await client.call("identity.set", {"fields": {**fields, "tone": "warm"}})
        with trio.fail_after(10):
            events = await run_events(client, await start(client, "hi again"))
        assert topics(events)[-1] == "agent.completed"
        system = llm.requests[1].body["messages"][0]["content"]
        assert "You are Mira." in system
        assert "You are a lighthouse keeper." in system
        assert "Answer in Welsh." in system
        assert "Tone: warm." in system
        assert DEFAULT_IDENTITY.persona not in system


def _text(content: str, finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
