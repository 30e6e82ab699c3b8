"""Plain HTTP/1.1 on the gateway's port, through h11: keep-alive, limits, deadlines.

The listener reads a request head first; when it is not a WebSocket upgrade the stream comes
here with the bytes already read. Each request gets ``request_timeout_s`` to arrive whole and
be answered (a slow client is cut off, not waited for), and an idle keep-alive connection is
closed after ``idle_timeout_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import final

import attrs
import h11
import trio

from ..kernel import component_logger
from ._routes import Response, Routes

__all__ = ["MAX_HEAD_BYTES", "HttpLimits", "HttpServer"]

log = component_logger("server")

#: The largest request head (request line and headers) accepted; past it: 431.
MAX_HEAD_BYTES = 16 * 1024
#: The largest request body read (and dropped: no route takes one); past it: 413.
MAX_BODY_BYTES = 64 * 1024
RECEIVE_CHUNK = 65536


@attrs.frozen
class HttpLimits:
    request_timeout_s: float
    idle_timeout_s: float


class _Closed(Exception):
    """The peer went away, or broke HTTP badly enough that nothing more can be said."""


@final
class HttpServer:
    """Answers HTTP requests on one stream at a time with :class:`Routes`."""

    def __init__(self, routes: Routes, limits: Callable[[], HttpLimits]) -> None:
        self._routes = routes
        self._limits = limits

    async def serve(self, stream: trio.abc.Stream, initial: bytes) -> None:
        """Serve requests on ``stream`` (starting with the bytes in ``initial``) until the
        client closes, asks to close, idles past the limit, or breaks the protocol."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        conn.receive_data(initial)
        first = True
        try:
            while True:
                limits = self._limits()
                if not first:
                    # Idle: wait for the next request to start, then give it the full budget.
                    with trio.move_on_after(limits.idle_timeout_s) as idle:
                        if not await _await_bytes(conn, stream):
                            return
                    if idle.cancelled_caught:
                        return
                first = False
                with trio.move_on_after(limits.request_timeout_s) as scope:
                    if not await self._one(conn, stream):
                        return
                if scope.cancelled_caught:
                    log.debug("http: request not finished within %g s", limits.request_timeout_s)
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except _Closed:
            return
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _one(self, conn: h11.Connection, stream: trio.abc.Stream) -> bool:
        """Read one request and answer it; ``False`` when the connection is done."""
        try:
            request = await _next_event(conn, stream)
            if not isinstance(request, h11.Request):
                return False
            if _head_size(request) > MAX_HEAD_BYTES:
                # h11 bounds only a head still arriving; one that came whole is measured here.
                message = "Request header fields too large\n"
                await _send(conn, stream, Response.text(431, message), close=True)
                return False
            body = 0
            while True:
                event = await _next_event(conn, stream)
                if isinstance(event, h11.Data):
                    body += len(event.data)
                    if body > MAX_BODY_BYTES:
                        await _send(conn, stream, Response.text(413, "Request body too large\n"))
                        return False
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return False
        except h11.RemoteProtocolError as exc:
            if conn.our_state is h11.IDLE or conn.our_state is h11.SEND_RESPONSE:
                status = exc.error_status_hint
                message = "Request header fields too large\n" if status == 431 else "Bad request\n"
                await _send(conn, stream, Response.text(status, message), close=True)
            return False
        try:
            response = await self._routes.answer(
                request.method.decode("ascii", "replace"),
                request.target.decode("ascii", "replace"),
                request.headers,
            )
        except Exception:
            log.exception("http: answering %s failed", request.target.decode("ascii", "replace"))
            response = Response.text(500, "Internal server error\n")
        await _send(conn, stream, response, head_only=request.method == b"HEAD")
        return True


def _head_size(request: h11.Request) -> int:
    size = len(request.method) + len(request.target) + 12
    return size + sum(len(name) + len(value) + 4 for name, value in request.headers)


async def _await_bytes(conn: h11.Connection, stream: trio.abc.Stream) -> bool:
    """Wait until a next request has begun; ``False`` when the peer closed instead."""
    if conn.trailing_data[0]:
        return True
    data = await _receive(stream)
    conn.receive_data(data)
    return bool(data)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await _receive(stream))
            continue
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            raise _Closed
        return event


async def _receive(stream: trio.abc.Stream) -> bytes:
    try:
        return bytes(await stream.receive_some(RECEIVE_CHUNK))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""


async def _send(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    response: Response,
    *,
    head_only: bool = False,
    close: bool = False,
) -> None:
    headers = [*response.headers, ("content-length", str(len(response.body)))]
    if close:
        headers.append(("connection", "close"))
    head = h11.Response(
        status_code=response.status, headers=headers, reason=HTTPStatus(response.status).phrase
    )
    data = conn.send(head) or b""
    if response.body and not head_only:
        data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise _Closed from exc
