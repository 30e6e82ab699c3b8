"""LeanTransport against raw HTTP/1.1 servers on loopback, written here byte by byte."""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import attrs
import httpx
import pytest
import trio
import trio.testing
import trustme
from hypothesis import given, settings, strategies as st

from aleph_trio.providers import open_http_client
from aleph_trio.providers._read_watchdog import Watchdog, open_watchdog
from aleph_trio.providers._transport import LeanTransport

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Peer:
    """The server's side of one connection: reads whole requests, writes raw bytes."""

    def __init__(self, stream: trio.abc.Stream, index: int) -> None:
        self.stream = stream
        self.index = index
        self.buffer = b""
        self.requests: list[bytes] = []

    async def request(self) -> bytes | None:
        """The next request (head and content-length body), or None once the client is gone."""
        while b"\r\n\r\n" not in self.buffer:
            data = await self.receive()
            if not data:
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            data = await self.receive()
            if not data:
                return None
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        self.requests.append(head + b"\r\n\r\n" + body)
        return self.requests[-1]

    async def receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(65536))
        except trio.BrokenResourceError:
            return b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def wait_closed(self) -> None:
        """Until the client closes the connection (whatever it still sends is dropped)."""
        while await self.receive():
            pass

    def reset(self) -> None:
        """Drop the connection with a TCP reset."""
        stream = self.stream
        assert isinstance(stream, trio.SocketStream)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()


Handler = Callable[[Peer], Awaitable[None]]


@attrs.define
class Server:
    port: int = 0
    peers: list[Peer] = attrs.Factory(list)

    @property
    def accepted(self) -> int:
        return len(self.peers)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serving(
    handler: Handler,
    wrap: Callable[[trio.SocketStream], trio.abc.Stream] | None = None,
    *,
    receive_buffer: int | None = None,
) -> AsyncIterator[Server]:
    server = Server()

    async def accept(stream: trio.SocketStream) -> None:
        peer = Peer(wrap(stream) if wrap else stream, len(server.peers))
        server.peers.append(peer)
        await handler(peer)

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        if receive_buffer is not None:  # accepted connections inherit it
            listeners[0].socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        server.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, accept, listeners)
        yield server
        nursery.cancel_scope.cancel()


def answering(*responses: bytes) -> Handler:
    """Answer every request on a connection with the next of ``responses`` (the last repeats);
    note when the client closes the connection."""

    async def handler(peer: Peer) -> None:
        for i in range(1_000_000):
            if await peer.request() is None:
                break
            await peer.send(responses[min(i, len(responses) - 1)])

    return handler


@asynccontextmanager
async def lean_client(
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_idle_per_origin: int = 8,
    keepalive_expiry: float = 30.0,
) -> AsyncIterator[httpx.AsyncClient]:
    async with open_watchdog() as watchdog:
        transport = LeanTransport(
            watchdog=watchdog,
            ssl_context=ssl_context,
            max_idle_per_origin=max_idle_per_origin,
            keepalive_expiry=keepalive_expiry,
        )
        async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
            yield client


def chunked(*pieces: bytes, extension: bytes = b"", trailer: bytes = b"") -> bytes:
    body = b"".join(b"%X%s\r\n%s\r\n" % (len(p), extension, p) for p in pieces)
    return (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        + body
        + b"0\r\n"
        + trailer
        + b"\r\n"
    )


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_content_length_body_and_the_request_on_the_wire() -> None:
    response = b"HTTP/1.1 201 Created\r\nContent-Length: 11\r\nX-Thing:  a b \r\n\r\nhello world"
    async with serving(answering(response)) as server, lean_client() as client:
        r = await client.post(
            server.url("/v1/chat?x=1&y=%20"), json={"a": [1, "é"]}, headers={"X-Key": "k"}
        )
    assert r.status_code == 201
    assert r.content == b"hello world"
    assert r.headers["x-thing"] == "a b"
    assert r.http_version == "HTTP/1.1"
    assert r.reason_phrase == "Created"
    (sent,) = server.peers[0].requests
    head, _, body = sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat?x=1&y=%20 HTTP/1.1"
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    assert fields[b"host"] == b"127.0.0.1:%d" % server.port
    assert fields[b"x-key"] == b"k"
    assert fields[b"content-length"] == str(len(body)).encode()
    assert json.loads(body) == {"a": [1, "é"]}


