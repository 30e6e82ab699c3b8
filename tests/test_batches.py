"""Batches are bounded (``server.max_batch``), their elements count against
``server.max_in_flight`` like separate requests, and no response (single or batch) passes
``server.max_message_bytes``: the element that would is answered with ``-32603`` instead."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from aleph_trio import Config, Gateway
from aleph_trio.kernel import ServerConfig
from aleph_trio.rpc import Method, NoParams
from rawws import RawWebSocket

OpenRaw = Callable[..., Awaitable[RawWebSocket]]


async def authed(open_raw: OpenRaw, gateway: Gateway, **kw: Any) -> RawWebSocket:
    raw = await open_raw(**kw)
    reply = await raw.call("connect", {"token": gateway.owner_token}, id="auth")
    assert reply["result"]["authenticated"] is True
    return raw


def add_method(gateway: Gateway, name: str, handler: Callable[..., Awaitable[object]]) -> None:
    gateway.registry.add(Method(name, "test method", NoParams, handler, owner_only=False))


def call(method: str, id_: object, params: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        doc["params"] = params
    return doc


# -- size ----------------------------------------------------------------------------------------


async def test_batch_over_the_limit_is_refused_whole(open_raw: OpenRaw, gateway: Gateway) -> None:
    ran: list[int] = []

    async def count(ctx: object, params: object) -> bool:
        ran.append(1)
        return True

    add_method(gateway, "test.count", count)
    limit = gateway.config.server.max_batch
    assert limit == 100
    with trio.fail_after(10):
        raw = await authed(open_raw, gateway)
        await raw.send_json([call("test.count", i) for i in range(limit + 1)])
        reply = await raw.receive_json()
        assert reply == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32600,
                "message": f"Invalid request: a batch may hold at most {limit} elements"
                f" (this one has {limit + 1})",
                "data": {"max_batch": limit},
            },
        }
        await raw.send_json([call("test.count", i) for i in range(limit)])
        replies = await raw.receive_json()
        assert sorted(r["id"] for r in replies) == list(range(limit))
        assert len(ran) == limit  # none of the refused batch ran


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_batch=3))])
async def test_max_batch_is_configurable(open_raw: OpenRaw, gateway: Gateway) -> None:
    with trio.fail_after(10):
        raw = await authed(open_raw, gateway)
        await raw.send_json([call("echo", i) for i in range(4)])
        reply = await raw.receive_json()
        assert reply["error"]["data"] == {"max_batch": 3}
        await raw.send_json([call("echo", i) for i in range(3)])
        assert len(await raw.receive_json()) == 3


# -- in-flight slots -----------------------------------------------------------------------------


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_in_flight=3))])
async def test_batch_elements_hold_in_flight_slots(open_raw: OpenRaw, gateway: Gateway) -> None:
    started: list[object] = []
    release = trio.Event()

    async def block(ctx: object, params: object) -> bool:
        started.append(1)
        await release.wait()
        return True

    add_method(gateway, "test.block", block)
    with trio.fail_after(10):
        raw = await authed(open_raw, gateway)
        await raw.send_json([call("test.block", i) for i in range(5)])
        await raw.send_json(call("test.block", "single"))
        await trio.testing.wait_all_tasks_blocked()
        assert len(started) == 3  # the batch holds every slot; the single request waits
        release.set()
        replies: list[Any] = [await raw.receive_json() for _ in range(2)]
        batch = next(r for r in replies if isinstance(r, list))
        assert sorted(r["id"] for r in batch) == list(range(5))
        assert any(isinstance(r, dict) and r["id"] == "single" for r in replies)
        assert len(started) == 6
        in_flight = next(iter(gateway.connections.values())).statistics().in_flight
        assert in_flight == 0


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_in_flight=2))])
async def test_batch_larger_than_max_in_flight_runs_in_turns(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    running = 0
    most = 0

    async def busy(ctx: object, params: object) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        running -= 1
        return True

    add_method(gateway, "test.busy", busy)
    with trio.fail_after(10):
        raw = await authed(open_raw, gateway)
        await raw.send_json([call("test.busy", i) for i in range(20)])
        replies = await raw.receive_json()
        assert sorted(r["id"] for r in replies) == list(range(20))
        assert most == 2


# -- response size -------------------------------------------------------------------------------

LIMIT = 4096


async def blob(ctx: object, params: object) -> str:
    return "b" * 1500


async def huge(ctx: object, params: object) -> str:
    return "h" * 10_000


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_message_bytes=LIMIT))])
async def test_response_over_the_limit_is_an_error(open_raw: OpenRaw, gateway: Gateway) -> None:
    add_method(gateway, "test.huge", huge)
    add_method(gateway, "test.blob", blob)
    with trio.fail_after(10):
        raw = await authed(open_raw, gateway)
        reply = await raw.call("test.huge", id=7)
        size = len(
            json.dumps({"jsonrpc": "2.0", "id": 7, "result": "h" * 10_000}, separators=(",", ":"))
        )
        assert reply == {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {
                "code": -32603,
                "message": f"Internal error: response too large ({size} bytes, limit {LIMIT})",
                "data": {"reason": "limit", "bytes": size, "limit": LIMIT},
            },
        }
        assert (await raw.call("test.blob", id=8))["result"] == "b" * 1500


@pytest.mark.parametrize("config", [Config(server=ServerConfig(max_message_bytes=LIMIT))])
async def test_batch_response_stays_within_the_limit(open_raw: OpenRaw, gateway: Gateway) -> None:
    add_method(gateway, "test.blob", blob)
    with trio.fail_after(10):
        raw = await authed(open_raw, gateway)
        await raw.send_json([call("test.blob", i) for i in range(4)] + [call("echo", "small")])
        message = await raw.receive()
        assert isinstance(message, str)
        replies = json.loads(message)
        results = [r for r in replies if "result" in r]
        errors = [r for r in replies if "error" in r]
        assert len(replies) == 5
        assert {"jsonrpc": "2.0", "id": "small", "result": {}} in results
        assert (
            sum(1 for r in results if r["result"] == "b" * 1500) == 2
        )  # two of 1.5 KB fit in 4 KB
        assert len(errors) == 2
        for error in errors:
            assert error["error"]["code"] == -32603
            assert error["error"]["message"].startswith(
                "Internal error: batch response too large with this element"
            )
            assert error["error"]["data"]["limit"] == LIMIT
        assert len(message.encode()) <= LIMIT + 2 * 200  # short errors may follow the limit
