"""A strict, sans-IO HTTP/1.1 request reader for the few routes the gateway serves.

The gateway answers ``GET``/``HEAD`` on a handful of paths and never forwards a request, so
this reads request heads (RFC 9112 §2-§5) and skips ``Content-Length`` bodies; anything it
does not need is refused rather than interpreted: chunked or other transfer codings (501),
folded or malformed header lines (400), a head past the limit (431), a body past the limit
(413). After a refusal the connection is closed, so no byte is ever read as something else.
It is fed bytes and hands out requests; the Trio side is in ``_http.py``.
"""

from __future__ import annotations

import re
from typing import Final, final

import attrs

__all__ = ["HttpRequest", "Refusal", "RequestReader"]

_TOKEN: Final = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE: Final = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])")
_OTHER_VERSION: Final = re.compile(_TOKEN + rb" [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")
_HEADER: Final = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([\x20-\x7e\x80-\xff\t]*?)[ \t]*")


@attrs.frozen
class HttpRequest:
    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]  #: names lower-cased, in the order received
    keep_alive: bool

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@attrs.frozen
class Refusal:
    """A request that cannot be served: answer ``status`` and close."""

    status: int
    message: str


@final
class RequestReader:
    """Feed it bytes with :meth:`feed`; :meth:`next` gives the next whole request, a
    :class:`Refusal`, or ``None`` when more bytes are needed."""

    def __init__(self, *, max_head: int, max_body: int) -> None:
        self._buffer = bytearray()
        self._max_head = max_head
        self._max_body = max_body
        self._skip = 0  #: body bytes of the last request still to be dropped
        self.refused = False

    @property
    def buffered(self) -> bool:
        """Whether bytes of a next request are already here."""
        return len(self._buffer) > self._skip

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    def next(self) -> HttpRequest | Refusal | None:
        if self.refused:
            return None
        buffer = self._buffer
        if self._skip:
            dropped = min(self._skip, len(buffer))
            del buffer[:dropped]
            self._skip -= dropped
            if self._skip:
                return None
        while buffer.startswith(b"\r\n"):  # RFC 9112 §2.2: empty lines before a request
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n", 0, self._max_head + 4)
        if end < 0:
            if len(buffer) > self._max_head:
                return self._refuse(431, "Request header fields too large")
            return None
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        outcome = self._parse(head)
        if isinstance(outcome, Refusal):
            self.refused = True
        return outcome

    def _refuse(self, status: int, message: str) -> Refusal:
        self.refused = True
        return Refusal(status, message)

    def _parse(self, head: bytes) -> HttpRequest | Refusal:
        lines = head.split(b"\r\n")
        line = _REQUEST_LINE.fullmatch(lines[0])
        if line is None:
            if _OTHER_VERSION.fullmatch(lines[0]):
                return Refusal(505, "HTTP version not supported")
            return Refusal(400, "Bad request line")
        method, target, minor = line.groups()
        headers: list[tuple[bytes, bytes]] = []
        for raw in lines[1:]:
            header = _HEADER.fullmatch(raw)
            if header is None:
                return Refusal(400, "Bad header line")
            headers.append((header.group(1).lower(), header.group(2)))
        request = HttpRequest(
            method.decode("ascii"),
            target.decode("ascii"),
            tuple(headers),
            keep_alive=_keep_alive(headers, minor == b"1"),
        )
        if minor == b"1" and request.header(b"host") is None:
            return Refusal(400, "Host header missing")
        if request.header(b"transfer-encoding") is not None:
            return Refusal(501, "Transfer codings are not supported")
        lengths = {value for key, value in headers if key == b"content-length"}
        if lengths:
            if len(lengths) > 1 or not next(iter(lengths)).isdigit():
                return Refusal(400, "Bad Content-Length")
            length = int(next(iter(lengths)))
            if length > self._max_body:
                return Refusal(413, "Request body too large")
            self._skip = length
        return request


def _keep_alive(headers: list[tuple[bytes, bytes]], http11: bool) -> bool:
    tokens = {
        token.strip().lower()
        for key, value in headers
        if key == b"connection"
        for token in value.split(b",")
    }
    if b"close" in tokens:
        return False
    return http11 or b"keep-alive" in tokens