async def test_chunked_body_with_extensions_and_trailers_then_reuse() -> None:
    response = chunked(
        b"hello ", b"chunked", b" world", extension=b";name=value", trailer=b"X-Sum: 1\r\n"
    )
    async with serving(answering(response, OK)) as server, lean_client() as client:
        async with client.stream("GET", server.url()) as r:
            pieces = [piece async for piece in r.aiter_raw()]
        again = await client.get(server.url())
    assert b"".join(pieces) == b"hello chunked world"
    assert all(pieces)
    assert again.content == b"ok"
    # The trailer section was consumed exactly: the next answer came on the same connection.
    assert server.accepted == 1


@settings(max_examples=50, deadline=None)
@given(
    payload=st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12),
    extension=st.sampled_from([b"", b";a=b", b' ; q="x"']),
    trailer=st.sampled_from([b"", b"X-A: 1\r\n", b"X-A: 1\r\nX-B: 2\r\n"]),
)
async def test_chunked_body_survives_any_split(
    payload: list[bytes], cuts: list[int], extension: bytes, trailer: bytes
) -> None:
    wire = chunked(*payload, extension=extension, trailer=trailer)
    bounds = sorted({c for c in cuts if c < len(wire)} | {0, len(wire)})
    segments = [wire[a:b] for a, b in itertools.pairwise(bounds)]

    async def handler(peer: Peer) -> None:
        await peer.request()
        for segment in segments:
            await peer.send(segment)
            # The client reads this segment before the next is written: one read each.
            await trio.testing.wait_all_tasks_blocked()
        await peer.request()
        await peer.send(OK)
        await peer.wait_closed()

    async with serving(handler) as server, lean_client() as client:
        with trio.fail_after(5):
            async with client.stream("GET", server.url()) as r:
                pieces = [piece async for piece in r.aiter_raw()]
            again = await client.get(server.url())
    assert b"".join(pieces) == b"".join(payload)
    assert all(pieces)  # never an empty piece
    assert len(pieces) <= len(segments)  # at most one piece per network read
    assert again.content == b"ok"
    assert server.accepted == 1  # the body's end was found exactly


async def test_read_until_close() -> None:
    async def handler(peer: Peer) -> None:
        if await peer.request() is None:
            return
        if peer.index == 0:
            await peer.send(b"HTTP/1.1 200 OK\r\n\r\nfirst part, ")
            await trio.testing.wait_all_tasks_blocked()
            await peer.send(b"second part")
            await peer.stream.aclose()
        else:
            await peer.send(OK)

    async with serving(handler) as server, lean_client() as client:
        r = await client.get(server.url())
        again = await client.get(server.url())
    assert r.content == b"first part, second part"
    assert again.content == b"ok"
    assert server.accepted == 2


async def test_keep_alive_reuses_one_connection() -> None:
    async with serving(answering(chunked(b"one"), OK)) as server, lean_client() as client:
        async with client.stream("GET", server.url("/a")) as r:
            first = await r.aread()
        second = await client.post(server.url("/b"), content=b"xyz")
    assert (first, second.content) == (b"one", b"ok")
    assert server.accepted == 1
    assert [req.split(b"\r\n")[0] for req in server.peers[0].requests] == [
        b"GET /a HTTP/1.1",
        b"POST /b HTTP/1.1",
    ]


@pytest.mark.parametrize("side", ["server", "client"])
async def test_connection_close_is_not_reused(side: str) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\ncontent-length: 2\r\n\r\nok"
    headers = {"Connection": "close"} if side == "client" else {}
    # The server would happily answer again on the same connection; the client must not ask.
    async with (
        serving(answering(closing if side == "server" else OK)) as server,
        lean_client() as client,
    ):
        await client.get(server.url(), headers=headers)
        await client.get(server.url(), headers=headers)
    assert server.accepted == 2


