"""Plain HTTP/1.1 on the gateway's port: keep-alive, pipelining, limits, deadlines.

The listener reads a request head first; when it is not a WebSocket upgrade the stream comes
here with the bytes already read. Each request gets ``request_timeout_s`` to arrive whole and
be answered (a slow client is cut off, not waited for), and an idle keep-alive connection is
closed after ``idle_timeout_s``. Answers are written when the server is about to wait for the
peer, so requests that arrived together are answered in one write.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import final

import attrs
import trio

from ..kernel import component_logger
from ._parser import HttpRequest, Refusal, RequestReader
from ._response import Response
from ._routes import Routes

__all__ = ["MAX_HEAD_BYTES", "HttpLimits", "HttpServer"]

log = component_logger("server")

#: The largest request head (request line and headers) accepted; past it: 431.
MAX_HEAD_BYTES = 16 * 1024
#: The largest request body accepted (and dropped: no route takes one); past it: 413.
MAX_BODY_BYTES = 64 * 1024
RECEIVE_CHUNK = 65536


@attrs.frozen
class HttpLimits:
    request_timeout_s: float
    idle_timeout_s: float


class _Closed(Exception):
    """The peer went away."""


@final
class HttpServer:
    """Answers HTTP requests on one stream at a time with :class:`Routes`."""

    def __init__(self, routes: Routes, limits: Callable[[], HttpLimits]) -> None:
        self._routes = routes
        self._limits = limits

    async def serve(self, stream: trio.abc.Stream, initial: bytes) -> None:
        """Serve requests on ``stream`` (starting with the bytes in ``initial``) until the
        client closes, asks to close, idles past the limit, or breaks the protocol.

        One cancel scope bounds the connection; its deadline moves: ``idle_timeout_s`` while
        waiting for a next request to begin, ``request_timeout_s`` once it has."""
        http = _Exchange(stream, initial)
        try:
            with trio.CancelScope() as scope:
                limits = self._limits()
                scope.deadline = trio.current_time() + limits.request_timeout_s
                while await self._one(http):
                    limits = self._limits()
                    if not http.reader.buffered:
                        scope.deadline = trio.current_time() + limits.idle_timeout_s
                        if not await http.receive():
                            return
                    scope.deadline = trio.current_time() + limits.request_timeout_s
                await http.flush()
            if scope.cancelled_caught:
                log.debug("http: a request or an idle wait outlasted its deadline")
        except _Closed:
            return
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _one(self, http: _Exchange) -> bool:
        """Read one request and queue its answer; ``False`` when the connection is done."""
        request = await http.next_request()
        if request is None:
            return False
        if isinstance(request, Refusal):
            http.queue(Response.text(request.status, request.message + "\n"), close=True)
            return False
        try:
            response = await self._routes.answer(request.method, request.target, request.headers)
        except Exception:
            log.exception("http: answering %s failed", request.target)
            response = Response.text(500, "Internal server error\n")
        http.queue(response, head_only=request.method == "HEAD", close=not request.keep_alive)
        return request.keep_alive


@final
class _Exchange:
    """One HTTP connection: the request reader, and answers queued until the next read."""

    def __init__(self, stream: trio.abc.Stream, initial: bytes) -> None:
        self.stream = stream
        self.reader = RequestReader(max_head=MAX_HEAD_BYTES, max_body=MAX_BODY_BYTES)
        self.reader.feed(initial)
        self._out = bytearray()

    def queue(self, response: Response, *, head_only: bool = False, close: bool = False) -> None:
        out = self._out
        out += b"HTTP/1.1 %d %s\r\n" % (response.status, _phrase(response.status))
        for name, value in response.headers:
            out += b"%s: %s\r\n" % (name.encode("ascii"), value.encode("latin-1"))
        out += b"content-length: %d\r\n" % len(response.body)
        if close:
            out += b"connection: close\r\n"
        out += b"\r\n"
        if not head_only:
            out += response.body

    async def flush(self) -> None:
        if self._out:
            data, self._out = bytes(self._out), bytearray()
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _Closed from exc

    async def next_request(self) -> HttpRequest | Refusal | None:
        """The next request; ``None`` when the peer closed first."""
        while True:
            request = self.reader.next()
            if request is not None:
                return request
            if not await self.receive():
                return None

    async def receive(self) -> bool:
        """Read more bytes (answers queued so far go out first); ``False`` at end of stream."""
        await self.flush()
        try:
            data = await self.stream.receive_some(RECEIVE_CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        self.reader.feed(data)
        return bool(data)


_PHRASES: dict[int, bytes] = {}


def _phrase(status: int) -> bytes:
    phrase = _PHRASES.get(status)
    if phrase is None:
        phrase = _PHRASES[status] = HTTPStatus(status).phrase.encode("ascii")
    return phrase
