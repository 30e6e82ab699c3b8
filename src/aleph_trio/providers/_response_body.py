"""A response body: how its head says it ends (:func:`body_framing`), and the stream that
reads it (:class:`ResponseBody`).

One async generator per response does the reading, the chunked decoding and the framing in
local variables, straight on the connection's non-blocking socket, so that a network read
costs as little Python as possible.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Final, final

import httpx
import trio

from ._http1 import MAX_HEAD, RECV, TRANSPORT_ERRORS, error_reason, malformed
from ._read_watchdog import read_timeout

if TYPE_CHECKING:
    from ._http1 import Connection
    from ._read_watchdog import Watch

__all__ = ["CHUNKED", "CLOSE", "LENGTH", "ResponseBody", "body_framing"]

_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")

# How a response body ends.
LENGTH: Final = 0  # after content-length bytes
CHUNKED: Final = 1  # after the last chunk and the trailer section
CLOSE: Final = 2  # when the server closes the connection

# What the chunked decoder expects next when it is not inside a chunk's data.
_SIZE: Final = 0  # a chunk-size line
_CRLF: Final = 1  # the line end after a chunk's data
_TRAILER: Final = 2  # trailer fields up to an empty line
_DONE: Final = 3


def body_framing(
    head_only: bool, status: int, version: int, headers: list[tuple[bytes, bytes]]
) -> tuple[int, int, bool]:
    """How the body ends (``LENGTH``, ``CHUNKED`` or ``CLOSE``), its length, and whether
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
        return LENGTH, 0, reusable
    if codings:
        # A content-length next to a transfer-encoding is a smuggling attempt or a broken
        # intermediary: the encoding wins and the connection is not used again.
        if lengths:
            reusable = False
        if codings[-1] == b"chunked":
            return CHUNKED, 0, reusable
        return CLOSE, 0, False
    if lengths:
        if len(lengths) != 1:
            raise httpx.RemoteProtocolError(f"conflicting content-length values {lengths}")
        (text,) = lengths
        if not text.isdigit() or len(text) > 18:
            raise httpx.RemoteProtocolError(f"invalid content-length {text!r}")
        return LENGTH, int(text), reusable
    return CLOSE, 0, False


@final
class ResponseBody(httpx.AsyncByteStream):
    """A response body, read from its connection as the caller iterates."""

    def __init__(
        self,
        release: Callable[[Connection], None],
        conn: Connection,
        watch: Watch,
        framing: int,
        length: int,
        reusable: bool,
        rest: bytes,
    ) -> None:
        self._release = release
        self._conn: Connection | None = conn
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
        size = remaining if framing == LENGTH and remaining < RECV else RECV
        rest = b""  # chunked: an unfinished line of the previous read
        need = 0  # chunked: bytes of the current chunk's data still to come
        step = _SIZE  # chunked: what comes next when not inside a chunk's data
        chunk_size = _CHUNK_SIZE.match
        done = False
        try:
            while True:
                if data:
                    if framing == CHUNKED:
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
                                    raise malformed("chunked body", data[pos : pos + 40])
                                step = _SIZE
                            elif step == _SIZE:
                                match = chunk_size(data, pos)
                                if match is None:
                                    if data.find(b"\n", pos) >= 0 or end - pos > 4096:
                                        raise malformed("chunk size line", data[pos : pos + 40])
                                    break
                                pos = match.end()
                                need = int(match[1], 16)
                                if not need:
                                    step = _TRAILER
                            else:  # trailer fields, ignored, up to an empty line
                                eol = data.find(b"\n", pos)
                                if eol < 0:
                                    if end - pos > MAX_HEAD:
                                        raise malformed("trailer section", b"")
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
                    elif framing == LENGTH:
                        if len(data) >= remaining:
                            if len(data) > remaining:  # only bytes read along with the head
                                reusable = False
                                data = data[:remaining]
                            done = True
                        else:
                            remaining -= len(data)
                            if remaining < RECV:
                                size = remaining  # never read past the body
                    if done:
                        self.finish(reusable)
                        if data:
                            yield data
                        return
                    if data:
                        yield data
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
                    if framing == CLOSE:
                        self.finish(reusable=False)
                        return
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection in the middle of the body"
                    )
        except Exception as exc:
            self.abort()
            if watch.fired:
                raise read_timeout(watch) from None
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
