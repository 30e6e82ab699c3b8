"""System methods (PROTOCOL §18) and the registry behind commands.list."""

from __future__ import annotations

import logging
import platform

import pytest
import trio

from aleph_trio import Client, Gateway
from aleph_trio.auth import Principal
from aleph_trio.kernel import ValidationFailed, convert
from aleph_trio.protocol import AlephError
from runhelp import assert_quiet


async def test_health(client: Client, gateway: Gateway) -> None:
    result = await client.call("health")
    assert result["status"] == "ok"
    assert result["connections"] == 1
    assert result["uptime_s"] >= 0
    assert result["services"] == {
        "browser": "running",
        "cron": "running",
        "plugins": "running",
        "poe": "running",
        "runs": "running",
        "wizards": "running",
    }
    assert result["runs"] == {"running": 0, "queued": 0}
    async with gateway.connect():
        assert (await client.call("health"))["connections"] == 2


@pytest.mark.parametrize(
    "params",
    [{}, {"a": 1}, {"n": 2**80, "f": 1.5, "s": "é\u2028", "l": [None, True, {"x": []}]}],
)
async def test_echo_returns_params_exactly(client: Client, params: dict[str, object]) -> None:
    assert await client.call("echo", params) == params


async def test_echo_without_params(client: Client) -> None:
    assert await client.call("echo") == {}


async def test_version(client: Client) -> None:
    result = await client.call("version")
    assert result["protocol"] == 1
    assert result["python"] == platform.python_version()
    assert result["trio"] == trio.__version__
    assert isinstance(result["version"], str) and isinstance(result["build"], str)


async def test_methods_without_params_reject_unknown_ones(client: Client) -> None:
    with pytest.raises(AlephError) as info:
        await client.call("health", {"verbose": True})
    assert info.value.code == -32602
    assert info.value.data == {"errors": [{"path": "$.verbose", "message": "unknown field"}]}


async def test_logs_levels_and_set_level(client: Client) -> None:
    levels = (await client.call("logs.levels"))["levels"]
    assert levels["gateway"] == "info"
    assert {"server", "auth", "events", "config", "rpc"} <= set(levels)
    assert await client.call("logs.set_level", {"component": "auth", "level": "debug"}) == {
        "set": True
    }
    assert (await client.call("logs.levels"))["levels"]["auth"] == "debug"
    assert logging.getLogger("aleph_trio.auth").getEffectiveLevel() == logging.DEBUG
    for bad in (
        {"component": "auth", "level": "loud"},
        {"component": "nope", "level": "info"},
        {"component": "auth"},
    ):
        with pytest.raises(AlephError) as info:
            await client.call("logs.set_level", bad)
        assert info.value.code == -32602


async def test_logs_tail_and_follow(client: Client) -> None:
    log = logging.getLogger("aleph_trio.rpc")
    for i in range(5):
        log.warning("entry %d", i)
    tail = (await client.call("logs.tail", {"lines": 3}))["entries"]
    assert [e["message"] for e in tail] == ["entry 2", "entry 3", "entry 4"]
    assert tail[0]["level"] == "warning" and tail[0]["component"] == "rpc"
    assert tail[0]["ts"].endswith("Z")
    await client.call("logs.tail", {"lines": 0, "follow": True})
    log.error("live one")
    event = await client.next_event(timeout=5)
    assert event.topic == "logs.entry"
    assert event.data["message"] == "live one" and event.data["level"] == "error"
    with pytest.raises(AlephError):
        await client.call("logs.tail", {"lines": 1001})


async def test_logs_entry_only_to_followers(gateway: Gateway) -> None:
    async with gateway.connect() as follower, gateway.connect() as other:
        await follower.call("logs.tail", {"follow": True})
        await other.call("events.subscribe", {"patterns": ["**"]})
        logging.getLogger("aleph_trio.rpc").warning("for followers")
        assert (await follower.next_event(timeout=5)).data["message"] == "for followers"
        await assert_quiet(other, gateway.bus, subscribe=False)


async def test_commands_list_matches_registry_and_validation(
    client: Client, gateway: Gateway
) -> None:
    commands = (await client.call("commands.list"))["commands"]
    names = [c["method"] for c in commands]
    assert names == sorted(m.name for m in gateway.registry)
    assert {
        "connect",
        "health",
        "echo",
        "version",
        "logs.levels",
        "logs.set_level",
        "logs.tail",
        "commands.list",
        "events.subscribe",
        "events.unsubscribe",
        "events.list",
        "config.get",
        "config.reload",
        "config.validate",
        "config.schema",
        "session.list",
        "session.history",
        "session.delete",
        "session.compact",
        "agent.run",
        "agent.status",
        "agent.cancel",
        "agent.list",
        "agent.respondToInput",
        "chat.send",
        "chat.abort",
        "exec.approval.request",
        "exec.approval.resolve",
        "exec.approvals.get",
        "exec.approvals.set",
        "exec.approvals.pending",
        "chat.history",
        "chat.clear",
        "memory.search",
        "memory.store",
        "memory.delete",
        "models.list",
        "models.get",
        "models.capabilities",
        "cron.create",
        "cron.list",
        "cron.get",
        "cron.delete",
        "cron.trigger",
        "cron.pause",
        "cron.resume",
        "cron.status",
        "identity.get",
        "identity.set",
        "identity.clear",
        "identity.list",
        "guests.createInvitation",
        "guests.listPending",
        "guests.revokeInvitation",
        "skills.list",
        "skills.install",
        "markdown_skills.load",
        "markdown_skills.reload",
        "markdown_skills.list",
        "markdown_skills.unload",
        "workspace.create",
        "workspace.list",
        "workspace.get",
        "workspace.update",
        "workspace.archive",
        "services.list",
        "services.start",
        "services.stop",
        "services.status",
        "mcp.list_pending_approvals",
        "mcp.respond_approval",
        "mcp.cancel_approval",
        "plugins.list",
        "plugins.load",
        "plugins.unload",
        "plugins.enable",
        "plugins.disable",
        "plugins.status",
        "poe.prepare",
        "poe.pending",
        "poe.sign",
        "poe.reject",
        "poe.run",
        "poe.status",
        "poe.cancel",
        "poe.list",
        "wizard.start",
        "wizard.answer",
        "wizard.next",
        "wizard.cancel",
        "wizard.status",
        "browser.navigate",
        "browser.click",
        "browser.type",
        "browser.screenshot",
        "browser.evaluate",
        "browser.snapshot",
    } == set(names)
    by_name = {c["method"]: c for c in commands}
    tail = by_name["logs.tail"]["params"]
    assert tail["properties"]["lines"]["maximum"] == 1000
    assert tail["additionalProperties"] is False
    assert by_name["config.get"]["owner_only"] is True
    assert by_name["health"]["owner_only"] is False
    for method in gateway.registry:
        if method.params is not None:
            schema_required = set(method.schema.get("required", []))
            try:
                convert({}, method.params)
                accepts_empty = True
            except ValidationFailed:
                accepts_empty = False
            assert accepts_empty == (not schema_required), method.name


def test_guest_permissions() -> None:
    guest = Principal("guest", "g1", ("chat.*", "health"))
    assert guest.may_call("chat.send", owner_only=False)
    assert guest.may_call("health", owner_only=False)
    assert not guest.may_call("chat.send.x", owner_only=False)
    assert not guest.may_call("echo", owner_only=False)
    assert not guest.may_call("config.get", owner_only=True)
    assert Principal("owner", "o").may_call("config.get", owner_only=True)
