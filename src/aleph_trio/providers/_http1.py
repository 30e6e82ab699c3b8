"""One HTTP/1.1 connection on a non-blocking socket: the request as it goes on the wire, and
the response head read back (the body is :mod:`._response_body`'s).

A :class:`Connection` is the socket itself, with :class:`trio.SSLStream` over it for ``https``;
plain reads and writes go straight to the stdlib socket.
"""

from __future__ import annotations

import itertools
import math
import re
import socket
from typing import TYPE_CHECKING, Final, final

import httpx
import trio

from ._read_watchdog import read_timeout

if TYPE_CHECKING:
    from ._read_watchdog import Watch, Watchdog

__all__ = [
    "MAX_HEAD",
    "RECV",
    "TRANSPORT_ERRORS",
    "Connection",
    "Dropped",
    "Origin",
    "RawSocketStream",
    "error_reason",
    "malformed",
    "read_head",
    "request_bytes",
    "send_request",
]

#: Bytes asked for per read: a whole burst of small pieces arrives in one read.
RECV: Final = 65536
#: The largest response head (status line and headers, also of a 1xx) accepted.
MAX_HEAD: Final = 65536

_HEAD_END: Final = re.compile(rb"\n\r?\n")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?\r?")
_FIELD_LINE: Final = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*?)[ \t]*\r?")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: Where a connection goes: scheme, host and port.
Origin = tuple[str, str, int]


@final
class Connection:
    """One HTTP/1.1 connection: its socket and, for ``https``, the TLS stream over it."""

    __slots__ = ("idle_since", "origin", "reused", "sock", "tls")

    def __init__(self, origin: Origin, sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.tls: trio.SSLStream[RawSocketStream] | None = None
        self.reused = False
        self.idle_since = 0.0

    def alive(self) -> bool:
        """Whether an idle connection can carry another request: an idle connection that has
        become readable was closed by the server, or the server sent bytes nobody asked for."""
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return self.tls is None or not self.tls.pending()
        except OSError:
            return False
        return False

    def close(self) -> None:
        """Close the socket at once. Synchronous on purpose: it runs in cancelled code, in
        ``finally`` blocks and in generator finalizers, where nothing can be awaited. HTTP
        framing makes a TLS close_notify unnecessary."""
        sock = self.sock
        if sock.fileno() < 0:
            return
        try:
            trio.lowlevel.notify_closing(sock)
        except RuntimeError:  # outside of a trio run: nobody can be waiting on it
            pass
        sock.close()


@final
class RawSocketStream(trio.abc.Stream):
    """The raw socket as the trio stream that :class:`trio.SSLStream` runs over."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        sock = self._sock
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            view = view[sent:]
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self._sock)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        sock = self._sock
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(max_bytes or RECV)
            except BlockingIOError:
                pass

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.checkpoint()


class Dropped(Exception):
    """The connection failed before any byte of an answer arrived (``error`` says how)."""

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


TRANSPORT_ERRORS: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


async def send_request(
    conn: Connection, payload: bytes, timeout: float | None, request: httpx.Request
) -> None:
    """Write ``payload`` on ``conn``, in one ``send`` when the socket takes it all. A broken
    connection raises :class:`Dropped`; a write slower than ``timeout`` seconds,
    :class:`httpx.WriteTimeout`."""
    tls = conn.tls
    sock = conn.sock
    sent = 0
    try:
        if tls is None:
            try:
                sent = sock.send(payload)
            except BlockingIOError:
                pass
            if sent == len(payload):  # the usual case: a small request, one syscall
                return
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        with trio.CancelScope(deadline=deadline) as scope:
            if tls is None:
                view = memoryview(payload)[sent:]
                while view:
                    await trio.lowlevel.wait_writable(sock)
                    try:
                        view = view[sock.send(view) :]
                    except BlockingIOError:
                        pass
            else:
                await tls.send_all(payload)
    except TRANSPORT_ERRORS as exc:
        raise Dropped(httpx.WriteError(error_reason(exc), request=request)) from exc
    if scope.cancelled_caught:
        raise httpx.WriteTimeout("sending the request timed out", request=request)


async def _receive(conn: Connection) -> bytes:
    tls = conn.tls
    if tls is not None:
        return bytes(await tls.receive_some(RECV))
    sock = conn.sock
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(RECV)
        except BlockingIOError:
            pass


_Head = tuple[int, bytes, int, list[tuple[bytes, bytes]], bytes]


async def read_head(
    conn: Connection, watch: Watch, watchdog: Watchdog, request: httpx.Request
) -> _Head:
    """Status, reason, HTTP/1 minor version, headers and the bytes read past the head, of the
    first answer that is not an interim 1xx one; ``watchdog`` enforces ``watch``'s read
    timeout from here to the body's end."""
    buffer = b""
    scanned = 0  # where the search for the head's end goes on: a dripping head stays linear
    received = False
    watch.count = 1
    if watch.limit != math.inf:
        watchdog.add(watch)
    while True:
        try:
            data = await _receive(conn)
        except Exception as exc:
            if watch.fired:
                raise read_timeout(watch) from None
            if not isinstance(exc, TRANSPORT_ERRORS):
                raise
            error = httpx.ReadError(error_reason(exc), request=request)
            if received:
                raise error from exc
            raise Dropped(error) from exc
        watch.count += 1
        if not data:
            if received:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection in the middle of the response head",
                    request=request,
                )
            raise Dropped(
                httpx.RemoteProtocolError(
                    "the server closed the connection without answering", request=request
                )
            )
        received = True
        buffer += data
        while True:
            match = _HEAD_END.search(buffer, scanned)
            if match is None or match.start() > MAX_HEAD:
                if len(buffer) > MAX_HEAD:
                    raise httpx.RemoteProtocolError(
                        f"the response head is larger than {MAX_HEAD} bytes", request=request
                    )
                scanned = max(0, len(buffer) - 2)
                break
            status, reason, version, headers = _parse_head(buffer[: match.start()], request)
            buffer = buffer[match.end() :]
            scanned = 0
            if status >= 200:
                return status, reason, version, headers, buffer
            if status < 100:
                raise httpx.RemoteProtocolError(f"invalid status {status}", request=request)
            if status == 101:
                raise httpx.RemoteProtocolError(
                    "the server switched protocols unasked", request=request
                )
            # 1xx interim answers (100 Continue, 103 Early Hints) precede the real one.
        watch.count += 1


