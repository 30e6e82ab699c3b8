"""A small Trio client for the gateway: calls, notifications, events, and resume after reconnect.

::

    async with open_client("ws://127.0.0.1:18790", token=token) as client:
        print(await client.call("health"))
        await client.subscribe(["agent.*"])
        async for event in client.events():
            print(event.topic, event.data)

With ``reconnect=True`` a dropped connection is re-established with backoff; the client
authenticates again and re-subscribes with ``since_seq`` so no event is lost or doubled, and
calls made meanwhile wait until it has. If the
gateway restarted (new ``boot_id``) or events were lost from its buffer, a synthetic event with
topic ``client.resync`` tells the application to reload its state.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any, final

import attrs
import msgspec
import trio
import trio_websocket

from .protocol import AlephError, error_from_object

__all__ = ["Client", "ClientEvent", "ConnectionLost", "open_client", "open_stream_client"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class ConnectionLost(Exception):
    """The connection went away before the answer arrived."""


@attrs.frozen
class ClientEvent:
    topic: str
    seq: int | None
    ts: str | None
    data: dict[str, Any]


@final
class Client:
    """JSON-RPC over one (re)connectable WebSocket. Create with :func:`open_client`."""

    def __init__(self, *, event_buffer: int = 10_000) -> None:
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._events_send, self._events_recv = trio.open_memory_channel[ClientEvent](event_buffer)
        self._connected = trio.Event()
        #: Set once the current connection may carry the application's calls: at once for a
        #: first connection, after authenticating and resubscribing for a reconnection.
        self._ready = trio.Event()
        self._resuming: trio.lowlevel.Task | None = None
        self.boot_id: str | None = None
        self.last_seq: int | None = None
        self.patterns: list[str] = []
        self.session: dict[str, Any] | None = None
        self._token: str | None = None
        self._client_id: str | None = None
        self._closing = False
        self._disconnected = trio.Event()

    # -- calls -------------------------------------------------------------------------------

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = math.inf
    ) -> Any:
        """Call ``method`` and return its result; an error answer raises :class:`AlephError`."""
        with trio.fail_after(timeout):
            ws = await self._usable_socket()
            request_id = next(self._ids)
            send, recv = trio.open_memory_channel[dict[str, Any]](1)
            self._pending[request_id] = send
            try:
                message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
                if params is not None:
                    message["params"] = params
                try:
                    await ws.send_message(_encoder.encode(message).decode())
                except trio_websocket.ConnectionClosed:
                    raise ConnectionLost(f"connection closed while sending {method}") from None
                try:
                    reply = await recv.receive()
                except trio.EndOfChannel:
                    raise ConnectionLost(
                        f"connection closed before {method} was answered"
                    ) from None
            finally:
                self._pending.pop(request_id, None)
        if "error" in reply:
            raise error_from_object(reply["error"])
        return reply.get("result")

    async def _usable_socket(self) -> trio_websocket.WebSocketConnection:
        """The socket a call may use: once resumed, except for the resumption's own calls."""
        while True:
            if trio.lowlevel.current_task() is self._resuming:
                await self._connected.wait()
            else:
                ready = self._ready
                await ready.wait()
                if ready is not self._ready:  # that connection went away meanwhile
                    continue
            if self._ws is not None:
                return self._ws
            await trio.lowlevel.checkpoint()

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a notification (no answer will come)."""
        await self._connected.wait()
        assert self._ws is not None
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._ws.send_message(_encoder.encode(message).decode())

    async def send_raw(self, text: str | bytes) -> None:
        """Send a frame as is (for tests and tools)."""
        await self._connected.wait()
        assert self._ws is not None
        await self._ws.send_message(text)

    async def authenticate(self, token: str | None, client_id: str | None = None) -> dict[str, Any]:
        """Call ``connect``; the token is kept to authenticate again after a reconnect."""
        self._token, self._client_id = token, client_id
        params: dict[str, Any] = {"token": token or ""}
        if client_id is not None:
            params["client_id"] = client_id
        result: dict[str, Any] = await self.call("connect", params)
        self.session = result
        if self.boot_id is None:
            self.boot_id = result["boot_id"]
        return result

    async def subscribe(
        self, patterns: list[str], *, since_seq: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"patterns": patterns}
        if since_seq is not None:
            params["since_seq"] = since_seq
        result: dict[str, Any] = await self.call("events.subscribe", params)
        self.patterns = list(result["active_patterns"])
        return result

    # -- events ------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Events as they arrive (the buffer is bounded: a client that stops reading stalls)."""
        async for event in self._events_recv:
            yield event

    async def wait_disconnected(self) -> None:
        """Return once the current connection has gone away."""
        await self._disconnected.wait()

    async def next_event(self, *, timeout: float = math.inf) -> ClientEvent:
        with trio.fail_after(timeout):
            return await self._events_recv.receive()

    # -- plumbing ----------------------------------------------------------------------------

    async def _close_socket(self) -> None:
        if self._ws is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self._ws.aclose()

    async def _serve(self, ws: trio_websocket.WebSocketConnection, *, resume: bool = False) -> None:
        """Read one connection until it closes; then fail the calls still waiting on it.

        With ``resume``, the application's calls wait until :meth:`_resume` is done."""
        self._ws = ws
        self._disconnected = trio.Event()
        self._connected.set()
        if not resume:
            self._ready.set()
        try:
            while True:
                try:
                    text = await ws.get_message()
                except trio_websocket.ConnectionClosed:
                    return
                await self._dispatch(_decoder.decode(text))
        finally:
            self._connected = trio.Event()
            self._ready = trio.Event()
            self._disconnected.set()
            self._ws = None
            for send in list(self._pending.values()):
                send.close()

    async def _dispatch(self, doc: Any) -> None:
        if isinstance(doc, list):
            for item in doc:
                await self._dispatch(item)
            return
        if not isinstance(doc, dict):
            return
        if "id" in doc:
            waiter = self._pending.get(doc["id"]) if isinstance(doc["id"], int) else None
            if waiter is not None:
                waiter.send_nowait(doc)
            return
        if doc.get("method") == "event" and isinstance(doc.get("params"), dict):
            params = doc["params"]
            seq = params.get("seq")
            if isinstance(seq, int):
                self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
            await self._events_send.send(
                ClientEvent(
                    params.get("topic", ""), seq, params.get("ts"), params.get("data") or {}
                )
            )

    async def _resume(self) -> None:
        """After a reconnect: authenticate again and resubscribe from the last seen event."""
        result = await self.authenticate(self._token, self._client_id)
        restarted = result["boot_id"] != self.boot_id
        self.boot_id = result["boot_id"]
        if not self.patterns:
            return
        since = None if restarted or self.last_seq is None else self.last_seq
        reply = await self.subscribe(self.patterns, since_seq=since)
        if restarted or reply.get("gap"):
            self.last_seq = None if restarted else self.last_seq
            reason = "gateway restarted" if restarted else "events were lost from the replay buffer"
            await self._events_send.send(
                ClientEvent("client.resync", None, None, {"reason": reason})
            )


