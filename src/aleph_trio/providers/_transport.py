"""A lean httpx transport for provider traffic: HTTP/1.1 over trio sockets with keep-alive
pooling, whose response bodies cost as little Python as possible per network read.

httpx's default transport reads every piece of a streamed answer through httpcore: a
``fail_after`` per read, several exception-mapping context managers, h11's event machinery
and a stack of generators. Here one async generator per response does the reading, the
chunked decoding and the framing in local variables, straight on a non-blocking socket.
Read timeouts are enforced by a watchdog task instead of a cancel scope per read.

httpx sets up proxies from ``HTTP(S)_PROXY`` only when it builds its own transport; pass
:func:`env_proxy_mounts` as ``mounts=`` to keep that behaviour next to this transport.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import math
import re
import socket
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final, final

import httpx
import trio

__all__ = ["LeanTransport", "env_proxy_mounts"]

#: Bytes asked for per read: a whole burst of small pieces arrives in one read.
_RECV: Final = 65536
#: The largest response head (status line and headers, also of a 1xx) accepted.
_MAX_HEAD: Final = 65536
_MAX_IDLE: Final = 8
_KEEPALIVE_EXPIRY: Final = 30.0

_HEAD_END: Final = re.compile(rb"\n\r?\n")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?\r?")
_FIELD_LINE: Final = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*?)[ \t]*\r?")
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# How a response body ends.
_LENGTH: Final = 0  # after content-length bytes
_CHUNKED: Final = 1  # after the last chunk and the trailer section
_CLOSE: Final = 2  # when the server closes the connection

# What the chunked decoder expects next when it is not inside a chunk's data.
_SIZE: Final = 0  # a chunk-size line
_CRLF: Final = 1  # the line end after a chunk's data
_TRAILER: Final = 2  # trailer fields up to an empty line
_DONE: Final = 3

_Origin = tuple[str, str, int]


@final
class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over trio sockets (``https`` through :class:`trio.SSLStream`), keeping up to
    ``max_idle_per_origin`` idle connections per (scheme, host, port) for up to
    ``keepalive_expiry`` seconds.

    ``ssl_context`` defaults to what httpx uses for ``verify=True``; its ALPN protocols are set
    to ``http/1.1``. Requests take the connect, read and write timeouts of
    ``request.extensions["timeout"]`` (what :class:`httpx.AsyncClient` puts there); the read
    timeout is the longest wait for the next bytes of the answer.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_per_origin: int = _MAX_IDLE,
        keepalive_expiry: float = _KEEPALIVE_EXPIRY,
    ) -> None:
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        context.set_alpn_protocols(["http/1.1"])
        self._ssl_context = context
        self._max_idle = max_idle_per_origin
        self._expiry = keepalive_expiry
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme == "https":
            default_port = 443
        elif scheme == "http":
            default_port = 80
        else:
            raise httpx.UnsupportedProtocol(
                f"unsupported URL scheme {scheme!r} (only http and https)", request=request
            )
        origin = (scheme, url.host, url.port or default_port)
        timeouts: Mapping[str, Any] = request.extensions.get("timeout") or {}
        read_timeout = _seconds(timeouts.get("read"))
        payload, close_asked = _request_bytes(request, await request.aread())
        head_only = request.method == "HEAD"

        conn = self._checkout(origin)
        while True:
            if conn is None:
                conn = await self._connect(origin, _seconds(timeouts.get("connect")), request)
            watch = _Watch(conn, read_timeout)
            try:
                await _send(conn, payload, _seconds(timeouts.get("write")), request)
                head = await _read_head(conn, watch, request)
            except _Dropped as dropped:
                watch.done = True
                conn.close()
                # The keep-alive race: the server closed this idle connection just as the
                # request went out. Nothing of an answer arrived, so ask again on a new one.
                if conn.reused:
                    conn = None
                    continue
                raise dropped.error from dropped.__cause__
            except BaseException:
                watch.done = True
                conn.close()
                raise
            break

        status, reason, version, headers, rest = head
        try:
            framing, length, reusable = _framing(head_only, status, version, headers)
        except httpx.RemoteProtocolError as exc:
            watch.done = True
            conn.close()
            exc.request = request
            raise
        body = _Body(
            self._release, conn, watch, framing, length, reusable and not close_asked, rest
        )
        if framing == _LENGTH and not length:
            body.finish(reusable=body.reusable and not rest)
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": b"HTTP/1.%d" % version, "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        """Close every idle connection; connections still reading a body close when done."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _release(self, conn: _Connection) -> None:
        """Take back a connection whose answer was read to the end."""
        if self._closed or self._max_idle <= 0:
            conn.close()
            return
        conn.reused = True
        conn.idle_since = trio.current_time()
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= self._max_idle:
            idle.pop(0).close()
        idle.append(conn)

    def _checkout(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_kept = trio.current_time() - self._expiry
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be stale
            if conn.idle_since < oldest_kept:
                # The stack is in release order: everything below is older still.
                conn.close()
                for older in idle:
                    older.close()
                idle.clear()
                break
            if conn.alive():
                return conn
            conn.close()
        return None

    async def _connect(
        self, origin: _Origin, timeout: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = origin
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        with trio.CancelScope(deadline=deadline):
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                raise httpx.ConnectError(
                    f"could not connect to {host}:{port}: {_os_reason(exc)}", request=request
                ) from exc
            # Reads go straight to a stdlib socket (trio's SocketStream costs a conflict
            # detector, an error-translating context manager and an EAGAIN exception per read).
            # The fd keeps the TCP_NODELAY that SocketStream set on it.
            tsock = stream.socket
            sock = socket.socket(tsock.family, tsock.type, tsock.proto, tsock.detach())
            sock.setblocking(False)
            conn = _Connection(origin, sock)
            if scheme == "https":
                tls = trio.SSLStream(
                    _SocketStream(sock),
                    self._ssl_context,
                    server_hostname=host,
                    # HTTP framing tells where an answer ends, so a missing close_notify is
                    # an EOF like any other (what every HTTP client does).
                    https_compatible=True,
                )
                try:
                    await tls.do_handshake()
                except (OSError, trio.BrokenResourceError) as exc:
                    conn.close()
                    raise httpx.ConnectError(
                        f"TLS handshake with {host}:{port} failed: {_reason(exc)}",
                        request=request,
                    ) from exc
                except BaseException:
                    conn.close()
                    raise
                conn.tls = tls
            return conn
        raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request)


@final
class _Connection:
    """One HTTP/1.1 connection: its socket and, for ``https``, the TLS stream over it."""

    __slots__ = ("idle_since", "origin", "reused", "sock", "tls")

    def __init__(self, origin: _Origin, sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.tls: trio.SSLStream[_SocketStream] | None = None
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
class _Body(httpx.AsyncByteStream):
    """A response body, read from its connection as the caller iterates."""

    def __init__(
        self,
        release: Callable[[_Connection], None],
        conn: _Connection,
        watch: _Watch,
        framing: int,
        length: int,
        reusable: bool,
        rest: bytes,
    ) -> None:
        self._release = release
        self._conn: _Connection | None = conn
        self._watch = watch
        self._framing = framing
        self._length = length
        self.reusable = reusable
        self._rest = rest

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's bytes, one piece per network read (never empty). Everything the loop
        touches is a local variable; the connection goes back to the pool before the last
        piece is handed out, so a caller that stops at the end of the data loses nothing."""
        conn = self._conn
        if conn is None:
            return
        watch = self._watch
        sock = conn.sock
        recv = sock.recv
        tls = conn.tls
        tls_receive = None if tls is None else tls.receive_some
        wait_readable = trio.lowlevel.wait_readable
        framing = self._framing
        remaining = self._length
        reusable = self.reusable
        data = self._rest
        self._rest = b""
        size = remaining if framing == _LENGTH and remaining < _RECV else _RECV
        rest = b""  # chunked: an unfinished line of the previous read
        need = 0  # chunked: bytes of the current chunk's data still to come
        step = _SIZE  # chunked: what comes next when not inside a chunk's data
        chunk_size = _CHUNK_SIZE.match
        done = False
        try:
            while True:
                if data:
                    if framing == _CHUNKED:
                        if rest:
                            data = rest + data
                            rest = b""
                        pieces: list[bytes] = []
                        pos = 0
                        end = len(data)
                        while pos < end:
                            if need:
                                stop = pos + need
                                if stop > end:
                                    pieces.append(data[pos:])
                                    need = stop - end
                                    pos = end
                                    break
                                pieces.append(data[pos:stop])
                                need = 0
                                pos = stop
                                step = _CRLF
                            elif step == _CRLF:
                                if data.startswith(b"\r\n", pos):
                                    pos += 2
                                elif data[pos] == 10:
                                    pos += 1
                                elif data[pos] == 13 and pos + 1 == end:
                                    break  # half of a CRLF
                                else:
                                    raise _malformed("chunked body", data[pos : pos + 40])
                                step = _SIZE
                            elif step == _SIZE:
                                match = chunk_size(data, pos)
                                if match is None:
                                    if data.find(b"\n", pos) >= 0 or end - pos > 4096:
                                        raise _malformed("chunk size line", data[pos : pos + 40])
                                    break
                                pos = match.end()
                                need = int(match[1], 16)
                                if not need:
                                    step = _TRAILER
                            else:  # trailer fields, ignored, up to an empty line
                                eol = data.find(b"\n", pos)
                                if eol < 0:
                                    if end - pos > _MAX_HEAD:
                                        raise _malformed("trailer section", b"")
                                    break
                                if eol == pos or (eol == pos + 1 and data[pos] == 13):
                                    step = _DONE
                                    pos = eol + 1
                                    break
                                pos = eol + 1
                        if pos < end:
                            if step == _DONE:
                                reusable = False  # bytes after the body: junk
                            else:
                                rest = data[pos:]
                        done = step == _DONE
                        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    elif framing == _LENGTH:
                        if len(data) >= remaining:
                            if len(data) > remaining:  # only bytes read along with the head
                                reusable = False
                                data = data[:remaining]
                            done = True
                        else:
                            remaining -= len(data)
                            if remaining < _RECV:
                                size = remaining  # never read past the body
                    if done:
                        self.finish(reusable)
                        if data:
                            yield data
                        return
                    if data:
                        yield data
                # Odd while waiting: see _Watch.
                watch.count += 1
                if tls_receive is None:
                    while True:
                        await wait_readable(sock)
                        try:
                            data = recv(size)
                            break
                        except BlockingIOError:
                            pass
                else:
                    data = bytes(await tls_receive(size))
                watch.count += 1
                if not data:
                    if framing == _CLOSE:
                        self.finish(reusable=False)
                        return
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection in the middle of the body"
                    )
        except Exception as exc:
            self.abort()
            if watch.fired:
                raise _read_timeout(watch) from None
            if isinstance(exc, _TRANSPORT_ERRORS):
                raise httpx.ReadError(_reason(exc)) from exc
            raise
        except BaseException:
            self.abort()
            raise

    def finish(self, reusable: bool) -> None:
        """The body is complete: pool the connection, or close it."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._watch.done = True
        if reusable:
            self._release(conn)
        else:
            conn.close()

    def abort(self) -> None:
        conn = self._conn
        self._watch.done = True
        if conn is not None:
            self._conn = None
            conn.close()

    async def aclose(self) -> None:
        # Closing before the end (the caller stopped reading, or was cancelled) closes the
        # connection: whatever is left of the body would otherwise precede the next answer.
        # No checkpoint here: this runs in cancelled code and must not raise.
        self.abort()


@final
class _SocketStream(trio.abc.Stream):
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
                return sock.recv(max_bytes or _RECV)
            except BlockingIOError:
                pass

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.checkpoint()


@final
class _Watch:
    """One exchange's reads as the watchdog sees them.

    The reader adds one to ``count`` when it starts waiting for bytes and one when the wait is
    over, so ``count`` is odd while it waits; that is all a read costs. A count that stays odd
    and unchanged for ``limit`` seconds is a stalled read: the watchdog sets ``fired`` and
    closes the connection, which wakes the reader with an error it reports as a timeout. Time
    the caller spends between reads (count even) never counts."""

    __slots__ = ("conn", "count", "done", "fired", "limit", "period", "seen", "seen_at")

    def __init__(self, conn: _Connection, limit: float | None) -> None:
        self.conn = conn
        self.limit = math.inf if limit is None else limit
        # How often the watchdog looks (never 0: a zero timeout must not spin it).
        self.period = max(self.limit / 8, 0.001)
        self.count = 0
        self.done = False
        self.fired = False
        self.seen = 0
        self.seen_at = 0.0


@final
class _Watchdog:
    """Checks the read watches of one trio run every 1/8 of their limit, from a system task.

    A stall is seen between ``limit`` and ``limit * 9/8`` seconds after the bytes stopped."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._nap: trio.CancelScope | None = None

    def add(self, watch: _Watch) -> None:
        """Start watching; the reader is about to wait (odd count)."""
        now = trio.current_time()
        watch.seen = watch.count
        watch.seen_at = now
        due = now + watch.period
        heapq.heappush(self._due, (due, next(self._order), watch))
        nap = self._nap
        if nap is not None and due < nap.deadline:
            nap.deadline = due

    async def run(self) -> None:
        due = self._due
        while True:
            now = trio.current_time()
            while due and due[0][0] <= now:
                watch = heapq.heappop(due)[2]
                if watch.done:
                    continue
                count = watch.count
                if count != watch.seen or not count & 1:
                    watch.seen = count
                    watch.seen_at = now
                elif now - watch.seen_at >= watch.limit:
                    watch.fired = True
                    watch.done = True
                    watch.conn.close()
                    continue
                check = now + watch.period
                if count & 1:
                    check = min(check, watch.seen_at + watch.limit)
                heapq.heappush(due, (check, next(self._order), watch))
            with trio.CancelScope(deadline=due[0][0] if due else math.inf) as nap:
                self._nap = nap
                await trio.sleep_forever()
            self._nap = None


_WATCHDOG: Final[trio.lowlevel.RunVar[_Watchdog]] = trio.lowlevel.RunVar("http_read_watchdog")


def _watchdog() -> _Watchdog:
    try:
        return _WATCHDOG.get()
    except LookupError:
        dog = _Watchdog()
        _WATCHDOG.set(dog)
        trio.lowlevel.spawn_system_task(dog.run, name="aleph_trio http read watchdog")
        return dog


class _Dropped(Exception):
    """The connection failed before any byte of an answer arrived (``error`` says how)."""

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


_TRANSPORT_ERRORS: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


async def _send(
    conn: _Connection, payload: bytes, timeout: float | None, request: httpx.Request
) -> None:
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
    except _TRANSPORT_ERRORS as exc:
        raise _Dropped(httpx.WriteError(_reason(exc), request=request)) from exc
    if scope.cancelled_caught:
        raise httpx.WriteTimeout("sending the request timed out", request=request)


async def _receive(conn: _Connection) -> bytes:
    tls = conn.tls
    if tls is not None:
        return bytes(await tls.receive_some(_RECV))
    sock = conn.sock
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(_RECV)
        except BlockingIOError:
            pass


_Head = tuple[int, bytes, int, list[tuple[bytes, bytes]], bytes]


async def _read_head(conn: _Connection, watch: _Watch, request: httpx.Request) -> _Head:
    """Status, reason, HTTP/1 minor version, headers and the bytes read past the head, of the
    first answer that is not an interim 1xx one."""
    buffer = b""
    scanned = 0  # where the search for the head's end goes on: a dripping head stays linear
    received = False
    watch.count = 1
    if watch.limit != math.inf:
        _watchdog().add(watch)
    while True:
        try:
            data = await _receive(conn)
        except Exception as exc:
            if watch.fired:
                raise _read_timeout(watch) from None
            if not isinstance(exc, _TRANSPORT_ERRORS):
                raise
            error = httpx.ReadError(_reason(exc), request=request)
            if received:
                raise error from exc
            raise _Dropped(error) from exc
        watch.count += 1
        if not data:
            if received:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection in the middle of the response head",
                    request=request,
                )
            raise _Dropped(
                httpx.RemoteProtocolError(
                    "the server closed the connection without answering", request=request
                )
            )
        received = True
        buffer += data
        while True:
            match = _HEAD_END.search(buffer, scanned)
            if match is None or match.start() > _MAX_HEAD:
                if len(buffer) > _MAX_HEAD:
                    raise httpx.RemoteProtocolError(
                        f"the response head is larger than {_MAX_HEAD} bytes", request=request
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
        raise _malformed("status line", lines[0], request)
    headers: list[tuple[bytes, bytes]] = []
    for line in itertools.islice(lines, 1, None):
        field = _FIELD_LINE.fullmatch(line)
        if field is None:
            raise _malformed("header line", line, request)
        headers.append((field[1], field[2]))
    return int(status_line[2]), status_line[3] or b"", int(status_line[1]), headers


def _framing(
    head_only: bool, status: int, version: int, headers: list[tuple[bytes, bytes]]
) -> tuple[int, int, bool]:
    """How the body ends (``_LENGTH``, ``_CHUNKED`` or ``_CLOSE``), its length, and whether
    the connection may carry another request afterwards."""
    reusable = version == 1
    codings: list[bytes] = []
    lengths: set[bytes] = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b","))
        elif lowered == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif lowered == b"connection":
            if b"close" in (t.strip().lower() for t in value.split(b",")):
                reusable = False
    if head_only or status in (204, 304):
        return _LENGTH, 0, reusable
    if codings:
        # A content-length next to a transfer-encoding is a smuggling attempt or a broken
        # intermediary: the encoding wins and the connection is not used again.
        if lengths:
            reusable = False
        if codings[-1] == b"chunked":
            return _CHUNKED, 0, reusable
        return _CLOSE, 0, False
    if lengths:
        if len(lengths) != 1:
            raise httpx.RemoteProtocolError(f"conflicting content-length values {lengths}")
        (text,) = lengths
        if not text.isdigit() or len(text) > 18:
            raise httpx.RemoteProtocolError(f"invalid content-length {text!r}")
        return _LENGTH, int(text), reusable
    return _CLOSE, 0, False


def _request_bytes(request: httpx.Request, body: bytes) -> tuple[bytes, bool]:
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


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_timeout(watch: _Watch) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(f"no bytes of the answer for {watch.limit:g} s")


def _malformed(
    what: str, data: bytes, request: httpx.Request | None = None
) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(f"malformed {what}: {data[:80]!r}", request=request)


def _reason(exc: BaseException) -> str:
    """What went wrong, from the OS or TLS error behind ``exc`` when there is one."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause) if cause is not None else ""
    return text or type(exc).__name__


def _os_reason(exc: OSError) -> str:
    """trio's connect error says "all attempts failed"; the reasons are in its cause."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = dict.fromkeys(
            e.strerror or str(e) for e in cause.exceptions if isinstance(e, OSError)
        )
        if reasons:
            return "; ".join(reasons)
    return exc.strerror or str(exc)


def env_proxy_mounts(
    *, verify: ssl.SSLContext | bool = True
) -> dict[str, httpx.AsyncBaseTransport | None]:
    """The proxy mounts httpx builds from ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY`` (and their lowercase forms) when it makes its own transport.

    httpx stops reading those variables once it is given a ``transport``, so a client keeps
    them with ``httpx.AsyncClient(transport=LeanTransport(), mounts=env_proxy_mounts())``:
    proxied URLs go through httpx's proxy transports, the rest (``None`` mounts, the
    ``NO_PROXY`` hosts among them) through the given transport."""
    found = urllib.request.getproxies()
    targets: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        proxy = found.get(scheme)
        if proxy:
            targets[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    for host in (h.strip() for h in found.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        if "://" in host:
            targets[host] = None
        elif _is_ip(host, ipaddress.IPv4Address):
            targets[f"all://{host}"] = None
        elif _is_ip(host, ipaddress.IPv6Address):
            targets[f"all://[{host}]"] = None
        elif host.lower() == "localhost":
            targets[f"all://{host}"] = None
        else:  # a domain: itself and its subdomains
            targets[f"all://*{host}"] = None
    return {
        pattern: None if url is None else httpx.AsyncHTTPTransport(proxy=url, verify=verify)
        for pattern, url in targets.items()
    }


def _is_ip(host: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(host.split("/")[0])
    except ValueError:
        return False
    return True
