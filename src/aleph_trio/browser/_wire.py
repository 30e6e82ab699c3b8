"""The client end of Chromium's DevTools WebSocket: just what CDP needs (RFC 6455).

CDP traffic is one small text message per command and per answer, so the cost per message
is what counts. :class:`Wire` is read by exactly one task (the connection's reader), which
parses frames straight off the socket: no reader task and queue in between, no per-frame
event objects. Sends from several tasks take turns on a lock that is taken without a trip
through the scheduler when it is free. Messages up to ``max_message_size`` (screenshots and
accessibility trees are large); pings are answered; a close frame, EOF or a broken socket
ends the wire (:class:`WireClosed`).
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Final, final

import trio

__all__ = ["Wire", "WireClosed", "WireRefused", "open_wire"]

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_RECEIVE_CHUNK: Final = 256 * 1024
_MAX_HEAD: Final = 64 * 1024
#: A frame that the browser has not taken off the socket within this long breaks the wire
#: (a call's deadline cannot cut a frame in half without corrupting the stream).
SEND_TIMEOUT_S: Final = 2.0
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


class WireClosed(Exception):
    """The WebSocket is closed (by the browser, by us, or because the socket broke)."""


class WireRefused(Exception):
    """The opening handshake failed."""


async def open_wire(
    stream: trio.SocketStream, host: str, path: str, *, max_message_size: int
) -> Wire:
    """Upgrade ``stream`` to a WebSocket on ``path``; raises :class:`WireRefused`."""
    key = base64.b64encode(os.urandom(16))
    await stream.send_all(
        b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (path.encode(), host.encode(), key)
    )
    received = bytearray()
    while b"\r\n\r\n" not in received:
        if len(received) > _MAX_HEAD:
            raise WireRefused("the handshake answer is too long")
        data = await stream.receive_some(_MAX_HEAD)
        if not data:
            raise WireRefused("the browser closed the socket during the handshake")
        received += data
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    if status.split(" ")[1:2] != ["101"]:
        raise WireRefused(f"the browser refused the WebSocket: {status}")
    headers = {name.strip().lower(): value.strip() for name, _, value in map(_split, lines)}
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != accept:
        raise WireRefused("the browser's handshake answer does not match the key")
    return Wire(stream, bytearray(rest), max_message_size)


def _split(line: str) -> tuple[str, str, str]:
    return line.partition(":")


@final
class Wire:
    """An open WebSocket over ``stream``. Create it with :func:`open_wire`."""

    def __init__(self, stream: trio.SocketStream, buffered: bytearray, max_size: int) -> None:
        self._stream = stream
        self._buffer = buffered
        self._max_size = max_size
        self._sending = trio.Lock()
        self._closed = False

    async def send(self, payload: bytes) -> None:
        """Send one text message (UTF-8 JSON)."""
        await self._send_frame(_TEXT, payload)

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self._closed:
            raise WireClosed("the browser socket is closed")
        frame = _frame(opcode, payload)
        try:
            self._sending.acquire_nowait()
        except trio.WouldBlock:
            await self._sending.acquire()
        try:
            await trio.lowlevel.checkpoint_if_cancelled()  # nothing written yet: may stop here
            # Shielded from the call's deadline, bounded by its own.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + SEND_TIMEOUT_S):
                try:
                    await self._stream.send_all(frame)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                else:
                    return
            await self.aclose()  # half a frame may be out: the stream is unusable
            raise WireClosed("the browser socket broke while sending")
        finally:
            self._sending.release()

    async def receive(self) -> bytes:
        """The next whole message (text or binary); raises :class:`WireClosed`."""
        parts: list[bytes] = []
        size = 0
        while True:
            final, opcode, payload = await self._receive_frame()
            if opcode == _CLOSE:
                await self.aclose()
                raise WireClosed("the browser closed the WebSocket")
            if opcode == _PING:
                await self._send_frame(_PONG, payload)
                continue
            if opcode == _PONG:
                continue
            size += len(payload)
            if size > self._max_size:
                await self.aclose()
                raise WireClosed(f"a message exceeded {self._max_size} bytes")
            parts.append(payload)
            if final:
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _receive_frame(self) -> tuple[bool, int, bytes]:
        buffer = self._buffer
        while True:
            if len(buffer) >= 2:
                length, offset = buffer[1] & 0x7F, 2
                if length == 126 and len(buffer) >= 4:
                    length, offset = int.from_bytes(buffer[2:4], "big"), 4
                elif length == 127 and len(buffer) >= 10:
                    length, offset = int.from_bytes(buffer[2:10], "big"), 10
                masked = buffer[1] & 0x80
                if length > self._max_size:
                    await self.aclose()
                    raise WireClosed(f"a frame exceeded {self._max_size} bytes")
                end = offset + (4 if masked else 0) + length
                if length < 126 or offset > 2:  # the length is known
                    if len(buffer) >= end:
                        head = buffer[0]
                        with memoryview(buffer) as view:  # one copy of a large message
                            payload = bytes(view[end - length : end])
                        if masked:  # servers do not mask, but a masked frame is still valid
                            payload = _mask(payload, bytes(buffer[offset : offset + 4]))
                        del buffer[:end]
                        return bool(head & 0x80), head & 0x0F, payload
            if self._closed:
                raise WireClosed("the browser socket is closed")
            try:
                data = await self._stream.receive_some(_RECEIVE_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._closed = True
                raise WireClosed("the browser socket closed")
            buffer += data

    async def aclose(self) -> None:
        self._closed = True
        with trio.CancelScope(shield=True):
            await self._stream.aclose()


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 §5.3: a fresh key for every frame)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + _mask(payload, key)


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    stream = key * (n // 4 + 1)
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream[:n], "big")).to_bytes(n, "big")
