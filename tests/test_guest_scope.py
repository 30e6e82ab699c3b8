"""A guest sees only its own sessions, runs and events (PROTOCOL §4, §6.2), and an end-to-end
invitation over real sockets. Every test holds an owner connection and a guest connection."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from aleph_trio import Client, Gateway
from aleph_trio.client import ClientEvent
from aleph_trio.protocol import AlephError
from rawws import RawWebSocket
from runhelp import TERMINAL, assert_quiet, chunks, run_events

OWNER_SESSION = "agent:main:main"


async def invite(owner: Client, permissions: list[str]) -> tuple[str, str]:
    result = await owner.call("guests.createInvitation", {"permissions": permissions})
    return result["invitation_id"], result["token"]


async def code_of(client: Client, method: str, params: dict[str, Any]) -> int | None:
    try:
        await client.call(method, params)
    except AlephError as error:
        return error.code
    return None


async def owner_run(owner: Client, message: str = "echo: owner secret") -> str:
    result = await owner.call("chat.send", {"message": message, "session_key": OWNER_SESSION})
    run_id: str = result["run_id"]
    await run_events(owner, run_id)
    return run_id


async def test_guests_touch_only_their_own_sessions_and_runs(
    gateway: Gateway, client: Client
) -> None:
    owner_run_id = await owner_run(client)
    invitation_id, token = await invite(client, ["*"])
    own_session = f"agent:main:guest-{invitation_id}"
    async with gateway.connect(token=token) as guest:
        sent = await guest.call("chat.send", {"message": "echo: guest words"})
        assert sent["session_key"] == own_session
        assert chunks(await run_events(guest, sent["run_id"])) == "guest words"
        ran = await guest.call("agent.run", {"message": "echo: again"})
        assert ran["session_key"] == own_session
        await run_events(guest, ran["run_id"])
        named = await guest.call(
            "chat.send", {"message": "echo: named", "session_key": "agent:main:guest-notes"}
        )
        await run_events(guest, named["run_id"])

        listed = await guest.call("session.list")
        assert {s["session_key"] for s in listed["sessions"]} == {
            own_session,
            "agent:main:guest-notes",
        }
        assert listed["total"] == 2
        assert (await guest.call("session.list", {"filter": {"prefix": "agent:main:m"}}))[
            "sessions"
        ] == []
        history = await guest.call("chat.history")
        assert [m["content"] for m in history["messages"]][:2] == [
            "echo: guest words",
            "guest words",
        ]
        assert (await guest.call("agent.status", {"run_id": sent["run_id"]}))["status"] == (
            "completed"
        )

        theirs = {"session_key": OWNER_SESSION}
        for method, params in [
            ("session.history", theirs),
            ("session.delete", theirs),
            ("session.compact", theirs),
            ("chat.history", theirs),
            ("chat.clear", theirs),
            ("chat.abort", theirs),
            ("chat.send", {"message": "hi", **theirs}),
            ("agent.run", {"message": "hi", **theirs}),
            ("agent.status", {"run_id": owner_run_id}),
            ("agent.cancel", {"run_id": owner_run_id}),
            ("agent.respondToInput", {"run_id": owner_run_id, "message": "x"}),
            ("chat.abort", {"run_id": owner_run_id}),
        ]:
            assert await code_of(guest, method, params) == -32002, method
        assert await code_of(guest, "agent.status", {"run_id": "run_nope"}) == -32004
        assert await code_of(guest, "session.history", {"session_key": "agent:main:x"}) == -32004

        # The owner sees and may touch everything, the guest's sessions included.
        everything = await client.call("session.list")
        assert {own_session, OWNER_SESSION} <= {s["session_key"] for s in everything["sessions"]}
        assert (await client.call("agent.status", {"run_id": sent["run_id"]}))["status"]
        owner_history = await client.call("session.history", {"session_key": OWNER_SESSION})
        assert [m["content"] for m in owner_history["messages"]] == [
            "echo: owner secret",
            "owner secret",
        ]


async def test_a_session_the_owner_made_first_is_not_the_guests(
    gateway: Gateway, client: Client
) -> None:
    invitation_id, token = await invite(client, ["chat.*"])
    own_session = f"agent:main:guest-{invitation_id}"
    await owner_run(client, "echo: squatting")
    squat = await client.call("chat.send", {"message": "echo: mine", "session_key": own_session})
    await run_events(client, squat["run_id"])
    async with gateway.connect(token=token) as guest:
        assert await code_of(guest, "chat.send", {"message": "hello"}) == -32002
        assert await code_of(guest, "chat.history", {}) == -32002


def belongs_to(event: ClientEvent, runs: set[str], sessions: set[str]) -> bool:
    return event.data.get("run_id") in runs or event.data.get("session_key") in sessions


async def test_guest_gets_only_events_of_its_own_runs_live_and_replayed(
    gateway: Gateway, client: Client
) -> None:
    bus = gateway.bus
    await client.call("events.subscribe", {"patterns": ["**"]})
    invitation_id, token = await invite(client, ["*"])
    own_session = f"agent:main:guest-{invitation_id}"
    async with gateway.connect(token=token) as guest:
        await guest.call("events.subscribe", {"patterns": ["**"]})
        await guest.call("logs.tail", {"follow": True})
        owner_run_id = await owner_run(client)
        await client.call("session.delete", {"session_key": OWNER_SESSION})
        await client.call("identity.set", {"fields": {"tone": "dry"}})
        await client.call("logs.set_level", {"component": "rpc", "level": "debug"})
        for topic in (
            "config.changed",
            "cron.triggered",
            "services.started",
            "exec.approval_requested",
            "logs.entry",
        ):
            bus.publish(topic, {"topic": topic})
        sent = await guest.call("chat.send", {"message": "echo: hello"})
        got: list[ClientEvent] = []
        while not got or got[-1].topic not in TERMINAL:
            got.append(await guest.next_event(timeout=10))
        await guest.call("session.delete", {"session_key": own_session})
        while got[-1].topic != "session.deleted":
            got.append(await guest.next_event(timeout=10))
        await assert_quiet(guest, bus, subscribe=False, principal_id=f"guest-{invitation_id}")
        runs, sessions = {sent["run_id"]}, {own_session}
        assert {"session.created", "agent.started", "stream.chunk", "agent.completed"} <= {
            e.topic for e in got
        }
        assert all(belongs_to(e, runs, sessions) for e in got), [e.topic for e in got]
        # The owner saw all of it, its own run and the guest's.
        owner_saw: list[ClientEvent] = []
        bus.publish("test.barrier", {})
        while not owner_saw or owner_saw[-1].topic != "test.barrier":
            owner_saw.append(await client.next_event(timeout=10))
        assert sent["run_id"] in {e.data.get("run_id") for e in owner_saw}

    async with gateway.connect(token=token) as again, gateway.connect() as owner_again:
        replay = await again.call("events.subscribe", {"patterns": ["**"], "since_seq": 0})
        replayed = [await again.next_event(timeout=10) for _ in range(replay["replayed"])]
        replayed = [e for e in replayed if e.topic != "test.barrier"]  # assert_quiet's, above
        assert [e.seq for e in replayed] == [e.seq for e in got]
        assert owner_run_id not in {e.data.get("run_id") for e in replayed}
        everything = await owner_again.call(
            "events.subscribe", {"patterns": ["**"], "since_seq": 0}
        )
        assert everything["replayed"] > replay["replayed"]


async def test_end_to_end_invite_chat_and_revoke(
    gateway: Gateway, socket_client: Client, port: int
) -> None:
    """The owner invites a guest into chat; the guest chats with the built-in model, cannot see
    the owner's session or its events, cannot call anything else, and is shut out on revoke."""
    owner = socket_client
    invitation_id, token = await invite(owner, ["chat.*", "health"])
    raw = RawWebSocket(await trio.open_tcp_stream("127.0.0.1", port))
    with trio.fail_after(30):
        assert await raw.handshake() == 101
        hello = (await raw.call("connect", {"token": token}, id=0))["result"]
        assert (hello["role"], hello["permissions"]) == ("guest", ["chat.*", "health"])

        sent = (await raw.call("chat.send", {"message": "echo: hello owner"}, id=1))["result"]
        assert sent["session_key"] == f"agent:main:guest-{invitation_id}"
        text = ""
        while True:
            doc = await raw.receive_json()
            assert doc["params"]["data"]["run_id"] == sent["run_id"], doc
            if doc["params"]["topic"] == "stream.chunk":
                text += doc["params"]["data"]["content"]
            if doc["params"]["topic"] in TERMINAL:
                break
        assert text == "hello owner"

        # The owner chats meanwhile: none of it reaches the guest, whose next event is its own.
        await owner_run(owner, "echo: private")
        again = (await raw.call("chat.send", {"message": "echo: two"}, id=2))["result"]
        first = await raw.receive_json()
        assert first["params"]["topic"] == "agent.started"
        assert first["params"]["data"]["run_id"] == again["run_id"]
        while (await raw.receive_json())["params"]["topic"] not in TERMINAL:
            pass

        history = (await raw.call("chat.history", {}, id=3))["result"]["messages"]
        assert [m["content"] for m in history] == [
            "echo: hello owner",
            "hello owner",
            "echo: two",
            "two",
        ]
        theirs = await raw.call("chat.history", {"session_key": OWNER_SESSION}, id=4)
        assert theirs["error"]["code"] == -32002
        for n, method in enumerate(
            ["session.list", "events.subscribe", "agent.status", "config.get", "guests.listPending"]
        ):
            reply = await raw.call(method, {}, id=10 + n)
            assert reply["error"]["code"] == -32002, method
        assert (await raw.call("health", id=20))["result"]["status"] == "ok"

        await owner.call("guests.revokeInvitation", {"invitation_id": invitation_id})
        closed = await raw.wait_closed()
    assert closed.code == 1008
    await raw.stream.aclose()
    owner_history = await owner.call("session.history", {"session_key": OWNER_SESSION})
    assert [m["content"] for m in owner_history["messages"]] == ["echo: private", "private"]


@pytest.mark.parametrize("method", ["agent.run", "chat.send"])
async def test_idempotency_keys_of_a_guest_are_its_own(
    gateway: Gateway, client: Client, method: str
) -> None:
    _, token = await invite(client, ["*"])
    owned = await client.call(method, {"message": "echo: a", "idempotency_key": "k1"})
    await run_events(client, owned["run_id"])
    async with gateway.connect(token=token) as guest:
        mine = await guest.call(method, {"message": "echo: a", "idempotency_key": "k1"})
        assert mine["run_id"] != owned["run_id"]
        await run_events(guest, mine["run_id"])