@pytest.mark.parametrize("how", ["closed", "junk"])
async def test_idle_connection_the_server_gave_up_is_replaced(how: str) -> None:
    gave_up = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)
        if peer.index == 0:
            await trio.testing.wait_all_tasks_blocked()  # the client has the answer
            if how == "closed":
                await peer.stream.aclose()
                gave_up.set()
                return
            # What some servers send an idle connection before they close it.
            await peer.send(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            gave_up.set()
            await peer.wait_closed()
            return
        await answering(OK)(peer)

    async with serving(handler) as server, lean_client() as client:
        await client.get(server.url())
        await gave_up.wait()
        await trio.testing.wait_all_tasks_blocked()
        r = await client.get(server.url())
    assert (r.status_code, r.content) == (200, b"ok")
    assert server.accepted == 2
    assert len(server.peers[0].requests) == 1


@pytest.mark.parametrize("second_answers", [True, False])
async def test_reused_connection_reset_before_the_head_is_retried_once(
    second_answers: bool,
) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.send(OK)
            await peer.request()
            peer.reset()  # the keep-alive race: the request went out, the server went away
        elif second_answers:
            await answering(OK)(peer)
        else:
            await peer.request()
            peer.reset()

    async with serving(handler) as server, lean_client() as client:
        await client.get(server.url())
        if second_answers:
            r = await client.get(server.url("/again"))
            assert r.content == b"ok"
        else:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.get(server.url("/again"))
    assert server.accepted == 2  # one retry, on a new connection, and no more
    assert server.peers[0].requests[1].startswith(b"GET /again ")
    assert server.peers[1].requests[0].startswith(b"GET /again ")


async def test_fresh_connection_dropped_before_the_head_is_not_retried() -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.stream.aclose()

    async with serving(handler) as server, lean_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url())
    assert server.accepted == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n8\r\nwor",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
)
async def test_eof_mid_body_is_a_protocol_error(answer: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer)
        await trio.testing.wait_all_tasks_blocked()
        await peer.stream.aclose()

    async with serving(handler) as server, lean_client() as client:
        async with client.stream("GET", server.url()) as r:
            with pytest.raises(httpx.RemoteProtocolError):
                await r.aread()


