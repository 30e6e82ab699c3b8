"""Guest invitations (PROTOCOL §4, §17): creating, listing, revoking, hashing, expiry, tokens.

Every test holds an owner connection and a guest connection at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.kernel import ServerConfig, format_ts, parse_ts, utc_now
from aleph_trio.protocol import AlephError
from aleph_trio.store import StoreError
from rawws import RawWebSocket

OpenRaw = Callable[..., Awaitable[RawWebSocket]]


@pytest.fixture
def config() -> Config:
    """No pings: guests that are not being read live through an hour of virtual time."""
    return Config(server=ServerConfig(ping_interval_s=86_400, ping_timeout_s=86_400))


async def invite(owner: Client, **params: Any) -> tuple[str, str]:
    result = await owner.call("guests.createInvitation", {"permissions": ["health"], **params})
    assert set(result) == {"invitation_id", "token"}
    return result["invitation_id"], result["token"]


async def refused(client: Client, method: str, params: dict[str, Any] | None = None) -> AlephError:
    with pytest.raises(AlephError) as info:
        await client.call(method, params)
    return info.value


async def connect_refused(gateway: Gateway, token: str) -> AlephError:
    async with gateway.connect(authenticate=False) as c:
        return await refused(c, "connect", {"token": token})


async def test_invite_connect_list_revoke(gateway: Gateway, client: Client) -> None:
    invitation_id, token = await invite(
        client, permissions=["chat.*", "health"], name="Ann", expires=3600
    )
    [pending] = (await client.call("guests.listPending"))["invitations"]
    assert pending["invitation_id"] == invitation_id
    assert pending["name"] == "Ann"
    assert pending["permissions"] == ["chat.*", "health"]
    assert pending["used"] is False
    lasts = parse_ts(pending["expires_at"]) - parse_ts(pending["created_at"])
    assert lasts == dt.timedelta(seconds=3600)
    async with gateway.connect(token=token) as guest:
        assert guest.session is not None
        assert guest.session["role"] == "guest"
        assert guest.session["permissions"] == ["chat.*", "health"]
        assert (await guest.call("health"))["status"] == "ok"
        [pending] = (await client.call("guests.listPending"))["invitations"]
        assert pending["used"] is True
        assert (await client.call("guests.revokeInvitation", {"invitation_id": invitation_id})) == {
            "revoked": True
        }
        await guest.wait_disconnected()
    assert (await client.call("guests.listPending"))["invitations"] == []
    assert (await connect_refused(gateway, token)).code == -32001
    again = await refused(client, "guests.revokeInvitation", {"invitation_id": invitation_id})
    assert again.code == -32004
    assert again.data == {"resource": "invitation", "id": invitation_id}
    unknown = await refused(client, "guests.revokeInvitation", {"invitation_id": "inv_nope"})
    assert unknown.code == -32004


async def test_expiry_default_and_as_a_time(gateway: Gateway, client: Client) -> None:
    default_id, _ = await invite(client)
    at = format_ts(utc_now() + dt.timedelta(hours=2))
    timed_id, token = await invite(client, expires=at)
    by_id = {
        i["invitation_id"]: i for i in (await client.call("guests.listPending"))["invitations"]
    }
    day = parse_ts(by_id[default_id]["expires_at"]) - parse_ts(by_id[default_id]["created_at"])
    assert day == dt.timedelta(hours=24)
    assert abs(parse_ts(by_id[timed_id]["expires_at"]) - parse_ts(at)) < dt.timedelta(seconds=1)
    async with gateway.connect(token=token) as guest:
        assert guest.session is not None and guest.session["role"] == "guest"


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"permissions": []}, "$.permissions"),
        ({}, "$.permissions"),
        ({"permissions": ["chat.*", "bad glob!"]}, "$.permissions[1]"),
        ({"permissions": ["chat..send"]}, "$.permissions[0]"),
        ({"permissions": [""]}, "$.permissions[0]"),
        ({"permissions": "chat.*"}, "$.permissions"),
        ({"permissions": ["health"], "expires": -5}, "$.expires"),
        ({"permissions": ["health"], "expires": 0}, "$.expires"),
        ({"permissions": ["health"], "expires": 10**12}, "$.expires"),
        ({"permissions": ["health"], "expires": "tomorrow"}, "$.expires"),
        ({"permissions": ["health"], "expires": "2001-01-01T00:00:00Z"}, "$.expires"),
        ({"permissions": ["health"], "expires": "2999-01-01T00:00:00"}, "$.expires"),
        ({"permissions": ["health"], "expires": True}, "$.expires"),
        ({"permissions": ["health"], "name": 5}, "$.name"),
        ({"permissions": ["health"], "token": "mine"}, "$.token"),
    ],
)
async def test_bad_invitations_are_refused_and_not_stored(
    gateway: Gateway, client: Client, params: dict[str, Any], path: str
) -> None:
    error = await refused(client, "guests.createInvitation", params)
    assert error.code == -32602
    assert error.data is not None
    assert path in [e["path"] for e in error.data["errors"]]
    assert (await client.call("guests.listPending"))["invitations"] == []


async def test_only_a_hash_of_the_token_is_stored_and_it_outlives_a_restart(
    data_dir: Path,
) -> None:
    async with open_gateway(Config(), data_dir=data_dir) as gateway:
        async with gateway.connect() as owner:
            invitation_id, token = await invite(owner, permissions=["health", "echo"])
    secret = token.partition(".")[2]
    assert token.startswith(invitation_id + ".") and len(secret) >= 40
    db = sqlite3.connect(data_dir / "gateway.db")
    try:
        rows = db.execute("SELECT * FROM invitations").fetchall()
    finally:
        db.close()
    assert len(rows) == 1
    assert secret not in repr(rows) and secret.encode() not in b"".join(
        v for v in rows[0] if isinstance(v, bytes)
    )
    assert hashlib.sha256(secret.encode()).digest() in rows[0]
    async with open_gateway(Config(), data_dir=data_dir) as gateway:
        async with gateway.connect() as owner, gateway.connect(token=token) as guest:
            assert (await guest.call("echo", {"a": 1})) == {"a": 1}
            [pending] = (await owner.call("guests.listPending"))["invitations"]
            assert pending["invitation_id"] == invitation_id and pending["used"] is True


async def test_wrong_malformed_and_revoked_tokens_fail_auth(
    gateway: Gateway, client: Client
) -> None:
    invitation_id, token = await invite(client)
    other_id, other_token = await invite(client)
    secret = token.partition(".")[2]
    for bad in (
        "",
        "garbage",
        invitation_id,
        invitation_id + ".",
        invitation_id + "." + secret[:-1],
        invitation_id + "." + secret + "x",
        other_id + "." + secret,  # a secret belongs to its own invitation only
        "." + secret,
        secret,
    ):
        assert (await connect_refused(gateway, bad)).code == -32001, bad
    async with gateway.connect(token=other_token) as guest:
        assert guest.session is not None and guest.session["role"] == "guest"
    await client.call("guests.revokeInvitation", {"invitation_id": other_id})
    assert (await connect_refused(gateway, other_token)).code == -32001
    async with gateway.connect(token=token) as guest:  # the other invitation is untouched
        assert (await guest.call("health"))["status"] == "ok"


async def test_expiry_closes_live_guests_with_1008_within_a_second(
    gateway: Gateway, open_raw: OpenRaw, patient_clock: trio.testing.MockClock
) -> None:
    async with gateway.connect() as owner:
        _, short = await invite(owner, expires=60)
        _, long = await invite(owner, expires=600)
        guests = []
        for token in (short, short, long):
            raw = await open_raw()
            reply = await raw.call("connect", {"token": token})
            assert reply["result"]["role"] == "guest"
            guests.append(raw)
        start = trio.current_time()
        closed = await guests[0].wait_closed()
        assert closed.code == 1008 and "expired" in closed.reason
        assert 60 <= trio.current_time() - start <= 61
        assert (await guests[1].wait_closed()).code == 1008  # every connection of it
        assert (await guests[2].call("health", id=7))["result"]["status"] == "ok"
        pending = (await owner.call("guests.listPending"))["invitations"]
        assert len(pending) == 1
        assert (await connect_refused(gateway, short)).code == -32001
        assert (await owner.call("health"))["status"] == "ok"  # the owner stays connected


async def test_revoke_closes_a_guest_socket_with_1008(
    gateway: Gateway, socket_client: Client, port: int
) -> None:
    invitation_id, token = await invite(socket_client)
    raw = RawWebSocket(await trio.open_tcp_stream("127.0.0.1", port))
    with trio.fail_after(10):
        assert await raw.handshake() == 101
        assert (await raw.call("connect", {"token": token}))["result"]["role"] == "guest"
        await socket_client.call("guests.revokeInvitation", {"invitation_id": invitation_id})
        closed = await raw.wait_closed()
    assert (closed.code, closed.reason) == (1008, "invitation revoked")
    assert (await socket_client.call("health"))["status"] == "ok"
    await raw.stream.aclose()


async def test_guest_tokens_never_reach_logs_or_events(gateway: Gateway, client: Client) -> None:
    for component in ("auth", "rpc", "server", "gateway"):
        await client.call("logs.set_level", {"component": component, "level": "debug"})
    await client.call("events.subscribe", {"patterns": ["**"]})
    await client.call("logs.tail", {"follow": True})
    invitation_id, token = await invite(client, permissions=["*"])
    secret = token.partition(".")[2]
    async with gateway.connect(token=token) as guest:
        await guest.call("health")
        await guest.call("events.subscribe", {"patterns": ["**"]})
    assert (await connect_refused(gateway, invitation_id + "." + secret[::-1])).code == -32001
    await client.call("guests.revokeInvitation", {"invitation_id": invitation_id})
    assert (await connect_refused(gateway, token)).code == -32001
    seen: list[str] = []
    gateway.bus.publish("test.barrier", {})
    while True:
        event = await client.next_event(timeout=10)
        if event.topic == "test.barrier":
            break
        seen.append(json.dumps(event.data))
    logs = json.dumps(gateway.logs.tail(10_000))
    assert any("authenticated as guest" in entry for entry in seen)  # debug logs did flow
    assert invitation_id in logs
    for text in (*seen, logs):
        assert secret not in text


async def test_a_guest_never_writes_into_a_session_someone_else_created(gateway: Gateway) -> None:
    """The store's last line, for a session created between a guest's check and its write."""
    store = gateway.store
    key = "agent:main:contested"
    await store.append_message(key, "main", "user", "first", tokens=1, owner_id="guest-a")
    await store.append_message(key, "main", "user", "again", tokens=1, owner_id="guest-a")
    await store.append_message(key, "main", "assistant", "owner", tokens=1)
    with pytest.raises(StoreError, match="another principal"):
        await store.append_message(key, "main", "user", "intruder", tokens=1, owner_id="guest-b")
    session, messages = await store.session_history(key, limit=10)
    assert session is not None and session.owner_id == "guest-a"
    assert [m.content for m in messages] == ["first", "again", "owner"]
    assert session.message_count == 3
