"""The DevTools WebSocket client (``browser._wire``) against a real WebSocket server on
127.0.0.1 built on wsproto, which checks the client's side of RFC 6455 (masking, framing,
the handshake) independently of our parser. Chromium itself is driven by the other browser
tests; these cover what it rarely does: fragments, pings, oversized messages, refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from aleph_trio.browser._wire import Wire, WireClosed, WireRefused, open_wire

Peer = Callable[["Server"], Awaitable[None]]


class Server:
    """The server end of one connection: wsproto events in, bytes out."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)

    async def next_event(self) -> object:
        while True:
            for event in self.ws.events():
                return event
            data = await self.stream.receive_some(65536)
            self.ws.receive_data(data or None)

    async def send(self, event: object) -> None:
        await self.stream.send_all(self.ws.send(event))  # type: ignore[arg-type]

    async def accept(self) -> None:
        assert isinstance(await self.next_event(), Request)
        await self.send(AcceptConnection())

    async def message(self) -> str:
        parts = []
        while True:
            event = await self.next_event()
            assert isinstance(event, Message), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts)


@asynccontextmanager
async def wire_to(peer: Peer, *, max_size: int = 1 << 20) -> AsyncIterator[Wire]:
    async with trio.open_nursery() as nursery:

        async def handler(stream: trio.SocketStream) -> None:
            async with stream:
                await peer(Server(stream))

        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            yield await open_wire(
                stream, "127.0.0.1", "/devtools/browser/x", max_message_size=max_size
            )
        finally:
            await stream.aclose()
            nursery.cancel_scope.cancel()


async def test_messages_both_ways_in_every_length_encoding() -> None:
    """Client frames are masked (wsproto refuses unmasked ones); 7-, 16- and 64-bit lengths."""
    sizes = [0, 5, 125, 126, 65535, 65536, 300_000]

    async def echo(server: Server) -> None:
        await server.accept()
        for _ in sizes:
            await server.send(TextMessage(data=await server.message()))

    async with wire_to(echo) as wire:
        for size in sizes:
            payload = ("x" * size).encode()
            await wire.send(payload)
            assert await wire.receive() == payload


async def test_fragments_are_joined_and_pings_answered() -> None:
    pong = trio.Event()

    async def peer(server: Server) -> None:
        await server.accept()
        await server.send(Ping(payload=b"are you there"))
        await server.send(TextMessage(data='{"id": 1, ', message_finished=False))
        await server.send(TextMessage(data='"result": {}}', message_finished=True))
        event = await server.next_event()
        assert isinstance(event, Pong) and event.payload == b"are you there"
        pong.set()
        await trio.sleep_forever()

    async with wire_to(peer) as wire:
        assert await wire.receive() == b'{"id": 1, "result": {}}'
        with trio.fail_after(5):
            await pong.wait()


async def test_a_message_over_the_limit_closes_the_wire() -> None:
    async def peer(server: Server) -> None:
        await server.accept()
        await server.send(TextMessage(data="y" * 2000, message_finished=False))
        await server.send(TextMessage(data="y" * 2000, message_finished=True))
        await trio.sleep_forever()

    async with wire_to(peer, max_size=3000) as wire:
        with pytest.raises(WireClosed, match="exceeded 3000"):
            await wire.receive()
        with pytest.raises(WireClosed):
            await wire.send(b"{}")


async def test_a_close_frame_or_eof_ends_the_wire() -> None:
    async def closes(server: Server) -> None:
        await server.accept()
        await server.send(TextMessage(data="last"))
        await server.send(CloseConnection(code=1000))

    async with wire_to(closes) as wire:
        assert await wire.receive() == b"last"
        with pytest.raises(WireClosed, match="closed the WebSocket"):
            await wire.receive()

    async def hangs_up(server: Server) -> None:
        await server.accept()

    async with wire_to(hangs_up) as wire:
        with pytest.raises(WireClosed, match="socket closed"):
            await wire.receive()


async def test_a_refused_handshake_is_reported() -> None:
    async def refuses(server: Server) -> None:
        assert isinstance(await server.next_event(), Request)
        await server.send(RejectConnection(status_code=403))

    with pytest.raises(ExceptionGroup) as raised:  # out of the server's nursery
        async with wire_to(refuses):
            pass
    assert raised.group_contains(WireRefused, match="403")