async def test_refused_port_is_a_connect_error() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    async with lean_client() as client:
        with pytest.raises(httpx.ConnectError, match=r"(?i)refused"):
            await client.get(f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize("stall", ["head", "body"])
async def test_read_timeout(stall: str, autojump_clock: trio.testing.MockClock) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        if stall == "body":
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst")
        await trio.sleep(1000)
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nlater")

    async with serving(handler) as server, lean_client() as client:
        with pytest.raises(httpx.ReadTimeout):
            async with client.stream("GET", server.url(), timeout=5.0) as r:
                await r.aread()
        assert trio.current_time() < 1000  # the stall was cut short, not sat out


async def test_read_timeout_over_tls(
    ca: trustme.CA, autojump_clock: trio.testing.MockClock
) -> None:
    # An IP address: resolving a name would take a worker thread, which looks idle to autojump.
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst")
        await trio.sleep(1000)
        await peer.send(b"later")

    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with (
        serving(
            handler, partial(trio.SSLStream, ssl_context=server_context, server_side=True)
        ) as server,
        lean_client(ssl_context=client_context) as client,
    ):
        async with client.stream("GET", f"https://127.0.0.1:{server.port}/") as r:
            with pytest.raises(httpx.ReadTimeout):
                await r.aread()
        assert trio.current_time() < 1000


def watchdog_tasks(under: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    """The read watchdog tasks among the descendants of ``under``."""
    found = []
    for nursery in under.child_nurseries:
        for task in nursery.child_tasks:
            if "read watchdog" in task.name:
                found.append(task)
            found.extend(watchdog_tasks(task))
    return found


async def test_the_read_watchdog_is_a_task_of_the_client_owner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst")
        await trio.sleep(1000)

    everything = trio.lowlevel.current_root_task()  # system tasks included
    assert everything is not None
    async with serving(handler) as server:
        async with open_http_client() as client:
            mine = watchdog_tasks(trio.lowlevel.current_task())
            assert len(mine) == 1
            assert watchdog_tasks(everything) == mine  # not a system task: only ours
            with pytest.raises(httpx.ReadTimeout):
                async with client.stream("GET", server.url(), timeout=5.0) as r:
                    await r.aread()
            assert trio.current_time() < 1000
        assert client.is_closed
        assert watchdog_tasks(everything) == []  # gone with the block


async def test_an_error_leaves_open_http_client_as_it_is() -> None:
    with pytest.raises(KeyError, match="not in a group"):
        async with open_http_client():
            raise KeyError("not in a group")


async def test_a_transport_whose_watchdog_is_not_running_refuses_before_sending() -> None:
    async with serving(answering(OK)) as server:
        async with open_watchdog() as watchdog:
            client = httpx.AsyncClient(transport=LeanTransport(watchdog=watchdog), timeout=5.0)
            assert (await client.get(server.url())).content == b"ok"
        # The watchdog's block is over: a read timeout could never fire now.
        with pytest.raises(RuntimeError, match="watchdog is not running"):
            await client.get(server.url("/refused"))
        never_started = httpx.AsyncClient(transport=LeanTransport(watchdog=Watchdog()))
        with pytest.raises(RuntimeError, match="watchdog is not running"):
            await never_started.get(server.url("/refused"))
        # Without a read timeout there is nothing to watch.
        r = await never_started.get(server.url("/untimed"), timeout=None)
        assert r.content == b"ok"
        await client.aclose()
        await never_started.aclose()
    requests = [req.split(b" ")[1] for peer in server.peers for req in peer.requests]
    assert requests == [b"/", b"/untimed"]  # the refused ones never went out


BIG = b"x" * (6 * 1024 * 1024)  # more than a socket send buffer holds (4 MiB at most here)


async def test_large_request_body_is_sent_whole() -> None:
    async def handler(peer: Peer) -> None:
        request = await peer.request()
        assert request is not None
        await peer.send(
            b"HTTP/1.1 200 OK\r\nx-received: %d\r\ncontent-length: 0\r\n\r\n" % len(request)
        )

    async with serving(handler) as server, lean_client() as client:
        with trio.fail_after(10):
            r = await client.post(server.url(), content=BIG)
    assert int(r.headers["x-received"]) > len(BIG)
    assert server.peers[0].requests[0].endswith(b"\r\n\r\n" + BIG)


async def test_write_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async def handler(peer: Peer) -> None:
        await trio.sleep(1000)  # never reads

    async with serving(handler, receive_buffer=4096) as server, lean_client() as client:
        with pytest.raises(httpx.WriteTimeout):
            await client.post(server.url(), content=BIG, timeout=5.0)
        assert trio.current_time() < 1000


async def test_time_between_reads_is_not_a_read_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc")
        await trio.sleep(1)
        await peer.send(b"def")  # arrives while the caller is busy elsewhere
        await trio.sleep(61)
        await peer.send(b"ghi")  # the caller has waited 2 s for this one

    async with serving(handler) as server, lean_client() as client:
        async with client.stream("GET", server.url(), timeout=5.0) as r:
            pieces = []
            async for piece in r.aiter_raw():
                pieces.append(piece)
                if len(pieces) == 1:
                    await trio.sleep(60)
    assert b"".join(pieces) == b"abcdefghi"


async def test_cancelling_mid_body_closes_that_connection() -> None:
    client_left = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.request()
        if peer.index == 0:
            await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await peer.wait_closed()
            client_left.set()
        else:
            await peer.send(OK)
            await answering(OK)(peer)

    async with serving(handler) as server, lean_client() as client:
        with trio.CancelScope() as scope:
            async with client.stream("GET", server.url()) as r:
                async for _ in r.aiter_bytes():
                    scope.cancel()
        assert scope.cancelled_caught
        with trio.fail_after(5):
            await client_left.wait()
        r2 = await client.get(server.url())
        r3 = await client.get(server.url())
    assert (r2.content, r3.content) == (b"ok", b"ok")
    assert server.accepted == 2  # nothing of the cancelled one went back to the pool


async def test_leaving_a_body_early_closes_that_connection_quietly() -> None:
    client_left = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nsome")
        await peer.wait_closed()
        client_left.set()

    async with serving(handler) as server, lean_client() as client:
        async with client.stream("GET", server.url()) as r:
            async for _ in r.aiter_raw():
                break
        with trio.fail_after(5):
            await client_left.wait()


@pytest.mark.parametrize("status", [404, 429, 503])
async def test_error_status_body_is_readable(status: int) -> None:
    body = json.dumps({"error": {"message": "nope"}}).encode()
    response = (
        b"HTTP/1.1 %d Whatever\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (
            status,
            len(body),
            body,
        )
    )
    async with serving(answering(response)) as server, lean_client() as client:
        async with client.stream("POST", server.url(), json={}) as r:
            assert r.status_code == status
            assert json.loads(await r.aread()) == {"error": {"message": "nope"}}


async def test_interim_answers_are_skipped() -> None:
    response = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal"
    )
    async with serving(answering(response)) as server, lean_client() as client:
        r = await client.get(server.url())
    assert (r.status_code, r.content) == (200, b"real")
    assert "link" not in r.headers


