"""Accepting WebSockets: TCP listeners, the HTTP upgrade (path and Origin checks), hand-off."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from ..kernel import component_logger
from ..web import MAX_HEAD_BYTES, WS_PATHS
from ._connection import Connection
from ._websocket import RECEIVE_CHUNK, TransportClosed, WebSocketTransport

if TYPE_CHECKING:
    from .._gateway import Gateway

__all__ = ["is_websocket_upgrade", "origin_allowed", "read_head", "serve_stream"]

log = component_logger("server")


def origin_allowed(origin: str | None, allowed: Sequence[str], host: str = "") -> bool:
    """Browsers send ``Origin``; it must be listed (``"*"`` allows any) or be the gateway's own
    (the Control UI at ``/ui/``). Other clients send none."""
    if origin is None:
        return True
    return "*" in allowed or origin in allowed or _own_origin(origin, host)


def _own_origin(origin: str, host: str) -> bool:
    """``origin`` is this gateway's own, reached by a loopback address or ``localhost``.

    Only there: a page on any other name could be the attacker's own, pointed at this address
    by DNS after it loaded (DNS rebinding), and would then look same-origin. Serving the UI
    under another name means listing that origin in ``server.allowed_origins``."""
    if origin not in (f"http://{host}", f"https://{host}"):
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _address(stream: trio.abc.Stream) -> str:
    socket = getattr(stream, "socket", None)
    if socket is None:
        return "in-process"
    try:
        peer = socket.getpeername()
    except OSError:
        return "unknown"
    if isinstance(peer, tuple):
        return str(peer[0])
    return str(peer) or "local"


async def read_head(stream: trio.abc.Stream) -> bytes | None:
    """The bytes of a request head (up to its blank line, perhaps a little more); ``None`` if the
    peer closed first. A head longer than ``MAX_HEAD_BYTES`` is returned unfinished, for the
    HTTP side to refuse (431)."""
    head = bytearray()
    while b"\r\n\r\n" not in head:
        if len(head) > MAX_HEAD_BYTES:
            break
        try:
            data = await stream.receive_some(RECEIVE_CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        if not data:
            return None
        head += data
    return bytes(head)


def is_websocket_upgrade(head: bytes) -> bool:
    """Whether a request head asks for a WebSocket (``Upgrade: websocket``); the WebSocket
    handshake then checks the rest of it."""
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


async def _upgrade(
    transport: WebSocketTransport, allowed_origins: Sequence[str], deadline: float
) -> bool:
    """Answer the HTTP upgrade; ``False`` when there is no WebSocket to serve: refused, nothing
    or an unfinished request by ``deadline``, or the peer gone before the answer."""
    with trio.move_on_at(deadline):
        try:
            request = await transport.receive_handshake()
            if request is None:
                return False
            if request.path not in WS_PATHS:
                await transport.reject(404, "Not found: the WebSocket endpoint is / or /ws\n")
                return False
            if not origin_allowed(request.origin, allowed_origins, request.host):
                await transport.reject(403, "Forbidden: origin not allowed\n")
                return False
            await transport.accept()
        except TransportClosed:
            return False
        return transport.is_open
    return False


async def serve_stream(gateway: Gateway, stream: trio.abc.Stream) -> None:
    """Serve one stream: a WebSocket upgrade runs a :class:`Connection` until it closes; any
    other request goes to the gateway's HTTP routes."""
    config = gateway.config
    # auth.handshake_timeout_s bounds the HTTP upgrade as it bounds `connect` after it.
    deadline = trio.current_time() + config.auth.handshake_timeout_s
    head = None
    with trio.move_on_at(deadline):
        head = await read_head(stream)
    if head is None:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        return
    if not is_websocket_upgrade(head):
        await gateway.web.serve(stream, head)
        return
    transport = WebSocketTransport(
        stream, max_message_size=config.server.max_message_bytes, initial=head
    )
    try:
        if not await _upgrade(transport, config.server.allowed_origins, deadline):
            return
        connection = Connection(gateway, transport, address=_address(stream))
        with gateway.track(connection):
            await connection.run()
    finally:
        await transport.abort()


async def serve_listeners(
    gateway: Gateway,
    listeners: list[trio.SocketListener],
    connections: trio.Nursery,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on every listener until cancelled; each connection runs in ``connections``,
    so cancelling the accepting leaves the connections open."""

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await serve_stream(gateway, stream)
        except Exception:
            # One broken connection must not take the listener down with it.
            log.exception("connection handler crashed")

    await trio.serve_listeners(
        handle, listeners, handler_nursery=connections, task_status=task_status
    )
