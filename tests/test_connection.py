"""The WebSocket server and connection rules (PROTOCOL §1, §2, §4, §5) through real frames."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio_websocket

from aleph_trio import Config, Gateway, open_gateway
from aleph_trio.kernel import AuthConfig, ServerConfig
from aleph_trio.rpc import Method, NoParams
from rawws import Closed, RawWebSocket

OpenRaw = Callable[..., Awaitable[RawWebSocket]]


async def authed(open_raw: OpenRaw, gateway: Gateway, **kw: Any) -> RawWebSocket:
    raw = await open_raw(**kw)
    reply = await raw.call("connect", {"token": gateway.owner_token}, id="auth")
    assert reply["result"]["authenticated"] is True
    return raw


async def expect_only(raw: RawWebSocket, barrier_id: str = "barrier") -> None:
    """Nothing reaches the client before the answer to a barrier request sent now.

    Every frame is read (``RawWebSocket.call`` would skip frames with another id). The gateway
    is first let run until every task is blocked, so whatever it would send for the frames
    before the barrier is already in the stream ahead of the barrier's answer."""
    await trio.testing.wait_all_tasks_blocked()
    await raw.send_json({"jsonrpc": "2.0", "id": barrier_id, "method": "echo"})
    first = await raw.receive_json()
    assert isinstance(first, dict) and first.get("id") == barrier_id, (
        f"the gateway sent something before the barrier's answer: {first!r}"
    )


# -- upgrade ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/ws", "/?x=1"])
async def test_upgrade_paths_accepted(url: str, path: str) -> None:
    base = url.rstrip("/")
    with trio.fail_after(5):
        async with trio_websocket.open_websocket_url(base + path) as ws:
            await ws.send_message('{"jsonrpc":"2.0","id":1,"method":"health"}')
            assert json.loads(await ws.get_message())["error"]["code"] == -32000


