"""Where an HTTP/1.1 response body ends, without any I/O: what the head says about it
(:func:`body_decoder`) and the decoders that find that end in the bytes as they arrive.

Like h11 these are plain objects: the reader gives each decoder the bytes of every network read
(:meth:`~ChunkedDecoder.feed`) and the end of the connection (:meth:`~ChunkedDecoder.eof`); the
decoder answers with the body's bytes, says when the body is ``done`` and keeps whatever came
after it as ``leftover``. Malformed framing raises :class:`BodyError`. Nothing here imports trio
or httpx, so every framing can be tested on its own, with any split of its bytes.

A decoder is called once per network read with whatever that read brought, so it works on whole
buffers (``re.match``, ``bytes.find``, slices) and never byte by byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, final

__all__ = [
    "MAX_SIZE_LINE",
    "MAX_TRAILER",
    "BodyDecoder",
    "BodyError",
    "ChunkedDecoder",
    "CloseDecoder",
    "LengthDecoder",
    "body_decoder",
]

#: The longest chunk-size line (size and extensions) accepted.
MAX_SIZE_LINE: Final = 4096
#: The largest trailer section accepted after the last chunk.
MAX_TRAILER: Final = 65536

_TRUNCATED: Final = "the server closed the connection in the middle of the body"

_chunk_size: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n").match

# What the chunked decoder expects next.
_SIZE: Final = 0  # a chunk-size line
_DATA: Final = 1  # more of the current chunk's data (``_need`` bytes)
_CRLF: Final = 2  # the line end after a chunk's data
_TRAILER: Final = 3  # trailer fields up to an empty line
_DONE: Final = 4


class BodyError(Exception):
    """The body is not framed as its head said: a malformed chunk, an oversized line, or a
    connection closed before the body's end."""


def _malformed(what: str, data: bytes) -> BodyError:
    return BodyError(f"malformed {what}: {data[:80]!r}")


@final
class ChunkedDecoder:
    """``Transfer-Encoding: chunked``: the chunks' data, then the trailer section (ignored).

    Chunk extensions are ignored; a bare LF is taken for a CRLF, as most clients do."""

    __slots__ = ("_need", "_rest", "_step", "_trailer", "done", "leftover")

    def __init__(self) -> None:
        self._step = _SIZE
        self._need = 0  # bytes of the current chunk's data still to come
        self._rest = b""  # an unfinished line of the previous feed
        self._trailer = 0  # trailer bytes so far
        #: The body has ended (the last chunk and the trailer section have come).
        self.done = False
        #: What came after the body's end (nothing, on a connection that can be used again).
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        """The body's bytes in ``data`` (which continues what the previous feeds had), joined;
        ``b""`` when it held none. Raises :class:`BodyError` when the framing is broken."""
        step = self._step
        if step == _DONE:
            self.leftover += data
            return b""
        rest = self._rest
        if rest:
            data = rest + data
            self._rest = b""
        need = self._need
        pieces: list[bytes] = []
        pos = 0
        end = len(data)
        while pos < end:
            if step == _SIZE:
                match = _chunk_size(data, pos)
                if match is None:
                    if data.find(b"\n", pos) >= 0:
                        raise _malformed("chunk size line", data[pos : pos + 40])
                    if end - pos > MAX_SIZE_LINE:
                        raise BodyError(f"chunk size line longer than {MAX_SIZE_LINE} bytes")
                    break
                pos = match.end()
                size = int(match[1], 16)
                if not size:
                    step = _TRAILER
                    continue
                stop = pos + size
                if stop > end:
                    pieces.append(data[pos:])
                    need = stop - end
                    step = _DATA
                    pos = end
                    break
                pieces.append(data[pos:stop])
                # The usual read: whole chunks, each with its CRLF.
                if data.startswith(b"\r\n", stop):
                    pos = stop + 2
                else:
                    pos = stop
                    step = _CRLF
            elif step == _DATA:
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
                    raise _malformed("chunked body (no CRLF after a chunk)", data[pos : pos + 40])
                step = _SIZE
            else:  # trailer fields, ignored, up to an empty line
                eol = data.find(b"\n", pos)
                if eol < 0:
                    if self._trailer + end - pos > MAX_TRAILER:
                        raise BodyError(f"trailer section larger than {MAX_TRAILER} bytes")
                    break
                if eol == pos or (eol == pos + 1 and data[pos] == 13):
                    step = _DONE
                    self.done = True
                    self.leftover = data[eol + 1 :]
                    pos = end
                    break
                self._trailer += eol + 1 - pos
                if self._trailer > MAX_TRAILER:
                    raise BodyError(f"trailer section larger than {MAX_TRAILER} bytes")
                pos = eol + 1
        if pos < end:
            self._rest = data[pos:]
        self._step = step
        self._need = need
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def eof(self) -> None:
        """The connection closed: an error unless the body had ended."""
        if not self.done:
            raise BodyError(_TRUNCATED)


@final
class LengthDecoder:
    """A body of ``Content-Length`` bytes (``done`` at once when that is 0)."""

    __slots__ = ("done", "leftover", "remaining")

    def __init__(self, length: int) -> None:
        #: Bytes of the body still to come: a reader reads no more than that.
        self.remaining = length
        self.done = not length
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        """The body's bytes in ``data``; what follows its end goes to ``leftover``."""
        remaining = self.remaining
        if len(data) < remaining:
            self.remaining = remaining - len(data)
            return data
        if self.done:
            self.leftover += data
            return b""
        self.remaining = 0
        self.done = True
        if len(data) > remaining:
            self.leftover = data[remaining:]
            return data[:remaining]
        return data

    def eof(self) -> None:
        """The connection closed: an error unless the body had ended."""
        if not self.done:
            raise BodyError(_TRUNCATED)


@final
class CloseDecoder:
    """A body that ends when the server closes the connection."""

    __slots__ = ("done", "leftover")

    def __init__(self) -> None:
        self.done = False
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        """Every byte is the body's."""
        return data

    def eof(self) -> None:
        """The connection closed: the body is complete."""
        self.done = True


BodyDecoder = ChunkedDecoder | LengthDecoder | CloseDecoder


def body_decoder(
    head_only: bool, status: int, version: int, headers: Iterable[tuple[bytes, bytes]]
) -> tuple[BodyDecoder, bool]:
    """The decoder that finds the end of the body announced by a response head (status, HTTP/1
    minor version and headers; ``head_only`` for the answer to a HEAD request), and whether the
    connection may carry another request afterwards. Raises :class:`BodyError` for a
    ``Content-Length`` that cannot be trusted."""
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
        return LengthDecoder(0), reusable
    if codings:
        # A content-length next to a transfer-encoding is a smuggling attempt or a broken
        # intermediary: the encoding wins and the connection is not used again.
        if lengths:
            reusable = False
        if codings[-1] == b"chunked":
            return ChunkedDecoder(), reusable
        return CloseDecoder(), False
    if lengths:
        if len(lengths) != 1:
            raise BodyError(f"conflicting content-length values {sorted(lengths)}")
        (text,) = lengths
        if not text.isdigit() or len(text) > 18:
            raise BodyError(f"invalid content-length {text!r}")
        return LengthDecoder(int(text)), reusable
    return CloseDecoder(), False
