"""A stand-in for an OpenAI-compatible provider: a small, fast HTTP/1.1 server of SSE streams.

It answers ``POST .../chat/completions`` with a server-sent-event stream in the shape the
gateway's ``openai`` provider parses: one ``data: {..., "choices":[{"index":0,"delta":{"content":
..}, ..., "finish_reason":null}]}`` event per chunk, then a chunk with ``finish_reason: "stop"``, a
usage chunk and ``data: [DONE]``; then it closes the connection (``connection: close``, no chunked
encoding). What to stream is read from the content of the request's last ``user`` message, a JSON
object (anything else streams 20 chunks as fast as it can)::

    {"chunks": 10000}                          # as fast as it can; -1 = until the peer leaves
    {"chunks": 200, "interval_ms": 5,          # paced: chunk k is due at t0_ns + k * 5 ms
     "t0_ns": <CLOCK_MONOTONIC ns>}            #   (default t0: when the request was read)
    {..., "shape": "minimal"}                  # chunks without OpenAI's other fields
    {"chunks": 900, "chunk_bytes": 1000}       # unpaced, each chunk's text padded to 1000 bytes

A chunk carries the fields OpenAI sends with every chunk (``id``, ``object``, ``created``,
``model``, ``system_fingerprint``, ``logprobs``), about 230 bytes; ``minimal`` ones only what
the gateway reads, about 80 bytes.

Unpaced, every chunk's text is ``c<k> `` and the whole answer is built once per length and sent
with as few writes as the socket allows, so the stub costs next to nothing per chunk. Paced, each
chunk's text is ``<k>:<ns>;`` where ``<ns>`` is CLOCK_MONOTONIC read immediately before the
chunk is written (the clock is system-wide, so a reader can subtract it from its own reading). A
chunk that falls due late is stamped when it is written; it never carries its due time.

One thread, non-blocking sockets and epoll: all streams are served by one event loop with a
timer heap, so many paced streams do not compete for the GIL. Prints ``ready http://HOST:PORT``
when listening; SIGTERM/SIGINT stop it.

    python benchmarks/provider_stub.py [--host 127.0.0.1] [--port 0]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import select
import signal
import socket
import sys
import time
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"connection: close\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
#: The fields OpenAI itself sends with every chunk (vLLM and llama.cpp send much the same).
CHUNK_PREFIX = (
    b'data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk",'
    b'"created":1741569952,"model":"stub","system_fingerprint":"fp_f3927aa00d",'
    b'"choices":[{"index":0,"delta":{"content":"'
)
CHUNK_SUFFIX = b'"},"logprobs":null,"finish_reason":null}]}\n\n'
#: ``"shape": "minimal"`` in a request: only what the gateway reads.
MINIMAL_PREFIX = b'data: {"choices":[{"index":0,"delta":{"content":"'
MINIMAL_SUFFIX = b'"},"finish_reason":null}]}\n\n'
DEFAULT_SPEC: dict[str, Any] = {"chunks": 20}
MAX_REQUEST = 16 * 1024 * 1024


def chunk_event(text: bytes, minimal: bool = False) -> bytes:
    """One SSE event carrying ``text`` (which must need no JSON escaping)."""
    if minimal:
        return MINIMAL_PREFIX + text + MINIMAL_SUFFIX
    return CHUNK_PREFIX + text + CHUNK_SUFFIX


def tail_events(chunks: int) -> bytes:
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": max(chunks, 0)}}
    return b"data: %s\n\ndata: %s\n\ndata: [DONE]\n\n" % (_encode(finish), _encode(usage))


_whole: dict[tuple[int, bool, int], bytes] = {}


def chunk_text(k: int, chunk_bytes: int = 0) -> bytes:
    """Chunk ``k``'s text: ``c<k> ``, or ``c<k>:`` padded with ``x`` to ``chunk_bytes``."""
    if chunk_bytes <= 0:
        return b"c%d " % k
    head = b"c%d:" % k
    return head + b"x" * (chunk_bytes - len(head))


def whole_answer(chunks: int, minimal: bool = False, chunk_bytes: int = 0) -> bytes:
    """The complete unpaced response for ``chunks`` chunks (built once per length and shape)."""
    body = _whole.get((chunks, minimal, chunk_bytes))
    if body is None:
        events = b"".join(chunk_event(chunk_text(k, chunk_bytes), minimal) for k in range(chunks))
        body = _whole[chunks, minimal, chunk_bytes] = HEAD + events + tail_events(chunks)
    return body


def spec_of(body: bytes) -> dict[str, Any]:
    """The stream asked for: the JSON object in the last user message, else the default."""
    try:
        doc = _decode(body)
        text = next(m["content"] for m in reversed(doc["messages"]) if m.get("role") == "user")
        spec = _decode(text) if isinstance(text, str) else None
    except (msgspec.DecodeError, KeyError, StopIteration, TypeError, AttributeError):
        spec = None
    return spec if isinstance(spec, dict) and "chunks" in spec else DEFAULT_SPEC