async def upgrade_status(port: int, path: str = "/", origin: bytes | None = None) -> int:
    """The HTTP status a real TCP client gets for its upgrade request."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            headers = [(b"Origin", origin)] if origin is not None else []
            return await RawWebSocket(stream).handshake(path, headers)


@pytest.mark.parametrize("path", ["/api", "/ws/", "/favicon.ico"])
async def test_other_paths_are_404(port: int, path: str) -> None:
    assert await upgrade_status(port, path) == 404


async def test_origin_refused_unless_allowed(port: int) -> None:
    assert await upgrade_status(port, origin=b"http://evil.example") == 403
    assert await upgrade_status(port) == 101


@pytest.mark.parametrize(
    "config", [Config(server=ServerConfig(allowed_origins=("http://app.example",)))]
)
async def test_listed_origin_accepted(port: int) -> None:
    assert await upgrade_status(port, origin=b"http://app.example") == 101
    assert await upgrade_status(port, origin=b"http://other.example") == 403


@pytest.mark.parametrize("config", [Config(server=ServerConfig(allowed_origins=("*",)))])
async def test_star_allows_any_origin(port: int) -> None:
    assert await upgrade_status(port, origin=b"http://any.example") == 101


# -- authentication --------------------------------------------------------------------------


async def test_nothing_but_connect_before_auth(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await open_raw()
    for method in ("health", "nope.nope", "events.subscribe"):
        reply = await raw.call(
            method, {"patterns": ["**"]} if method == "events.subscribe" else None
        )
        assert reply["error"]["code"] == -32000
    gateway.bus.publish("x.y", {})  # no events before authentication
    # notifications are dropped before authentication: valid, unknown, with bad params
    await raw.send_json({"jsonrpc": "2.0", "method": "health"})
    await raw.send_json({"jsonrpc": "2.0", "method": "nope.nope"})
    await raw.send_json({"jsonrpc": "2.0", "method": "echo", "params": [1]})
    await raw.send_json({"jsonrpc": "2.0", "method": "connect", "params": {"token": 5}})
    await raw.send_json([{"jsonrpc": "2.0", "method": "health"}])
    await expect_only(raw)
    reply = await raw.call("connect", {"token": gateway.owner_token}, id=9)
    result = reply["result"]
    assert result["role"] == "owner"
    assert result["server"] == {
        "name": "aleph_trio",
        "version": result["server"]["version"],
        "protocol": 1,
    }
    assert result["boot_id"] == gateway.bus.boot_id
    assert result["seq"] == gateway.bus.seq
    assert (await raw.call("health", id=10))["result"]["status"] == "ok"


async def test_wrong_token_then_close_after_five(open_raw: OpenRaw) -> None:
    raw = await open_raw()
    for attempt in range(5):
        reply = await raw.call("connect", {"token": "wrong"}, id=attempt)
        assert reply["error"]["code"] == -32001
    closed = await raw.wait_closed()
    assert closed.code == 1008


async def test_connect_validates_params(open_raw: OpenRaw) -> None:
    raw = await open_raw()
    reply = await raw.call("connect", {"token": 5})
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["errors"] == [
        {"path": "$.token", "message": "expected string, got integer"}
    ]


async def test_handshake_timeout_closes_1008(
    open_raw: OpenRaw, autojump_clock: trio.testing.MockClock
) -> None:
    raw = await open_raw()
    start = trio.current_time()
    closed = await raw.wait_closed()
    assert closed.code == 1008
    assert 10 <= trio.current_time() - start < 11


async def test_authenticated_connection_outlives_handshake_timeout(
    open_raw: OpenRaw, gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    raw = await authed(open_raw, gateway)
    await trio.sleep(15)
    assert (await raw.call("health", id=2))["result"]["status"] == "ok"


@pytest.mark.parametrize("config", [Config(auth=AuthConfig(require_auth=False))])
async def test_no_auth_mode_is_owner_at_once(open_raw: OpenRaw) -> None:
    raw = await open_raw()
    assert (await raw.call("health"))["result"]["status"] == "ok"
    reply = await raw.call("connect", {"token": "ignored"}, id=2)
    assert reply["result"]["role"] == "owner"


async def test_reconnect_replaces_role(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway)
    reply = await raw.call("connect", {"token": gateway.owner_token, "client_id": "cli-2"}, id=3)
    assert reply["result"]["client_id"] == "cli-2"


# -- frames and limits -----------------------------------------------------------------------


async def test_binary_frame_answered_and_connection_stays(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    raw = await authed(open_raw, gateway)
    await raw.send_bytes(b'{"jsonrpc":"2.0","id":1,"method":"health"}')
    reply = await raw.receive_json()
    assert reply["id"] is None and reply["error"]["code"] == -32600
    assert "binary" in reply["error"]["message"]
    assert (await raw.call("health", id=2))["result"]["status"] == "ok"


async def test_big_message_before_auth_closes_1009(open_raw: OpenRaw) -> None:
    raw = await open_raw()
    await raw.send_text(
        json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "connect", "params": {"token": "x" * 70_000}}
        )
    )
    assert (await raw.wait_closed()).code == 1009


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_message_bytes=200_000))])
async def test_size_limit_after_auth(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway)
    reply = await raw.call("echo", {"blob": "y" * 150_000}, id=2)
    assert len(reply["result"]["blob"]) == 150_000
    await raw.send_json(
        {"jsonrpc": "2.0", "id": 3, "method": "echo", "params": {"blob": "z" * 250_000}}
    )
    assert (await raw.wait_closed()).code == 1009


async def test_batch_mixed(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway)
    await raw.send_json(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"a": 1}},
            {"jsonrpc": "2.0", "method": "echo"},
            {"jsonrpc": "2.0", "id": 2, "method": "missing.method"},
            {"foo": "bar"},
            {"jsonrpc": "2.0", "id": 3, "method": "echo", "params": [1]},
        ]
    )
    reply = await raw.receive_json()
    assert isinstance(reply, list)
    by_id = {(r["id"], r.get("error", {}).get("code")): r for r in reply}
    assert by_id[(1, None)]["result"] == {"a": 1}
    assert by_id[(2, -32601)]["error"]["message"] == "Method not found: missing.method"
    assert (None, -32600) in by_id
    assert (3, -32602) in by_id
    assert len(reply) == 4


async def test_notification_only_batch_gets_no_answer(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway)
    await raw.send_json(
        [{"jsonrpc": "2.0", "method": "echo"}, {"jsonrpc": "2.0", "method": "nope"}]
    )
    await raw.send_json({"jsonrpc": "2.0", "method": "nope"})
    await expect_only(raw)


async def test_notifications_are_never_answered_even_when_they_fail(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    async def crash(ctx: object, params: object) -> None:
        raise RuntimeError("boom")

    add_method(gateway, "test.crash", crash)
    raw = await authed(open_raw, gateway)
    for doc in [
        {"jsonrpc": "2.0", "method": "nope.nope"},  # unknown method
        {"jsonrpc": "2.0", "method": "session.list", "params": {"limit": "5"}},  # bad params
        {"jsonrpc": "2.0", "method": "echo", "params": [1, 2]},  # array params
        {"jsonrpc": "2.0", "method": "test.crash"},  # the handler fails
        {"jsonrpc": "2.0", "method": "session.history", "params": {"session_key": "no:such"}},
        {"jsonrpc": "2.0", "method": "connect", "params": {"token": "wrong"}},  # auth fails
    ]:
        await raw.send_json(doc)
        await raw.send_json([doc, doc])
    await expect_only(raw)
    assert (await raw.call("health", id="after"))["result"]["status"] == "ok"


async def test_empty_batch_single_error(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway)
    await raw.send_text("[]")
    reply = await raw.receive_json()
    assert reply == {"jsonrpc": "2.0", "id": None, "error": reply["error"]}
    assert reply["error"]["code"] == -32600


async def test_parse_error(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway)
    await raw.send_text('{"jsonrpc": "2.0", "id": 1, "method": "echo"')
    reply = await raw.receive_json()
    assert reply["id"] is None and reply["error"]["code"] == -32700


# -- concurrency -----------------------------------------------------------------------------


def add_method(gateway: Gateway, name: str, handler: Callable[..., Awaitable[object]]) -> None:
    gateway.registry.add(Method(name, "test method", NoParams, handler, owner_only=False))


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_in_flight=2))])
async def test_in_flight_cap_applies_back_pressure(open_raw: OpenRaw, gateway: Gateway) -> None:
    started: list[int] = []
    release = trio.Event()

    async def block(ctx: object, params: object) -> dict[str, bool]:
        started.append(1)
        await release.wait()
        return {"ok": True}

    add_method(gateway, "test.block", block)
    raw = await authed(open_raw, gateway)
    for i in range(4):
        await raw.send_json({"jsonrpc": "2.0", "id": i, "method": "test.block"})
    await trio.testing.wait_all_tasks_blocked()
    assert len(started) == 2
    release.set()
    replies = [await raw.receive_json() for _ in range(4)]
    assert sorted(r["id"] for r in replies) == [0, 1, 2, 3]
    assert len(started) == 4


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_in_flight=2))])
async def test_paused_reading_is_not_a_dead_peer(
    open_raw: OpenRaw, gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    """At max_in_flight the gateway stops reading, pongs included: long requests (approvals
    waiting for a human) must not get their connection closed for a missing pong."""
    release = trio.Event()

    async def block(ctx: object, params: object) -> dict[str, bool]:
        await release.wait()
        return {"ok": True}

    add_method(gateway, "test.block", block)
    raw = await authed(open_raw, gateway)
    for i in range(3):
        await raw.send_json({"jsonrpc": "2.0", "id": i, "method": "test.block"})
    with trio.move_on_after(300):  # many ping intervals; the client answers every ping
        await raw.receive()
        pytest.fail("nothing should arrive while the requests wait")
    release.set()
    replies = [await raw.receive_json() for _ in range(3)]
    assert sorted(r["id"] for r in replies) == [0, 1, 2]
    assert (await raw.call("health", id=9))["result"]["status"] == "ok"


async def test_responses_may_overtake(open_raw: OpenRaw, gateway: Gateway) -> None:
    release = trio.Event()

    async def block(ctx: object, params: object) -> str:
        await release.wait()
        return "slow"

    add_method(gateway, "test.block", block)
    raw = await authed(open_raw, gateway)
    await raw.send_json({"jsonrpc": "2.0", "id": "slow", "method": "test.block"})
    fast = await raw.call("echo", {"x": 1}, id="fast")
    assert fast["result"] == {"x": 1}
    release.set()
    assert (await raw.receive_json())["id"] == "slow"


async def test_handler_crash_is_internal_error_and_connection_lives(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    async def crash(ctx: object, params: object) -> None:
        raise RuntimeError("secret internals")

    add_method(gateway, "test.crash", crash)
    raw = await authed(open_raw, gateway)
    reply = await raw.call("test.crash", id=5)
    assert reply["error"]["code"] == -32603
    assert "secret internals" not in json.dumps(reply)
    assert (await raw.call("health", id=6))["result"]["status"] == "ok"


@pytest.mark.parametrize("config", [Config(server=ServerConfig(send_queue=4))])
async def test_slow_consumer_closed_1008_never_dropped(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway, lockstep=True)
    reply = await raw.call("events.subscribe", {"patterns": ["flood.*"]}, id=2)
    assert reply["result"]["subscribed"] == ["flood.*"]
    for i in range(50):
        gateway.bus.publish("flood.x", {"i": i})
        await trio.lowlevel.checkpoint()
    seen: list[int] = []

    async def read_until_closed() -> None:
        while True:
            doc = await raw.receive_json()
            seen.append(doc["params"]["data"]["i"])

    with pytest.raises(Closed) as closed:
        await read_until_closed()
    assert closed.value.code == 1008
    assert seen == list(range(len(seen)))  # a prefix: nothing skipped before the close
    assert len(seen) < 50


@pytest.mark.parametrize(
    "config", [Config(server=ServerConfig(send_queue=1024, send_queue_bytes=64 * 1024))]
)
async def test_the_send_queue_is_bounded_by_bytes_too(open_raw: OpenRaw, gateway: Gateway) -> None:
    """Large events fill the queue's bytes long before its frame count: the consumer that does
    not read is closed as slow (1008) with a prefix delivered, instead of the gateway holding
    every frame."""
    raw = await authed(open_raw, gateway, lockstep=True)
    await raw.call("events.subscribe", {"patterns": ["flood.*"]}, id=2)
    pad = "x" * 10_000
    for i in range(50):  # 500 kB, 50 frames: far under 1024 frames, far over 64 KiB
        gateway.bus.publish("flood.x", {"i": i, "pad": pad})
        await trio.lowlevel.checkpoint()
    seen: list[int] = []

    async def read_until_closed() -> None:
        while True:
            doc = await raw.receive_json()
            seen.append(doc["params"]["data"]["i"])

    with pytest.raises(Closed) as closed:
        await read_until_closed()
    assert closed.value.code == 1008
    assert seen == list(range(len(seen)))
    assert len(seen) < 20  # what was queued (64 KiB) plus the frames being written


@pytest.mark.parametrize("config", [Config(server=ServerConfig(send_queue_bytes=64 * 1024))])
async def test_a_reply_larger_than_the_byte_bound_is_still_sent(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    raw = await authed(open_raw, gateway)
    text = "y" * 200_000
    for i in range(3):
        reply = await raw.call("echo", {"text": text}, id=10 + i)
        assert reply["result"]["text"] == text


async def test_ping_timeout_closes_1011(
    open_raw: OpenRaw, gateway: Gateway, patient_clock: trio.testing.MockClock
) -> None:
    """``patient_clock``: opening the gateway waits on threads (the data dir, SQLite), and an
    ``autojump_clock`` would jump past the ping timers meanwhile."""
    opened = trio.current_time()
    raw = await authed(open_raw, gateway)
    # Never answer pings: read raw wsproto events ourselves.
    from wsproto.events import CloseConnection, Ping

    saw_ping = False
    with trio.fail_after(100):
        while True:
            event = await raw.next_event()
            if isinstance(event, Ping):
                saw_ping = True
            if isinstance(event, CloseConnection):
                assert event.code == 1011
                break
    assert saw_ping
    assert 40 <= trio.current_time() - opened < 45


async def test_pings_answered_keep_connection(
    open_raw: OpenRaw, gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    raw = await authed(open_raw, gateway)
    with trio.move_on_after(200):
        await raw.receive()  # answers pings as it goes; nothing else arrives
    assert (await raw.call("health", id=2))["result"]["status"] == "ok"


@contextlib.asynccontextmanager
async def tcp_client(gateway: Gateway, port: int) -> AsyncIterator[RawWebSocket]:
    """A raw client over a real TCP connection, upgraded and authenticated as the owner."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        raw = RawWebSocket(stream)
        assert await raw.handshake() == 101
        await raw.call("connect", {"token": gateway.owner_token})
        yield raw


