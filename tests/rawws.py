"""A bare WebSocket client over any Trio stream, for tests that need to see every frame.

It never answers pings on its own and exposes close codes, which the friendly client hides.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import trio
import wsproto
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)


def client_frame(
    opcode: int, payload: bytes, *, masked: bool = True, rsv: int = 0, fin: bool = True
) -> bytes:
    """One frame as a client would send it, built by hand so it can break the rules: unmasked,
    with reserved bits (``rsv``: 0-7) or an opcode wsproto refuses to send."""
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, (0x80 if masked else 0) | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, length)
    else:
        header = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, length)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class RawWebSocket:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.pending: list[Event] = []
        self.status: int | None = None
        self._parts: list[str | bytes] = []

    async def handshake(
        self, path: str = "/", headers: list[tuple[bytes, bytes]] | None = None
    ) -> int:
        """Upgrade; returns the HTTP status (101 when accepted)."""
        await self.stream.send_all(
            self.ws.send(Request(host="localhost", target=path, extra_headers=headers or []))
        )
        while True:
            for event in await self._events():
                if isinstance(event, AcceptConnection):
                    self.status = 101
                    return 101
                if isinstance(event, RejectConnection):
                    self.status = event.status_code
                if isinstance(event, RejectData) and event.body_finished:
                    assert self.status is not None
                    return self.status
                if isinstance(event, RejectConnection) and not event.has_body:
                    return event.status_code

    async def _events(self) -> list[Event]:
        data = await self.stream.receive_some(65536)
        if not data:
            raise Closed(1006, "eof")
        self.ws.receive_data(data)
        return list(self.ws.events())

    async def send_text(self, text: str) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def send_json(self, doc: Any) -> None:
        await self.send_text(json.dumps(doc))

    async def send_bytes(self, data: bytes) -> None:
        await self.stream.send_all(self.ws.send(BytesMessage(data=data)))

    async def send_frame(self, frame: bytes) -> None:
        """Write bytes as they are (a frame from :func:`client_frame`)."""
        await self.stream.send_all(frame)

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        await self.stream.send_all(self.ws.send(CloseConnection(code=code, reason=reason)))

    async def next_event(self) -> Event:
        while not self.pending:
            self.pending.extend(await self._events())
        return self.pending.pop(0)

    async def receive(self) -> str | bytes:
        """The next whole message; pings are answered; a close raises :class:`Closed`."""
        while True:
            event = await self.next_event()
            if isinstance(event, Message):
                self._parts.append(event.data)
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    if isinstance(event, TextMessage):
                        return "".join(parts)  # type: ignore[arg-type]
                    return b"".join(parts)  # type: ignore[arg-type]
            elif isinstance(event, Ping):
                await self.stream.send_all(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                raise Closed(event.code, event.reason or "")

    async def receive_json(self) -> Any:
        message = await self.receive()
        assert isinstance(message, str), message
        return json.loads(message)

    async def call(self, method: str, params: dict[str, Any] | None = None, id: Any = 1) -> Any:
        doc: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            doc["params"] = params
        await self.send_json(doc)
        while True:
            reply = await self.receive_json()
            if isinstance(reply, dict) and reply.get("id") == id:
                return reply

    async def wait_closed(self) -> Closed:
        """Read until the server's close frame; returns it."""
        try:
            while True:
                await self.receive()
        except Closed as closed:
            return closed
