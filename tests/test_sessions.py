"""Sessions, chat history and memory through the gateway, on a real SQLite file (PROTOCOL §8, §14)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.protocol import AlephError

KEY = "agent:main:work"


async def seed(gateway: Gateway, key: str, *contents: str) -> list[int]:
    ids = []
    for i, text in enumerate(contents):
        message = await gateway.sessions.append(key, "user" if i % 2 == 0 else "assistant", text)
        ids.append(message.id)
    return ids


async def test_session_created_on_first_use_with_event(client: Client, gateway: Gateway) -> None:
    await client.call("events.subscribe", {"patterns": ["session.*"]})
    await seed(gateway, KEY, "hello", "hi there")
    event = await client.next_event(timeout=5)
    assert event.topic == "session.created"
    assert event.data["session_key"] == KEY
    listed = await client.call("session.list")
    assert listed["total"] == 1
    (session,) = listed["sessions"]
    assert session["session_key"] == KEY
    assert session["agent_id"] == "main"
    assert session["message_count"] == 2
    assert session["token_count"] == 2 + 2  # "hello" -> 2, "hi there" -> 2
    assert session["title"] == "hello"
    assert session["created_at"].endswith("Z")


async def test_history_order_paging_and_token_count(client: Client, gateway: Gateway) -> None:
    ids = await seed(gateway, KEY, *[f"message number {i}" for i in range(10)])
    assert ids == sorted(ids)
    page = await client.call("session.history", {"session_key": KEY, "limit": 4})
    assert [m["id"] for m in page["messages"]] == ids[-4:]
    assert [m["content"] for m in page["messages"]] == [f"message number {i}" for i in range(6, 10)]
    assert page["token_count"] == sum(
        m["tokens"]
        for m in (await client.call("session.history", {"session_key": KEY}))["messages"]
    )
    older = await client.call(
        "session.history", {"session_key": KEY, "limit": 4, "before_id": ids[-4]}
    )
    assert [m["id"] for m in older["messages"]] == ids[2:6]
    first = page["messages"][0]
    assert set(first) == {"id", "role", "content", "created_at", "tokens"}


async def test_list_filters_and_newest_activity_first(client: Client, gateway: Gateway) -> None:
    await seed(gateway, "agent:main:a", "one")
    await seed(gateway, "agent:helper:b", "two")
    await seed(gateway, "agent:main:c", "three")
    await seed(gateway, "agent:main:a", "four")  # a is now the most recently active
    everything = await client.call("session.list")
    assert [s["session_key"] for s in everything["sessions"]] == [
        "agent:main:a",
        "agent:main:c",
        "agent:helper:b",
    ]
    mains = await client.call("session.list", {"filter": {"agent_id": "main"}})
    assert mains["total"] == 2
    assert [s["session_key"] for s in mains["sessions"]] == ["agent:main:a", "agent:main:c"]
    prefixed = await client.call("session.list", {"filter": {"prefix": "agent:helper"}})
    assert [s["session_key"] for s in prefixed["sessions"]] == ["agent:helper:b"]
    paged = await client.call("session.list", {"limit": 1, "offset": 1})
    assert paged["total"] == 3 and [s["session_key"] for s in paged["sessions"]] == ["agent:main:c"]
    future = await client.call(
        "session.list", {"filter": {"updated_after": "2999-01-01T00:00:00Z"}}
    )
    assert future == {"sessions": [], "total": 0}
    past = await client.call(
        "session.list", {"filter": {"updated_after": "2000-01-01T00:00:00+02:00"}}
    )
    assert past["total"] == 3


async def test_delete_session(client: Client, gateway: Gateway) -> None:
    await seed(gateway, KEY, "a", "b", "c")
    await client.call("events.subscribe", {"patterns": ["session.deleted"]})
    assert await client.call("session.delete", {"session_key": KEY}) == {
        "deleted": True,
        "messages_removed": 3,
    }
    event = await client.next_event(timeout=5)
    assert event.data == {"session_key": KEY, "messages_removed": 3}
    with pytest.raises(AlephError) as info:
        await client.call("session.history", {"session_key": KEY})
    assert info.value.code == -32004
    assert info.value.data == {"resource": "session", "id": KEY}
    with pytest.raises(AlephError) as again:
        await client.call("session.delete", {"session_key": KEY})
    assert again.value.code == -32004


async def test_chat_history_and_clear(client: Client, gateway: Gateway) -> None:
    assert await client.call("chat.history") == {"messages": []}
    await seed(gateway, "agent:main:main", "hello", "hi")
    history = await client.call("chat.history", {"limit": 1})
    assert [m["content"] for m in history["messages"]] == ["hi"]
    assert await client.call("chat.clear") == {"cleared": True, "messages_removed": 2}
    assert await client.call("chat.history") == {"messages": []}
    (session,) = (await client.call("session.list"))["sessions"]
    assert session["message_count"] == 0 and session["token_count"] == 0


@pytest.mark.parametrize(
    "key",
    [
        "main",
        "agent:main",
        "agent::x",
        "agent:main:",
        "agent:ma in:x",
        "user:main:x",
        "agent:main:x/y",
        "agent:m:" + "x" * 260,
    ],
)
async def test_invalid_session_keys(client: Client, key: str) -> None:
    for method in ("session.history", "session.delete", "chat.history", "chat.clear"):
        with pytest.raises(AlephError) as info:
            await client.call(method, {"session_key": key})
        assert info.value.code == -32602, method
        assert (
            info.value.data is not None and info.value.data["errors"][0]["path"] == "$.session_key"
        )
        message = info.value.data["errors"][0]["message"]
        assert "agent:<agent_id>:<name>" in message or "length <= 256" in message, message


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("session.list", {"limit": 0}),
        ("session.list", {"limit": 501}),
        ("session.list", {"offset": -1}),
        ("session.list", {"filter": {"updated_after": "yesterday"}}),
        ("session.list", {"filter": {"colour": "red"}}),
        ("session.history", {"session_key": KEY, "limit": 1001}),
        ("session.history", {"session_key": KEY, "before_id": "5"}),
        ("session.history", {}),
        ("memory.search", {}),
        ("memory.search", {"query": "x", "limit": 101}),
        ("memory.store", {"content": ""}),
        ("memory.store", {"content": "x", "metadata": "not an object"}),
        ("memory.delete", {"id": 5}),
    ],
)
async def test_bad_params(client: Client, method: str, params: dict[str, object]) -> None:
    with pytest.raises(AlephError) as info:
        await client.call(method, params)
    assert info.value.code == -32602


async def test_memory_store_search_delete(client: Client) -> None:
    stored = {}
    for text, source in [
        ("The deploy key lives in the vault under ops/deploy", "notes"),
        ("Alice prefers short answers and metric units", "agent:main:main"),
        ("The vault is unsealed every Monday morning", "notes"),
        ("Nothing to see here", "notes"),
    ]:
        stored[text] = (
            await client.call(
                "memory.store", {"content": text, "source": source, "metadata": {"n": len(text)}}
            )
        )["id"]
    results = (await client.call("memory.search", {"query": "vault deploy"}))["results"]
    assert [r["content"] for r in results][:2] == [
        "The deploy key lives in the vault under ops/deploy",
        "The vault is unsealed every Monday morning",
    ]
    assert results[0]["score"] > results[1]["score"] > 0
    top = results[0]
    assert set(top) == {"id", "content", "score", "source", "created_at", "metadata"}
    assert top["metadata"] == {"n": len(top["content"])}
    only_agent = (
        await client.call(
            "memory.search", {"query": "alice units vault", "filter": {"source": "agent:main:main"}}
        )
    )["results"]
    assert [r["source"] for r in only_agent] == ["agent:main:main"]
    assert len((await client.call("memory.search", {"query": "vault", "limit": 1}))["results"]) == 1
    victim = stored["The vault is unsealed every Monday morning"]
    assert await client.call("memory.delete", {"id": victim}) == {"deleted": True}
    after = (await client.call("memory.search", {"query": "vault"}))["results"]
    assert victim not in [r["id"] for r in after]
    with pytest.raises(AlephError) as info:
        await client.call("memory.delete", {"id": victim})
    assert info.value.code == -32004


@pytest.mark.parametrize(
    "query",
    ['"foo', "NEAR(", "foo AND", "*", "a:b", "(((", "OR OR", "-x", "", "   ", "'", "^x", "\\"],
)
async def test_fts_syntax_from_users_is_never_an_error(client: Client, query: str) -> None:
    await client.call("memory.store", {"content": "foo near the x and b"})
    result = await client.call("memory.search", {"query": query})
    assert isinstance(result["results"], list)


async def test_data_survives_restart(data_dir: Path) -> None:
    async with open_gateway(Config(), data_dir=data_dir) as gateway:
        await seed(gateway, KEY, "remember me")
        async with gateway.connect() as client:
            memory_id = (await client.call("memory.store", {"content": "a durable fact"}))["id"]
    assert (data_dir / "gateway.db").exists()
    async with open_gateway(Config(), data_dir=data_dir) as gateway, gateway.connect() as client:
        history = await client.call("session.history", {"session_key": KEY})
        assert [m["content"] for m in history["messages"]] == ["remember me"]
        hits = (await client.call("memory.search", {"query": "durable"}))["results"]
        assert [h["id"] for h in hits] == [memory_id]


async def test_concurrent_appends_keep_counts_consistent(gateway: Gateway, client: Client) -> None:
    async def writer(n: int) -> None:
        for i in range(20):
            await gateway.sessions.append(KEY, "user", f"writer {n} line {i}")

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(writer, n)
    history = await client.call("session.history", {"session_key": KEY, "limit": 1000})
    assert len(history["messages"]) == 160
    ids = [m["id"] for m in history["messages"]]
    assert ids == sorted(ids) and len(set(ids)) == 160
    (session,) = (await client.call("session.list"))["sessions"]
    assert session["message_count"] == 160
    assert (
        session["token_count"]
        == sum(m["tokens"] for m in history["messages"])
        == history["token_count"]
    )
