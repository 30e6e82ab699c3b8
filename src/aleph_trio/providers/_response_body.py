"""The stream that reads a response body (:class:`ResponseBody`) off its connection.

The framing itself (chunked, content-length, until close) is decoded by the sans-I/O decoders
of :mod:`._body_decoders`; this module only reads the socket and feeds them, one async
generator per response with everything the loop touches in local variables, so that a network
read costs as little Python as possible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, final

import httpx
import trio

from ._body_decoders import BodyError, LengthDecoder
from ._http1 import RECV, TRANSPORT_ERRORS, error_reason
from ._read_watchdog import read_timeout

if TYPE_CHECKING:
    from ._body_decoders import BodyDecoder
    from ._http1 import Connection
    from ._read_watchdog import Watch

__all__ = ["ResponseBody"]


@final
class ResponseBody(httpx.AsyncByteStream):
    """A response body, read from its connection as the caller iterates: ``decoder`` finds its
    end, ``rest`` is what was read along with the head."""

    def __init__(
        self,
        release: Callable[[Connection], None],
        conn: Connection,
        watch: Watch,
        decoder: BodyDecoder,
        reusable: bool,
        rest: bytes,
    ) -> None:
        self._release = release
        self._conn: Connection | None = conn
        self._watch = watch
        self._decoder = decoder
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
        decoder = self._decoder
        feed = decoder.feed
        # A content-length body is never read past its end: the next answer's bytes stay in
        # the socket for the next request.
        bounded = decoder if isinstance(decoder, LengthDecoder) else None
        size = RECV
        reusable = self.reusable
        data = self._rest
        self._rest = b""
        try:
            while True:
                if data:
                    data = feed(data)
                    if decoder.done:
                        # Bytes after the body: junk, or an answer nobody asked for yet.
                        self.finish(reusable and not decoder.leftover)
                        if data:
                            yield data
                        return
                    if data:
                        yield data
                if bounded is not None and bounded.remaining < RECV:
                    size = bounded.remaining
                # Odd while waiting: see Watch.
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
                    decoder.eof()
                    self.finish(reusable=False)
                    return
        except Exception as exc:
            self.abort()
            if watch.fired:
                raise read_timeout(watch) from None
            if isinstance(exc, BodyError):
                raise httpx.RemoteProtocolError(str(exc)) from None
            if isinstance(exc, TRANSPORT_ERRORS):
                raise httpx.ReadError(error_reason(exc)) from exc
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
