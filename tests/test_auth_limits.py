"""Token guessing is slowed down per address and capped per connection, and the right token is
never refused or delayed (PROTOCOL §4 as docs/design.md "Hardening" settles it)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from aleph_trio import Config, Gateway
from aleph_trio.kernel import AuthConfig
from rawws import Closed, RawWebSocket

OpenRaw = Callable[..., Awaitable[RawWebSocket]]
ADDRESS = "in-process"  # what the memory streams of ``open_raw`` report as the peer address


def connect_doc(token: str, id_: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": id_, "method": "connect", "params": {"token": token}}


async def timed_connect(raw: RawWebSocket, token: str, id_: object) -> tuple[dict, float]:  # type: ignore[type-arg]
    start = trio.current_time()
    reply = await raw.call("connect", {"token": token}, id=id_)
    return reply, trio.current_time() - start


async def test_thirty_failures_then_the_right_token_is_accepted_at_once(
    open_raw: OpenRaw, gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    failures = 0
    with trio.fail_after(120):
        while failures < 30:
            # Each connection is closed after 5 failures, or by the handshake timeout once the
            # answers are slow.
            raw = await open_raw()
            with contextlib.suppress(Closed):
                while failures < 30:
                    reply = await raw.call("connect", {"token": "guess"}, id=failures)
                    assert reply["error"]["code"] == -32001
                    failures += 1
        assert gateway.failures.recent(ADDRESS, trio.current_time()) >= 30
        owner = await open_raw()
        reply, waited = await timed_connect(owner, gateway.owner_token, "owner")
        assert reply["result"]["role"] == "owner"
        assert waited == 0
        assert (await owner.call("health", id=2))["result"]["status"] == "ok"


@pytest.mark.parametrize(
    "config", [Config(auth=AuthConfig(failures_per_minute=3, failure_delay_max_s=2.0))]
)
async def test_failures_past_the_allowance_are_answered_later_and_later(
    open_raw: OpenRaw, gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    waits: list[float] = []
    with trio.fail_after(120):
        for _ in range(2):
            raw = await open_raw()
            for attempt in range(5):
                reply, waited = await timed_connect(raw, "guess", attempt)
                assert reply["error"]["code"] == -32001
                waits.append(waited)
        assert waits == [0, 0, 0, 0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
        # while the failures are answered slowly, the owner is not
        owner = await open_raw()
        reply, waited = await timed_connect(owner, gateway.owner_token, "owner")
        assert "result" in reply and waited == 0
        # a minute without failures: answered at once again
        await trio.sleep(61)
        raw = await open_raw()
        reply, waited = await timed_connect(raw, "guess", "later")
        assert reply["error"]["code"] == -32001 and waited == 0


async def test_a_batch_of_connects_checks_at_most_five_tokens(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    """Every attempt in a batch counts: the first five wrong tokens are checked, the rest are
    refused without a check, and the connection is closed after the answer."""
    with trio.fail_after(10):
        raw = await open_raw()
        batch = [connect_doc(f"guess-{i}", i) for i in range(100)]
        await raw.send_text(json.dumps(batch))
        replies = await raw.receive_json()
        assert sorted(r["id"] for r in replies) == list(range(100))
        assert {r["error"]["code"] for r in replies} == {-32001}
        refused = [r for r in replies if "closed" in r["error"]["message"]]
        assert len(refused) == 95
        assert gateway.failures.recent(ADDRESS, trio.current_time()) == 5
        assert (await raw.wait_closed()).code == 1008


async def test_pipelined_connects_check_at_most_five_tokens(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    with trio.fail_after(10):
        raw = await open_raw()
        for i in range(12):
            await raw.send_json(connect_doc(f"guess-{i}", i))
        replies = []

        async def read_until_closed() -> None:
            while True:
                replies.append(await raw.receive_json())

        with pytest.raises(Closed) as closed:
            await read_until_closed()
        assert closed.value.code == 1008
        assert replies  # some are answered before the close, and every answer is a refusal
        assert all(r["error"]["code"] == -32001 for r in replies)
        assert gateway.failures.recent(ADDRESS, trio.current_time()) == 5
