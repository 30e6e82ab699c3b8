"""Roles through the guest seam: a resolver hands out a guest principal (PROTOCOL §4, §6.2)."""

from __future__ import annotations

import pytest

from aleph_trio import Gateway
from aleph_trio.auth import Principal
from aleph_trio.protocol import AlephError
from runhelp import assert_quiet

GUEST = Principal("guest", "guest-1", ("health", "events.*", "version"), invitation_id="inv_1")


@pytest.fixture
def with_guest(gateway: Gateway) -> Gateway:
    gateway.auth.guest_resolvers.append(lambda token: GUEST if token == "guest-token" else None)
    return gateway


async def test_guest_connects_with_its_permissions(with_guest: Gateway) -> None:
    async with with_guest.connect(token="guest-token") as guest:
        assert guest.session is not None
        assert guest.session["role"] == "guest"
        assert guest.session["permissions"] == ["health", "events.*", "version"]
        assert (await guest.call("health"))["status"] == "ok"
        for method in ("echo", "logs.tail", "session.list"):  # not granted
            with pytest.raises(AlephError) as info:
                await guest.call(method)
            assert info.value.code == -32002
        for method in ("config.get", "logs.set_level"):  # owner-only whatever is granted
            with pytest.raises(AlephError) as info:
                await guest.call(
                    method,
                    {"component": "rpc", "level": "info"} if method == "logs.set_level" else None,
                )
            assert info.value.code == -32002


async def test_guest_sees_only_its_own_events(with_guest: Gateway) -> None:
    bus = with_guest.bus
    async with with_guest.connect(token="guest-token") as guest:
        await guest.call("events.subscribe", {"patterns": ["**"]})
        bus.publish("logs.entry", {"message": "owner only"})
        bus.publish("exec.approval_requested", {"id": "a"})
        bus.publish("stream.chunk", {"run_id": "r1"}, run_id="r1", principal_id="someone-else")
        bus.publish("stream.chunk", {"run_id": "r2"}, run_id="r2", principal_id="guest-1")
        event = await guest.next_event(timeout=5)
        assert event.data == {"run_id": "r2"}
        await assert_quiet(guest, bus, subscribe=False, run_id="r2", principal_id="guest-1")


async def test_owner_sees_everything(with_guest: Gateway) -> None:
    async with with_guest.connect() as owner:
        await owner.call("events.subscribe", {"patterns": ["**"]})
        with_guest.bus.publish("exec.approval_requested", {"id": "a"})
        with_guest.bus.publish(
            "stream.chunk", {"run_id": "r2"}, run_id="r2", principal_id="guest-1"
        )
        assert (await owner.next_event(timeout=5)).topic == "exec.approval_requested"
        assert (await owner.next_event(timeout=5)).data == {"run_id": "r2"}
