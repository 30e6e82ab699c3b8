"""The public Trio client: calls, errors, events, and resume by seq after a reconnect."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, open_client, open_gateway
from aleph_trio.protocol import AlephError, InvalidParams, MethodNotFound


async def test_errors_are_typed(socket_client: Client) -> None:
    with pytest.raises(MethodNotFound) as info:
        await socket_client.call("no.such")
    assert info.value.code == -32601
    with pytest.raises(InvalidParams) as bad:
        await socket_client.call("logs.tail", {"lines": "3"})
    assert bad.value.data == {
        "errors": [{"path": "$.lines", "message": "expected integer, got string"}]
    }


async def test_wrong_token_raises(url: str) -> None:
    with pytest.raises(AlephError) as info:
        async with open_client(url, token="nope"):
            pass
    assert info.value.code == -32001


async def test_rejects_non_websocket_urls() -> None:
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        async with open_client("http://127.0.0.1:1/"):
            pass


async def test_concurrent_calls_match_by_id(socket_client: Client) -> None:
    results: dict[int, object] = {}

    async def one(i: int) -> None:
        results[i] = await socket_client.call("echo", {"i": i})

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(one, i)
    assert results == {i: {"i": i} for i in range(50)}


async def serve_until(
    gateway: Gateway, port: int = 0, *, task_status: trio.TaskStatus[tuple[int, trio.CancelScope]]
) -> None:
    """Serve until the returned scope is cancelled (the listener and its connections go away)."""
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(gateway.serve, "127.0.0.1", port)
            task_status.started((bound, scope))


async def test_reconnect_resumes_without_loss_or_duplicates(data_dir: Path) -> None:
    """The listener goes away and comes back on the same port; events published meanwhile
    arrive once, in order, through ``since_seq`` replay."""
    async with open_gateway(Config(), data_dir=data_dir) as gateway, trio.open_nursery() as nursery:
        port, scope = await nursery.start(serve_until, gateway)
        with trio.fail_after(20):
            async with open_client(
                f"ws://127.0.0.1:{port}/", token=gateway.owner_token, reconnect=True
            ) as client:
                await client.subscribe(["feed.*"])
                gateway.bus.publish("feed.item", {"n": 0})
                assert (await client.next_event()).data == {"n": 0}
                scope.cancel()  # the listener and its connections go away
                await client.wait_disconnected()
                for n in range(1, 4):
                    gateway.bus.publish("feed.item", {"n": n})
                port2, scope = await nursery.start(serve_until, gateway, port)
                assert port2 == port
                got = [(await client.next_event()).data["n"] for _ in range(3)]
                assert got == [1, 2, 3]
                gateway.bus.publish("feed.item", {"n": 4})
                assert (await client.next_event()).data == {"n": 4}
                assert client.last_seq == gateway.bus.seq
        scope.cancel()


async def run_gateway_until(
    data_dir: Path, *, task_status: trio.TaskStatus[tuple[Gateway, int, trio.CancelScope]]
) -> None:
    """A gateway of its own, serving until the returned scope is cancelled; then it closes."""
    async with open_gateway(Config(), data_dir=data_dir) as gateway, trio.open_nursery() as inner:
        port, scope = await inner.start(serve_until, gateway)
        task_status.started((gateway, port, scope))


async def test_reconnect_after_restart_signals_resync(tmp_path: Path) -> None:
    """A new gateway process (new boot_id) cannot replay: the client says so with client.resync."""
    async with trio.open_nursery() as nursery:
        closed = trio.Event()

        async def first_life(
            task_status: trio.TaskStatus[tuple[Gateway, int, trio.CancelScope]],
        ) -> None:
            await run_gateway_until(tmp_path, task_status=task_status)
            closed.set()

        first, port, scope = await nursery.start(first_life)
        with trio.fail_after(20):
            async with open_client(
                f"ws://127.0.0.1:{port}/", token=first.owner_token, reconnect=True
            ) as client:
                await client.subscribe(["feed.*"])
                boot = client.boot_id
                scope.cancel()
                await client.wait_disconnected()
                await closed.wait()  # the first gateway is gone before the next one opens
                async with open_gateway(Config(), data_dir=tmp_path) as second:
                    _, scope2 = await nursery.start(serve_until, second, port)
                    event = await client.next_event()
                    assert event.topic == "client.resync"
                    assert event.data == {"reason": "gateway restarted"}
                    assert client.boot_id == second.bus.boot_id != boot
                    second.bus.publish("feed.item", {"n": 1})
                    assert (await client.next_event()).data == {"n": 1}
                    scope2.cancel()


async def test_calls_made_while_reconnecting_wait_for_authentication(data_dir: Path) -> None:
    """A call made while the connection is down goes out once the client has authenticated
    again, not before (the gateway would answer it -32000)."""
    async with open_gateway(Config(), data_dir=data_dir) as gateway, trio.open_nursery() as nursery:
        port, scope = await nursery.start(serve_until, gateway)
        with trio.fail_after(20):
            async with open_client(
                f"ws://127.0.0.1:{port}/", token=gateway.owner_token, reconnect=True
            ) as client:
                await client.subscribe(["feed.*"])
                scope.cancel()
                await client.wait_disconnected()
                results: list[object] = []

                async def call_while_down() -> None:
                    results.append(await client.call("logs.tail", {"lines": 0, "follow": True}))

                async with trio.open_nursery() as callers:
                    callers.start_soon(call_while_down)
                    await trio.testing.wait_all_tasks_blocked()
                    _, scope = await nursery.start(serve_until, gateway, port)
                assert results == [{"entries": []}]
                gateway.bus.publish("feed.item", {"n": 1})  # resubscribed as well
                assert (await client.next_event()).data == {"n": 1}
        scope.cancel()
