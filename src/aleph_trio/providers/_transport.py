"""A lean httpx transport for provider traffic: HTTP/1.1 over trio sockets with keep-alive
pooling, whose response bodies cost as little Python as possible per network read.

httpx's default transport reads every piece of a streamed answer through httpcore: a
``fail_after`` per read, several exception-mapping context managers, h11's event machinery
and a stack of generators. Here one async generator per response reads straight from a
non-blocking socket and feeds each read to a sans-I/O decoder of the body's framing. Read
timeouts are enforced by a watchdog task, which the transport is given, instead of a cancel
scope per read.

This module holds :class:`LeanTransport` itself: the pool, connecting and one exchange. The
connection and the request and response head are in :mod:`._http1`, the body's framing in
:mod:`._body_decoders` (no I/O) and its reading in :mod:`._response_body`, the read timeouts in
:mod:`._read_watchdog`.

httpx sets up proxies from ``HTTP(S)_PROXY`` only when it builds its own transport; pass
:func:`env_proxy_mounts` (from :mod:`._proxies`) as ``mounts=`` to keep that behaviour next to
this transport.
"""

from __future__ import annotations

import math
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Final, final

import httpx
import trio

from ._body_decoders import BodyError, body_decoder
from ._http1 import (
    Connection,
    Dropped,
    Origin,
    RawSocketStream,
    error_reason,
    read_head,
    request_bytes,
    send_request,
)
from ._proxies import env_proxy_mounts
from ._read_watchdog import Watch, Watchdog
from ._response_body import ResponseBody

__all__ = ["LeanTransport", "env_proxy_mounts"]

_MAX_IDLE: Final = 8
_KEEPALIVE_EXPIRY: Final = 30.0


@final
class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over trio sockets (``https`` through :class:`trio.SSLStream`), keeping up to
    ``max_idle_per_origin`` idle connections per (scheme, host, port) for up to
    ``keepalive_expiry`` seconds.

    ``ssl_context`` defaults to what httpx uses for ``verify=True``, built (in a worker thread:
    loading the CA bundle takes tens of milliseconds) at the first ``https`` connection, so a
    gateway that never leaves plain HTTP never pays for it; its ALPN protocols are set to
    ``http/1.1``. Requests take the connect, read and write timeouts of
    ``request.extensions["timeout"]`` (what :class:`httpx.AsyncClient` puts there); the read
    timeout is the longest wait for the next bytes of the answer. ``watchdog`` enforces the
    read timeouts: it must be running (see :func:`._read_watchdog.open_watchdog`) whenever a
    request has one, or the request is refused before it is sent.
    """

    def __init__(
        self,
        *,
        watchdog: Watchdog,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_per_origin: int = _MAX_IDLE,
        keepalive_expiry: float = _KEEPALIVE_EXPIRY,
    ) -> None:
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["http/1.1"])
        self._watchdog = watchdog
        self._ssl_context = ssl_context
        self._max_idle = max_idle_per_origin
        self._expiry = keepalive_expiry
        self._idle: dict[Origin, list[Connection]] = {}
        self._closed = False

    async def _default_ssl_context(self) -> ssl.SSLContext:
        context = await trio.to_thread.run_sync(httpx.create_ssl_context)
        context.set_alpn_protocols(["http/1.1"])
        if self._ssl_context is None:  # another first connection may have been quicker
            self._ssl_context = context
        return self._ssl_context

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
        if read_timeout is not None and not self._watchdog.running:
            raise RuntimeError(
                "LeanTransport's read watchdog is not running: a read timeout would never fire"
            )
        payload, close_asked = request_bytes(request, await request.aread())
        head_only = request.method == "HEAD"

        conn = self._checkout(origin)
        while True:
            if conn is None:
                conn = await self._connect(origin, _seconds(timeouts.get("connect")), request)
            watch = Watch(conn, read_timeout)
            try:
                await send_request(conn, payload, _seconds(timeouts.get("write")), request)
                head = await read_head(conn, watch, self._watchdog, request)
            except Dropped as dropped:
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
            decoder, reusable = body_decoder(head_only, status, version, headers)
        except BodyError as exc:
            watch.done = True
            conn.close()
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        body = ResponseBody(self._release, conn, watch, decoder, reusable and not close_asked, rest)
        if decoder.done:  # no body at all
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

    def _release(self, conn: Connection) -> None:
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

    def _checkout(self, origin: Origin) -> Connection | None:
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
        self, origin: Origin, timeout: float | None, request: httpx.Request
    ) -> Connection:
        scheme, host, port = origin
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        with trio.CancelScope(deadline=deadline):
            context = None
            if scheme == "https":
                context = self._ssl_context or await self._default_ssl_context()
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
            conn = Connection(origin, sock)
            if context is not None:
                tls = trio.SSLStream(
                    RawSocketStream(sock),
                    context,
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
                        f"TLS handshake with {host}:{port} failed: {error_reason(exc)}",
                        request=request,
                    ) from exc
                except BaseException:
                    conn.close()
                    raise
                conn.tls = tls
            return conn
        raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


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
