"""``connect`` (PROTOCOL §4)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
import trio
from msgspec import Meta

from .._version import __version__
from ..auth import MAX_FAILURES_PER_CONNECTION, OWNER
from ..kernel import component_logger
from ..protocol import AuthFailed
from ._context import CallContext
from ._registry import Namespace

ns = Namespace()
log = component_logger("auth")

PROTOCOL_VERSION = 1


@attrs.frozen
class ConnectParams:
    token: Annotated[str, Meta(max_length=4096)] = ""
    client_id: Annotated[str, Meta(max_length=256)] | None = None


@ns.method(
    "connect",
    ConnectParams,
    description="Authenticate this connection with the owner token or a guest invitation token.",
    pre_auth=True,
    owner_only=False,
)
async def connect(ctx: CallContext, params: ConnectParams) -> dict[str, Any]:
    gateway = ctx.gateway
    peer = ctx.peer
    if not gateway.config.auth.require_auth:
        principal = OWNER
    else:
        if peer.auth_failures >= MAX_FAILURES_PER_CONNECTION:
            # Pipelined or batched attempts past the limit: no more tokens are checked here.
            raise AuthFailed(
                "Authentication failed: too many failed attempts on this connection,"
                " which is being closed"
            )
        found = gateway.auth.authenticate(params.token)  # constant time for the owner token
        if found is None:
            count = peer.note_auth_failure()
            delay = gateway.failures.record_failure(peer.address, trio.current_time())
            log.warning("failed connect from %s (%d on this connection)", peer.address, count)
            # Guessing gets slower; the right token, checked above, never waits.
            await trio.sleep(delay)
            raise AuthFailed("Authentication failed: the token is wrong, expired or revoked")
        principal = found
        if principal.invitation_id is not None:
            await gateway.guests.mark_used(principal.invitation_id)
    peer.authenticate(principal, params.client_id)
    log.debug(
        "%s (%s) authenticated as %s %s",
        peer.connection_id,
        peer.address,
        principal.role,
        principal.principal_id,
    )
    return {
        "authenticated": True,
        "connection_id": peer.connection_id,
        "client_id": params.client_id,
        "role": principal.role,
        "permissions": list(principal.permissions),
        "server": {"name": "aleph_trio", "version": __version__, "protocol": PROTOCOL_VERSION},
        "boot_id": gateway.bus.boot_id,
        "seq": gateway.bus.seq,
    }