# -- shutdown --------------------------------------------------------------------------------


async def test_cancelling_serve_closes_clients_1001(data_dir: object) -> None:
    async with open_gateway(Config(), data_dir=data_dir) as gateway, trio.open_nursery() as outer:  # type: ignore[arg-type]
        serving = trio.CancelScope()

        async def serve(task_status: trio.TaskStatus[int]) -> None:
            with serving:
                await gateway.serve("127.0.0.1", 0, task_status=task_status)

        port = await outer.start(serve)
        with trio.fail_after(5):
            async with tcp_client(gateway, port) as raw:
                serving.cancel()
                assert (await raw.wait_closed()).code == 1001


async def test_unencodable_result_is_internal_error(open_raw: OpenRaw, gateway: Gateway) -> None:
    async def bad(ctx: object, params: object) -> object:
        return {"x": object()}

    add_method(gateway, "test.bad_result", bad)
    raw = await authed(open_raw, gateway)
    reply = await raw.call("test.bad_result", id=1)
    assert reply["error"]["code"] == -32603
    assert (await raw.call("health", id=2))["result"]["status"] == "ok"


async def test_connect_as_notification_does_not_authenticate(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    raw = await open_raw()
    await raw.send_json(
        {"jsonrpc": "2.0", "method": "connect", "params": {"token": gateway.owner_token}}
    )
    await expect_only(raw)
    assert (await raw.call("health", id=1))["error"]["code"] == -32000


async def test_events_written_straight_from_the_publisher_stay_framed(data_dir: object) -> None:
    """Over a real socket an event goes into the kernel from the publishing task when it can.
    A client that stops reading makes the kernel take only part of a frame: the rest must go
    out first, before any later frame, or the stream would be garbage."""
    config = Config(server=ServerConfig(send_queue=512, max_message_bytes=1 << 20))
    big = "x" * 200_000
    async with open_gateway(config, data_dir=data_dir) as gateway, trio.open_nursery() as outer:  # type: ignore[arg-type]
        port = await outer.start(gateway.serve, "127.0.0.1", 0)
        with trio.fail_after(10):
            async with tcp_client(gateway, port) as raw:
                await raw.call("events.subscribe", {"patterns": ["bulk.*"]})
                for i in range(60):  # 12 MB: far more than loopback's socket buffers hold
                    gateway.bus.publish("bulk.x", {"i": i, "pad": big})
                    await trio.lowlevel.checkpoint()
                received = []
                while len(received) < 60:
                    doc = await raw.receive_json()
                    received.append((doc["params"]["data"]["i"], doc["params"]["data"]["pad"]))
                assert [i for i, _ in received] == list(range(60))
                assert all(pad == big for _, pad in received)
                assert (await raw.call("health"))["result"]["status"] == "ok"
        outer.cancel_scope.cancel()