@pytest.mark.parametrize(
    ("method", "response"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n"),
    ],
)
async def test_answers_without_a_body(method: str, response: bytes) -> None:
    async with serving(answering(response, OK)) as server, lean_client() as client:
        with trio.fail_after(5):
            r = await client.request(method, server.url())
            again = await client.get(server.url())
    assert r.content == b""
    assert again.content == b"ok"
    assert server.accepted == 1


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 099 Too Low\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
    ],
)
async def test_malformed_answers_are_protocol_errors(response: bytes) -> None:
    async with serving(answering(response)) as server, lean_client() as client:
        with trio.fail_after(5), pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url())


async def test_aclose_closes_pooled_connections() -> None:
    left = trio.Event()

    async def handler(peer: Peer) -> None:
        await answering(OK)(peer)
        left.set()

    async with serving(handler) as server:
        async with lean_client() as client:
            await client.get(server.url())
            assert not left.is_set()
        with trio.fail_after(5):
            await left.wait()


async def test_idle_connections_expire(autojump_clock: trio.testing.MockClock) -> None:
    async with serving(answering(OK)) as server, lean_client(keepalive_expiry=10.0) as client:
        await client.get(server.url())
        await trio.sleep(5)
        await client.get(server.url())
        assert server.accepted == 1
        await trio.sleep(11)
        await client.get(server.url())
        assert server.accepted == 2


async def test_idle_connections_per_origin_are_limited() -> None:
    closed: list[int] = []
    one_closed = trio.Event()

    async def handler(peer: Peer) -> None:
        await answering(chunked(b"x"))(peer)
        closed.append(peer.index)
        one_closed.set()

    async with serving(handler) as server, lean_client(max_idle_per_origin=1) as client:
        async with (
            client.stream("GET", server.url()) as r1,
            client.stream("GET", server.url()) as r2,
        ):
            assert (await r1.aread(), await r2.aread()) == (b"x", b"x")
        with trio.fail_after(5):
            await one_closed.wait()
        await client.get(server.url())
        assert closed == [0]  # the connection released first went; the other stays
        assert server.accepted == 2


async def test_tls_with_sni_alpn_and_keep_alive(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.set_alpn_protocols(["http/1.1"])
    names: list[str | None] = []

    def note_name(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    server_context.sni_callback = note_name
    alpn: list[str | None] = []

    def wrap(stream: trio.SocketStream) -> trio.abc.Stream:
        return trio.SSLStream(stream, server_context, server_side=True)

    async def handler(peer: Peer) -> None:
        assert isinstance(peer.stream, trio.SSLStream)
        await peer.stream.do_handshake()
        alpn.append(peer.stream.selected_alpn_protocol())
        await answering(chunked(b"secret ", b"answer"), OK)(peer)

    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with serving(handler, wrap) as server, lean_client(ssl_context=client_context) as client:
        url = f"https://localhost:{server.port}/"
        with trio.fail_after(5):
            first = await client.get(url)
            second = await client.get(url)
    assert (first.content, second.content) == (b"secret answer", b"ok")
    assert server.accepted == 1
    assert names == ["localhost"]
    assert alpn == ["http/1.1"]


async def test_untrusted_certificate_is_a_connect_error(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)

    def wrap(stream: trio.SocketStream) -> trio.abc.Stream:
        return trio.SSLStream(stream, server_context, server_side=True)

    async def handler(peer: Peer) -> None:
        try:
            await peer.request()
        except trio.BrokenResourceError:
            pass

    async with serving(handler, wrap) as server, lean_client() as client:
        with (
            trio.fail_after(5),
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            await client.get(f"https://localhost:{server.port}/")


async def test_env_proxies_go_through_httpx_proxy_mounts(monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        serving(answering(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nvia proxy")) as proxy,
        serving(answering(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\ndirect")) as direct,
    ):
        for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with open_http_client() as client:
            proxied = await client.get("http://example.invalid/v1/models")
            unproxied = await client.get(direct.url("/here"))
    assert proxied.content == b"via proxy"
    assert (
        proxy.peers[0].requests[0].startswith(b"GET http://example.invalid/v1/models HTTP/1.1\r\n")
    )
    assert unproxied.content == b"direct"
    assert direct.peers[0].requests[0].startswith(b"GET /here HTTP/1.1\r\n")
    assert proxy.accepted == 1
