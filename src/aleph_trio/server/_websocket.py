"""A lean server-side WebSocket over any Trio stream, driven through wsproto.

This is the transport interface the connection code uses and nothing more: accept or refuse the
upgrade, receive one whole message, send a batch of text frames in one write, ping, close with a
code. Outgoing text frames are framed here from bytes the JSON encoder already produced (server
frames are never masked), so a reply costs one encode and one ``send_all`` however many frames
are waiting.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Sequence
from typing import final

import attrs
import trio
import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

__all__ = ["HandshakeRequest", "TransportClosed", "WebSocketTransport"]

RECEIVE_CHUNK = 65536
#: How long a write already under way may take to finish once its task is cancelled (or, on
#: streams that are not sockets, at all); past that the stream is aborted.
FINISH_WRITE_S = 5.0
#: How long a peer that broke the protocol has to close once our close frame is on its way.
LINGER_S = 2.0


class TransportClosed(Exception):
    """The WebSocket is closed; ``code`` is the close code that applies (1006: no close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


@attrs.frozen
class HandshakeRequest:
    path: str
    origin: str | None
    host: str


def _frame_header(opcode: int, length: int) -> bytes:
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


@final
class WebSocketTransport:
    """Server side of one WebSocket. One task receives; any task may send (sends are serialised)."""

    def __init__(
        self, stream: trio.abc.Stream, *, max_message_size: int, initial: bytes = b""
    ) -> None:
        """``initial``: bytes already read from ``stream`` (the listener reads the request head
        to tell an upgrade from plain HTTP)."""
        self._stream = stream
        socket = getattr(stream, "socket", None)
        self._socket: trio.socket.SocketType | None = (
            socket if isinstance(stream, trio.SocketStream) else None
        )
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._initial = initial
        self._send_lock = trio.StrictFIFOLock()
        self.max_message_size = max_message_size
        self._parts: list[str | bytes] = []
        self._size = 0
        self._pong = trio.Event()
        self._closed: TransportClosed | None = None
        self._stream_closed = False
        self._poisoned = False
        #: What ``try_send_now`` could not write at once; the next write sends it first.
        self._tail = b""

    @property
    def is_open(self) -> bool:
        return self._closed is None and self._ws.state == ConnectionState.OPEN

    # -- handshake ----------------------------------------------------------------------------

    async def receive_handshake(self) -> HandshakeRequest | None:
        """Read the HTTP upgrade request; ``None`` if the peer went away or spoke nonsense."""
        if self._initial:
            initial, self._initial = self._initial, b""
            if not await self._feed(initial):
                return None
        while True:
            for event in self._ws.events():
                if isinstance(event, Request):
                    origin = None
                    for name, value in event.extra_headers:
                        if name.lower() == b"origin":
                            origin = value.decode("latin-1")
                    return HandshakeRequest(event.target.split("?", 1)[0], origin, event.host)
            if not await self._receive_into_wsproto():
                return None

    async def accept(self) -> None:
        await self._send_raw(self._ws.send(AcceptConnection()))

    async def reject(self, status: int, body: str) -> None:
        payload = body.encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(payload)).encode()),
        ]
        data = self._ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        data += self._ws.send(RejectData(data=payload, body_finished=True))
        await self._send_raw(data)
        await self.abort()

    # -- receiving ----------------------------------------------------------------------------

    async def receive_message(self) -> str | bytes:
        """The next whole message. Raises :class:`TransportClosed` once the socket is closed."""
        while True:
            if self._closed is not None:
                raise self._closed
            for event in self._ws.events():
                message = await self._handle(event)
                if message is not None:
                    return message
                if self._closed is not None:
                    raise self._closed
            if not await self._receive_into_wsproto():
                self._closed = self._closed or TransportClosed(1006, "connection lost")

    async def _handle(self, event: object) -> str | bytes | None:
        if isinstance(event, Message):
            self._size += len(event.data)
            if self._size > self.max_message_size:
                limit = self.max_message_size
                await self.close(1009, f"message larger than {limit} bytes")
                return None
            self._parts.append(event.data)
            if not event.message_finished:
                return None
            parts, self._parts, self._size = self._parts, [], 0
            if isinstance(event, TextMessage):
                return "".join(parts)  # type: ignore[arg-type]
            assert isinstance(event, BytesMessage)
            return b"".join(parts)  # type: ignore[arg-type]
        if isinstance(event, Ping):
            if self._ws.state == ConnectionState.OPEN:
                await self._send_raw(self._ws.send(event.response()))
        elif isinstance(event, Pong):
            self._pong.set()
        elif isinstance(event, CloseConnection):
            await self._closing(event)
        return None

    async def _closing(self, event: CloseConnection) -> None:
        """The peer's close frame, or (state still open) wsproto failing the WebSocket because
        a frame broke RFC 6455: invalid UTF-8 (1007), no mask, reserved bits or opcodes (1002).
        Either way a close frame goes out (the answer, or ours with that code) and the stream
        is closed at once: nothing more is read from a peer that broke the protocol."""
        reason = event.reason or ""
        if self._ws.state == ConnectionState.OPEN and event.code == 1007:
            reason = f"text frame is not valid UTF-8 ({reason})"
        self._closed = TransportClosed(event.code, reason)
        failed = self._ws.state == ConnectionState.OPEN
        if self._ws.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.OPEN):
            frame = self._ws.send(
                CloseConnection(code=event.code, reason=reason) if failed else event.response()
            )
            with contextlib.suppress(TransportClosed):
                await self._send_raw(frame)
        if failed:
            await self._linger()
        await self.abort()

    async def _linger(self) -> None:
        """Let our close frame reach a peer that broke the protocol before the TCP close.

        Closing a socket with unread data in it makes the kernel answer with a reset, which can
        destroy the close frame before the peer reads it (a client that pipelined frames after
        the bad one would see 1006). So the write side is shut (FIN after the close frame) and
        whatever the peer still sends is dropped unread until it closes, for ``LINGER_S`` at
        most."""
        if self._socket is None or self._stream_closed or self._poisoned:
            return
        stream = self._stream
        assert isinstance(stream, trio.SocketStream)
        with trio.move_on_after(LINGER_S):
            try:
                await stream.send_eof()
                while await stream.receive_some(RECEIVE_CHUNK):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    async def _receive_into_wsproto(self) -> bool:
        try:
            data = await self._stream.receive_some(RECEIVE_CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            await self.abort()
            return False
        return await self._feed(data)

    async def _feed(self, data: bytes | bytearray) -> bool:
        try:
            self._ws.receive_data(data)  # type: ignore[arg-type]  # bytearray works too
        except RemoteProtocolError as exc:
            code = 1002
            if isinstance(exc.event_hint, CloseConnection):
                code = exc.event_hint.code
            if exc.event_hint is not None:
                try:
                    await self._send_raw(self._ws.send(exc.event_hint))
                except Exception:  # the peer is already misbehaving; closing is all we can do
                    pass
            self._closed = TransportClosed(code, str(exc))
            await self.abort()
            return False
        return True

    # -- sending ------------------------------------------------------------------------------

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Send each item (UTF-8 JSON) as one text frame, all in one write."""
        if self._closed is not None or self._ws.state != ConnectionState.OPEN:
            raise self._closed or TransportClosed(1006, "not open")
        if len(frames) == 1:
            frame = frames[0]
            await self._send_raw(_frame_header(0x1, len(frame)) + frame)
            return
        out = bytearray()
        for frame in frames:
            out += _frame_header(0x1, len(frame))
            out += frame
        await self._send_raw(bytes(out))

    @property
    def has_tail(self) -> bool:
        return bool(self._tail)

    def try_send_now(self, frame: bytes) -> bool:
        """Write one text frame from the calling task, without waiting, when nothing else is
        being written: this saves a task switch per event. ``False`` (no socket, a write under
        way, a full kernel buffer, any error) leaves the frame to :meth:`send_frames`. When the
        kernel takes only part of it, the rest is kept and goes first in the next write."""
        sock = self._socket
        if (
            sock is None
            or self._tail
            or self._send_lock.locked()
            or self._closed is not None
            or self._stream_closed
            or self._poisoned
            or self._ws.state != ConnectionState.OPEN
        ):
            return False
        data = _frame_header(0x1, len(frame)) + frame
        try:
            # The socket is non-blocking (Trio made it so): this never waits.
            sent = os.write(sock.fileno(), data)
        except OSError:  # would block, or broken: the normal path waits or reports it
            return False
        if sent < len(data):
            self._tail = data[sent:]
        return True

    async def ping(self) -> trio.Event:
        """Send a ping; the returned event is set when a pong arrives. Raises
        :class:`TransportClosed` once a close frame was sent or received (a ping may fall due
        while the peer's close is being answered)."""
        if self._closed is not None or self._ws.state != ConnectionState.OPEN:
            raise self._closed or TransportClosed(1006, "not open")
        self._pong = trio.Event()
        await self._send_raw(self._ws.send(Ping(payload=os.urandom(4))))
        return self._pong

    async def close(self, code: int, reason: str = "") -> None:
        """Send a close frame (once) and give the peer a moment to answer it."""
        if self._ws.state == ConnectionState.OPEN and not self._poisoned:
            try:
                await self._send_raw(self._ws.send(CloseConnection(code=code, reason=reason)))
            except TransportClosed:
                pass
        self._closed = self._closed or TransportClosed(code, reason)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close politely: close frame, wait briefly for the peer's, then close the stream."""
        await self.close(code, reason)
        with trio.move_on_after(2.0):
            while (
                self._ws.state == ConnectionState.LOCAL_CLOSING
                and not self._stream_closed
                and not self._poisoned
            ):
                try:
                    data = await self._stream.receive_some(RECEIVE_CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                try:
                    self._ws.receive_data(data)  # type: ignore[arg-type]
                except RemoteProtocolError:
                    break
                for _ in self._ws.events():
                    pass
        await self.abort()

    async def abort(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    async def _send_raw(self, data: bytes) -> None:
        if not data and not self._tail:
            return
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            if self._stream_closed or self._poisoned:
                raise self._closed or TransportClosed(1006, "connection lost")
            tail = self._tail
            if tail:
                data, self._tail = tail + data, b""
            try:
                if self._socket is not None:
                    await self._send_on_socket(self._socket, data, tail)
                else:
                    await self._send_shielded(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self._closed = self._closed or TransportClosed(1006, "connection lost")
                self._stream_closed = True
                raise self._closed from None
        finally:
            self._send_lock.release()

    async def _send_on_socket(self, sock: trio.socket.SocketType, data: bytes, tail: bytes) -> None:
        """Write to a socket without a cancel scope on the common path.

        A cancellation can only cut a frame once part of it is in the kernel; only then is the
        rest finished under a shield (bounded by ``FINISH_WRITE_S``) so the stream stays framed.
        ``data`` starts with ``tail``, the rest of a frame already partly written: cancelled
        before anything went out, the new frames are dropped whole but the tail is kept, or the
        next write would start a frame in the middle of that one.
        """
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(view):
                sent += await sock.send(view[sent:])
        except trio.Cancelled:
            if sent == 0:
                self._tail = tail
                raise
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + FINISH_WRITE_S
                while sent < len(view):
                    sent += await sock.send(view[sent:])
            if scope.cancelled_caught:
                self._poisoned = True
            raise

    async def _send_shielded(self, data: bytes) -> None:
        """Any other stream: the write is never cut, but never waits past ``FINISH_WRITE_S``."""
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + FINISH_WRITE_S
            await self._stream.send_all(data)
        if scope.cancelled_caught:
            self._poisoned = True
            await self.abort()
            raise TransportClosed(1006, "send timed out")
