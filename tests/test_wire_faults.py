"""Faults at the WebSocket level: a close racing a ping, an upgrade that never completes, and
frames that break RFC 6455, each answered with the right close frame and never a crash."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
import wsproto
from wsproto.events import Request

from aleph_trio import Gateway
from rawws import Closed, RawWebSocket, client_frame

OpenRaw = Callable[..., Awaitable[RawWebSocket]]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def authed(open_raw: OpenRaw, gateway: Gateway, **kw: object) -> RawWebSocket:
    raw = await open_raw(**kw)
    reply = await raw.call("connect", {"token": gateway.owner_token}, id="auth")
    assert reply["result"]["authenticated"] is True
    return raw


# -- a ping due while the peer's close is being answered -----------------------------------------


async def test_ping_due_after_the_peer_closed_ends_quietly(
    open_raw: OpenRaw,
    gateway: Gateway,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client closes 2 s before the server's ping is due and then reads nothing, so the
    server is still writing its answering close frame (a lockstep pipe has no buffer) when the
    ping falls due: the ping must find the WebSocket closed and end without an error."""
    caplog.set_level(logging.INFO, "aleph_trio")
    with trio.fail_after(60):
        raw = await authed(open_raw, gateway, lockstep=True)
        opened = trio.current_time()
        interval = gateway.config.server.ping_interval_s
        await trio.sleep_until(opened + interval - 2)
        await raw.send_close(1000)
        await trio.sleep(4)  # the ping falls due meanwhile
        closed = await raw.wait_closed()
        assert closed.code == 1000
        with pytest.raises(Closed):
            await raw.next_event()  # and then the TCP side is closed too
        await trio.testing.wait_all_tasks_blocked()
        assert not gateway.connections
    assert errors_logged(caplog) == []


# -- upgrade requests that never finish ----------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"],
    ids=["nothing", "partial-headers"],
)
async def test_unfinished_upgrade_is_closed_quietly(
    port: int,
    gateway: Gateway,
    patient_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    sent: bytes,
) -> None:
    """A TCP client that never completes its upgrade request is disconnected after the upgrade
    timeout, through the real listener, and nothing is logged as a crash."""
    caplog.set_level(logging.INFO, "aleph_trio")
    with trio.fail_after(60):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            start = trio.current_time()
            if sent:
                await stream.send_all(sent)
            assert await stream.receive_some(4096) == b""
            assert 10 <= trio.current_time() - start < 12
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("path", ["/", "/nowhere"], ids=["accepted", "refused"])
async def test_peer_gone_before_the_upgrade_is_answered(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """The upgrade request arrives, then the peer is gone before the answer (101, or 404) can
    be written: the stream is closed and nothing escapes the connection handler."""
    caplog.set_level(logging.INFO, "aleph_trio")
    client, server = trio.testing.memory_stream_pair()
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await client.send_all(ws.send(Request(host="localhost", target=path)))
    await client.aclose()
    with trio.fail_after(10):
        await gateway.serve_stream(server)
    assert not gateway.connections
    assert errors_logged(caplog) == []


# -- frames that break the rules get a close frame with the right code ---------------------------

BAD_FRAMES = {
    "invalid-utf8-text": (client_frame(0x1, b'{"a":"\xff\xfe"}'), 1007),
    "invalid-utf8-in-second-fragment": (
        client_frame(0x1, b'{"a":"', fin=False) + client_frame(0x0, b'\xc3\x28"}'),
        1007,
    ),
    "unmasked": (
        client_frame(0x1, b'{"jsonrpc":"2.0","id":1,"method":"health"}', masked=False),
        1002,
    ),
    "rsv1-set": (client_frame(0x1, b"{}", rsv=4), 1002),
    "rsv3-set": (client_frame(0x1, b"{}", rsv=1), 1002),
    "reserved-opcode": (client_frame(0x3, b"x"), 1002),
    "reserved-control-opcode": (client_frame(0xB, b"x"), 1002),
    "continuation-first": (client_frame(0x0, b"x"), 1002),
    "fragmented-ping": (client_frame(0x9, b"x", fin=False), 1002),
    "long-ping": (client_frame(0x9, b"x" * 126), 1002),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
async def test_protocol_violation_gets_its_close_frame(
    open_raw: OpenRaw, gateway: Gateway, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.INFO, "aleph_trio")
    frame, code = BAD_FRAMES[name]
    with trio.fail_after(10):
        raw = await authed(open_raw, gateway)
        await raw.send_frame(frame)
        closed = await raw.wait_closed()
        assert closed.code == code
        assert closed.reason  # says what was wrong
        with pytest.raises(Closed) as eof:
            await raw.next_event()
        assert eof.value.code == 1006  # the server closed the stream after its close frame
        await trio.testing.wait_all_tasks_blocked()
    assert errors_logged(caplog) == []
    assert any(f": {code} " in message for message in caplog.messages)


async def test_protocol_violation_close_frame_over_tcp(port: int, gateway: Gateway) -> None:
    """Over a real socket too, the close frame reaches the client before the TCP close."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            raw = RawWebSocket(stream)
            assert await raw.handshake() == 101
            await raw.call("connect", {"token": gateway.owner_token})
            await raw.send_frame(client_frame(0x1, b'"\xed\xa0\x80"'))  # a UTF-8 surrogate
            print("STATE", tcp_state(stream))
            await trio.sleep(0.2)
            print("STATE", tcp_state(stream))
            assert (await raw.wait_closed()).code == 1007


ESTABLISHED, CLOSED, CLOSE_WAIT = 1, 7, 8  # Linux TCP states


def tcp_state(stream: trio.SocketStream) -> int:
    """The kernel's TCP state of a socket (``TCP_INFO``): after the peer's FIN it is
    ``CLOSE_WAIT``, after a reset ``CLOSED``."""
    return stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux TCP_INFO")
async def test_gateway_ends_a_violating_connection_with_fin_not_reset(
    port: int, gateway: Gateway
) -> None:
    """The client pipelines frames behind the bad one. A socket closed with that unread makes
    the kernel send a reset: the client's next write fails, and some systems drop the close
    frame still unread. So the gateway shuts its write side (FIN after the close frame) and
    drops what still arrives until the client closes."""
    junk = client_frame(
        0x1, b'{"jsonrpc":"2.0","method":"echo","params":{"x":"' + b"y" * 1000 + b'"}}'
    )
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            raw = RawWebSocket(stream)
            assert await raw.handshake() == 101
            await raw.call("connect", {"token": gateway.owner_token})
            await raw.send_frame(client_frame(0x1, b'"\xff"') + junk * 200)
            # Until the gateway's FIN or reset is here: kernel state, which no event announces.
            while tcp_state(stream) == ESTABLISHED:  # noqa: ASYNC110
                await trio.sleep(0.001)
            assert tcp_state(stream) == CLOSE_WAIT
            for _ in range(20):
                await raw.send_frame(junk)  # dropped unread, no reset
            assert (await raw.wait_closed()).code == 1007


async def test_violation_before_authentication_also_gets_its_close_frame(
    open_raw: OpenRaw,
) -> None:
    with trio.fail_after(10):
        raw = await open_raw()
        await raw.send_frame(client_frame(0x1, b"{}", masked=False))
        assert (await raw.wait_closed()).code == 1002