class Conn:
    __slots__ = ("closed", "fd", "inbuf", "interval_ns", "k", "minimal", "out", "pos", "sock",
                 "started", "t0_ns", "total")  # fmt: skip

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.out: bytes | bytearray = b""
        self.pos = 0
        self.started = False
        self.closed = False
        self.k = 0
        self.total = 0
        self.interval_ns = 0
        self.t0_ns = 0
        self.minimal = False


class Stub:
    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.epoll = select.epoll()
        self.epoll.register(listener.fileno(), select.EPOLLIN)
        self.conns: dict[int, Conn] = {}
        self.timers: list[tuple[int, int, Conn]] = []
        self.order = itertools.count()
        self.requests = 0

    # -- connections ------------------------------------------------------------------------

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock)
            self.conns[conn.fd] = conn
            self.epoll.register(conn.fd, select.EPOLLIN)

    def close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.conns.pop(conn.fd, None)
        try:
            self.epoll.unregister(conn.fd)
        except (OSError, ValueError):
            pass
        conn.sock.close()

    def readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client went away (or cancelled its request)
            self.close(conn)
            return
        if conn.started:
            return  # nothing more is expected on this connection
        conn.inbuf += data
        head_end = conn.inbuf.find(b"\r\n\r\n")
        if head_end < 0:
            if len(conn.inbuf) > MAX_REQUEST:
                self.close(conn)
            return
        head = bytes(conn.inbuf[:head_end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = conn.inbuf[head_end + 4 :]
        if len(body) < length:
            return
        conn.started = True
        self.requests += 1
        method, path = [*head[0].split(" "), "", ""][:2]
        if method != "POST" or not path.endswith("/chat/completions"):
            self.write(conn, NOT_FOUND, last=True)
            return
        self.start(conn, spec_of(bytes(body[:length])))

    def start(self, conn: Conn, spec: dict[str, Any]) -> None:
        chunks = int(spec["chunks"])
        interval_ms = float(spec.get("interval_ms", 0))
        conn.minimal = spec.get("shape") == "minimal"
        if interval_ms <= 0 and chunks >= 0:
            answer = whole_answer(chunks, conn.minimal, int(spec.get("chunk_bytes", 0)))
            self.write(conn, answer, last=True)
            return
        conn.total = chunks
        conn.interval_ns = int(interval_ms * 1e6)
        conn.t0_ns = int(spec.get("t0_ns") or time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        self.write(conn, HEAD, last=False)
        heapq.heappush(self.timers, (conn.t0_ns, next(self.order), conn))

    def write(self, conn: Conn, data: bytes, *, last: bool) -> None:
        """Queue ``data`` and write what the socket takes now; the rest when it is writable."""
        if conn.closed:
            return
        if conn.pos < len(conn.out):
            conn.out = bytearray(memoryview(conn.out)[conn.pos :]) + data
        else:
            conn.out = data
        conn.pos = 0
        if last:
            conn.total = -2  # close once written
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        out = conn.out
        view = memoryview(out)
        try:
            while conn.pos < len(out):
                conn.pos += conn.sock.send(view[conn.pos :])
        except BlockingIOError:
            self.epoll.modify(conn.fd, select.EPOLLIN | select.EPOLLOUT)
            return
        except OSError:
            self.close(conn)
            return
        finally:
            view.release()
        conn.out, conn.pos = b"", 0
        if conn.total == -2:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.close(conn)
        else:
            self.epoll.modify(conn.fd, select.EPOLLIN)

    # -- paced streams ----------------------------------------------------------------------

    def due(self, now: int) -> None:
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, _, conn = heapq.heappop(timers)
            if conn.closed:
                continue
            k = conn.k
            stamp = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            data = chunk_event(b"%d:%d;" % (k, stamp), conn.minimal)
            conn.k = k = k + 1
            if 0 <= conn.total <= k:
                self.write(conn, data + tail_events(conn.total), last=True)
                continue
            self.write(conn, data, last=False)
            heapq.heappush(timers, (conn.t0_ns + k * conn.interval_ns, next(self.order), conn))

    # -- the loop ---------------------------------------------------------------------------

    def serve(self) -> None:
        listen_fd = self.listener.fileno()
        clock = time.clock_gettime_ns
        mono = time.CLOCK_MONOTONIC
        while True:
            if self.timers:
                timeout = max(0.0, (self.timers[0][0] - clock(mono)) / 1e9)
            else:
                timeout = -1
            for fd, mask in self.epoll.poll(timeout):
                if fd == listen_fd:
                    self.accept()
                    continue
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    self.readable(conn)
                if mask & select.EPOLLOUT and not conn.closed:
                    self.flush(conn)
            if self.timers:
                self.due(clock(mono))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server((args.host, args.port), backlog=1024)
    listener.setblocking(False)
    whole_answer(10_000)  # the relay benchmark's answer, built before anyone waits for it
    port = listener.getsockname()[1]
    sys.stdout.write(f"ready http://{args.host}:{port}\n")
    sys.stdout.flush()
    try:
        Stub(listener).serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