MAX_MESSAGE = 64 * 1024 * 1024


async def _serve_stream(
    client: Client,
    stream: trio.abc.Stream,
    host: str,
    resource: str,
    *,
    resume: bool = False,
    task_status: trio.TaskStatus[None],
) -> None:
    """Run one WebSocket on ``stream`` for ``client`` until it closes; always closes the stream.

    The stream is owned here rather than by trio-websocket, which leaves a client stream open
    when the server is the one that closes.
    """
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                stream,  # type: ignore[arg-type]  # any Trio stream works
                host,
                resource,
                max_message_size=MAX_MESSAGE,
            )
            task_status.started()
            try:
                await client._serve(ws, resume=resume)
            finally:
                # Let the reader see the close handshake through (it ends at EOF), within reason.
                nursery.cancel_scope.deadline = min(
                    nursery.cancel_scope.deadline, trio.current_time() + 1
                )
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


@contextlib.asynccontextmanager
async def open_stream_client(
    stream: trio.abc.Stream, *, host: str = "localhost"
) -> AsyncIterator[Client]:
    """A client over an already-connected byte stream (used by ``Gateway.connect``)."""
    client = Client()
    async with trio.open_nursery() as nursery:
        await nursery.start(_serve_stream, client, stream, host, "/")
        try:
            yield client
        finally:
            client._closing = True
            await client._close_socket()
            nursery.cancel_scope.cancel()


def _parse_url(url: str) -> tuple[str, int, str, bool]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, resource, secure


@contextlib.asynccontextmanager
async def open_client(
    url: str,
    *,
    token: str | None = None,
    client_id: str | None = None,
    reconnect: bool = False,
    max_backoff_s: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Client]:
    """Connect to ``url`` (``ws://`` or ``wss://``); authenticate when ``token`` is given."""
    host, port, resource, secure = _parse_url(url)
    client = Client()
    client._token, client._client_id = token, client_id

    async def open_stream() -> trio.abc.Stream:
        if secure:
            return await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=ssl_context or ssl.create_default_context()
            )
        return await trio.open_tcp_stream(host, port)

    async def keep_connected(*, task_status: trio.TaskStatus[None]) -> None:
        stream = await open_stream()
        await nursery.start(_serve_stream, client, stream, host, resource)
        task_status.started()
        backoff = 0.1
        while True:
            await client._disconnected.wait()
            if not reconnect or client._closing:
                return
            while True:
                await trio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff_s)
                try:
                    stream = await open_stream()
                    await nursery.start(
                        functools.partial(
                            _serve_stream, client, stream, host, resource, resume=True
                        )
                    )
                except (OSError, trio_websocket.HandshakeError):
                    continue
                break
            backoff = 0.1
            nursery.start_soon(_resume_quietly, client)

    refused: AlephError | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(keep_connected)
        try:
            if token is not None:
                await client.authenticate(token, client_id)
        except AlephError as exc:
            refused = exc  # raised below, outside the nursery, as itself
        try:
            if refused is None:
                yield client
        finally:
            client._closing = True
            await client._close_socket()
            nursery.cancel_scope.cancel()
    if refused is not None:
        raise refused


async def _resume_quietly(client: Client) -> None:
    """Authenticate and resubscribe on a new connection, then let the application's calls go
    (also when that failed while the connection stayed: they get the gateway's answer)."""
    ws = client._ws
    me = client._resuming = trio.lowlevel.current_task()
    try:
        await client._resume()
    except (ConnectionLost, AlephError):
        pass  # a lost connection: the next reconnect tries again
    finally:
        if client._resuming is me:
            client._resuming = None
        if ws is not None and client._ws is ws:
            client._ready.set()
