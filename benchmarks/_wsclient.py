"""A deliberately minimal WebSocket client on plain blocking sockets (stdlib + msgspec).

The same code measures the baseline and the gateway. It is kept much cheaper per message than
either server (frames are built once and reused, no event loop), so that throughput figures are
bounded by the server under test, not by the client.

Client frames are masked as RFC 6455 requires, with a random key per connection.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import os
import socket
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator

_encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder().decode

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WSError(Exception):
    pass


class Closed(WSError):
    pass


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


def build_frame(payload: bytes, key: bytes, opcode: int = OP_TEXT) -> bytes:
    """One complete masked client frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + key + _mask(payload, key)


def request(id_: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        doc["params"] = params
    return _encode(doc)


class FrameReader:
    """Incremental parser of (unmasked) server frames into whole messages."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self.control: list[tuple[int, bytes]] = []  # pings and closes, for the owner to handle

    def feed(self, data: bytes) -> None:
        self._buf += data

    def messages(self) -> Iterator[bytes]:
        """Every whole text/binary message now buffered (control frames go to ``control``)."""
        buf = self._buf
        while True:
            n = len(buf)
            if n < 2:
                return
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if n < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if n < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            if b1 & 0x80:
                raise WSError("server frames must not be masked")
            end = pos + length
            if n < end:
                return
            payload = bytes(buf[pos:end])
            del buf[:end]
            opcode = b0 & 0x0F
            if opcode >= 0x8:
                self.control.append((opcode, payload))
                continue
            if b0 & 0x80 and not self._parts:
                yield payload
                continue
            self._parts.append(payload)
            if b0 & 0x80:
                whole, self._parts = b"".join(self._parts), []
                yield whole


class WSClient:
    """One WebSocket connection. Blocking by default; ``setblocking(False)`` for epoll use."""

    def __init__(self, host: str, port: int, *, path: str = "/", timeout: float = 10.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16))
            sock.sendall(
                b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                % (path.encode(), host.encode(), port, key)
            )
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    raise WSError("connection closed during the handshake")
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            if b" 101 " not in lines[0] + b" ":
                raise WSError(f"handshake refused: {lines[0].decode('latin-1')}")
            expected = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(b":") for line in lines[1:])
            }
            if headers.get(b"sec-websocket-accept") != expected:
                raise WSError("bad Sec-WebSocket-Accept")
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.mask_key = os.urandom(4)
        self.reader = FrameReader()
        self.reader.feed(rest)
        self._pending: collections.deque[bytes] = collections.deque()

    def fileno(self) -> int:
        return self.sock.fileno()

    def frame(self, payload: bytes) -> bytes:
        return build_frame(payload, self.mask_key)

    def send(self, payload: bytes) -> None:
        self.sock.sendall(build_frame(payload, self.mask_key))

    def send_raw(self, frames: bytes) -> None:
        """Send already-built frames (from :meth:`frame`)."""
        self.sock.sendall(frames)

    def _handle_control(self) -> None:
        control = self.reader.control
        while control:
            opcode, payload = control.pop(0)
            if opcode == OP_PING:
                self.sock.sendall(build_frame(payload, self.mask_key, OP_PONG))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                raise Closed(
                    f"server closed the connection: {code} {payload[2:].decode(errors='replace')}"
                )

    def poll(self) -> list[bytes]:
        """Non-blocking socket ready to read: read once, return the whole messages now available."""
        data = self.sock.recv(262144)
        if not data:
            raise Closed("connection lost")
        self.reader.feed(data)
        out = list(self.reader.messages())
        if self.reader.control:
            self._handle_control()
        return out

    def recv(self) -> bytes:
        """Block until the next whole message."""
        pending = self._pending
        while not pending:
            data = self.sock.recv(262144)
            if not data:
                raise Closed("connection lost")
            self.reader.feed(data)
            pending.extend(self.reader.messages())
            if self.reader.control:
                self._handle_control()
        return pending.popleft()

    def call(self, id_: int, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a request and return its decoded result; skips notifications; raises on errors."""
        self.send(request(id_, method, params))
        while True:
            doc = decode(self.recv())
            if isinstance(doc, dict) and doc.get("id") == id_:
                if "error" in doc:
                    raise WSError(f"{method} failed: {doc['error']}")
                return doc.get("result")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