def _parse_head(
    head: bytes, request: httpx.Request
) -> tuple[int, bytes, int, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise malformed("status line", lines[0], request)
    headers: list[tuple[bytes, bytes]] = []
    for line in itertools.islice(lines, 1, None):
        field = _FIELD_LINE.fullmatch(line)
        if field is None:
            raise malformed("header line", line, request)
        headers.append((field[1], field[2]))
    return int(status_line[2]), status_line[3] or b"", int(status_line[1]), headers


def request_bytes(request: httpx.Request, body: bytes) -> tuple[bytes, bool]:
    """The request as it goes on the wire (head and body in one buffer), and whether it asked
    for the connection to be closed afterwards."""
    method = request.method
    if not _TOKEN.fullmatch(method):
        raise httpx.LocalProtocolError(f"invalid method {method!r}", request=request)
    lines = [b"%s %s HTTP/1.1" % (method.encode("ascii"), request.url.raw_path)]
    chunked = False
    close = False
    for name, value in request.headers.raw:
        lines.append(b"%s: %s" % (name, value))
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            chunked = value.strip().lower() == b"chunked"
        elif lowered == b"connection":
            close = b"close" in (t.strip().lower() for t in value.split(b","))
    head = b"\r\n".join(lines)
    # A CR or LF inside the target, a name or a value would split the head into lines the
    # caller never wrote.
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        raise httpx.LocalProtocolError(
            "line break in the request target or a header", request=request
        )
    if chunked:  # httpx asked for chunks (a body of unknown length); it is all here now
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    return head + b"\r\n\r\n" + body, close


def malformed(
    what: str, data: bytes, request: httpx.Request | None = None
) -> httpx.RemoteProtocolError:
    """The error for a part of the answer that is not HTTP/1.1 (``data`` is its start)."""
    return httpx.RemoteProtocolError(f"malformed {what}: {data[:80]!r}", request=request)


def error_reason(exc: BaseException) -> str:
    """What went wrong, from the OS or TLS error behind ``exc`` when there is one."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause) if cause is not None else ""
    return text or type(exc).__name__
