"""Every registered method, walked as a guest allowed ``["*"]`` and as the owner, over sockets.

The owner-only list of PROTOCOL §4 is written once, below, as globs. A method matching it must
be refused to the guest (``-32002``) whatever the guest's globs say; every other method must not
be refused for its role (it may still fail on its empty params). The walk iterates the real
registry, so a method added later with a wrong (or a missing) declaration fails here.
"""

from __future__ import annotations

import fnmatch

import pytest

from aleph_trio import Client, Gateway, open_client
from aleph_trio.protocol import AlephError

#: PROTOCOL §4: owner-only whatever the invitation says ...
OWNER_ONLY = (
    "config.*",
    "exec.approval.resolve",
    "exec.approvals.*",
    "guests.*",
    "plugins.*",
    "services.*",
    "skills.install",
    "markdown_skills.load",
    "markdown_skills.unload",
    "logs.set_level",
    "workspace.create",
    "workspace.update",
    "workspace.archive",
    "identity.set",
    "identity.clear",
    "cron.create",
    "cron.delete",
    "cron.pause",
    "cron.resume",
    "cron.trigger",
    "mcp.respond_approval",
    "mcp.cancel_approval",
    "poe.sign",
    "poe.reject",
)
#: ... except these.
EXCEPT = ("config.schema",)

PERMISSION_DENIED = -32002


def owner_only(method: str) -> bool:
    if method in EXCEPT:
        return False
    return any(fnmatch.fnmatchcase(method, glob) for glob in OWNER_ONLY)


async def code_of(client: Client, method: str) -> int | None:
    """The error code of calling ``method`` with empty params, ``None`` when it answered."""
    try:
        await client.call(method, {})
    except AlephError as error:
        return error.code
    return None


def test_the_list_reads_as_the_protocol_says() -> None:
    assert owner_only("config.get") and owner_only("exec.approvals.set")
    assert owner_only("plugins.load") and owner_only("cron.trigger")
    assert not owner_only("config.schema") and not owner_only("cron.list")
    assert not owner_only("exec.approval.request") and not owner_only("workspace.list")


async def test_every_method_declares_its_role_as_the_protocol_says(gateway: Gateway) -> None:
    wrong = [m.name for m in gateway.registry if m.owner_only != owner_only(m.name)]
    assert wrong == []


async def test_every_method_walked_as_a_guest_with_star(
    gateway: Gateway, url: str, socket_client: Client
) -> None:
    invited = await socket_client.call("guests.createInvitation", {"permissions": ["*"]})
    methods = [m.name for m in gateway.registry]
    assert len(methods) >= 50 and "guests.createInvitation" in methods
    denied_to_guest: list[str] = []
    async with open_client(url, token=invited["token"]) as guest:
        assert guest.session is not None and guest.session["role"] == "guest"
        for method in methods:
            if await code_of(guest, method) == PERMISSION_DENIED:
                denied_to_guest.append(method)
        assert (await guest.call("health"))["status"] == "ok"  # still connected
    assert denied_to_guest == [m for m in methods if owner_only(m)]
    assert len(denied_to_guest) >= 15
    denied_to_owner = [m for m in methods if await code_of(socket_client, m) == PERMISSION_DENIED]
    assert denied_to_owner == []


@pytest.mark.parametrize("granted", [["health"], ["chat.*"], ["config.*", "guests.*", "**"]])
async def test_globs_limit_a_guest(
    gateway: Gateway, url: str, socket_client: Client, granted: list[str]
) -> None:
    invited = await socket_client.call("guests.createInvitation", {"permissions": granted})
    async with open_client(url, token=invited["token"]) as guest:
        for method in gateway.registry:
            allowed = method.pre_auth or (  # connect: anyone may authenticate again
                not owner_only(method.name)
                and any(fnmatch.fnmatchcase(method.name, g) for g in granted)
            )
            assert (await code_of(guest, method.name) == PERMISSION_DENIED) != allowed, method.name
