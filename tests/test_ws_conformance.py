"""RFC 6455 behaviour the wire promises, frame by frame (PROTOCOL §1); the refusals of frames
that break the rules (1002, 1007) are in ``test_wire_faults.py``, 1009 in ``test_connection.py``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from wsproto.events import AcceptConnection, Pong, Request

from aleph_trio import Gateway
from rawws import Closed, RawWebSocket, client_frame

OpenRaw = Callable[..., Awaitable[RawWebSocket]]


async def authed(open_raw: OpenRaw, gateway: Gateway) -> RawWebSocket:
    raw = await open_raw()
    reply = await raw.call("connect", {"token": gateway.owner_token}, id="auth")
    assert reply["result"]["authenticated"] is True
    return raw


async def test_fragmented_text_with_control_frames_between_fragments(
    open_raw: OpenRaw, gateway: Gateway
) -> None:
    raw = await authed(open_raw, gateway)
    doc = {"jsonrpc": "2.0", "id": 7, "method": "echo", "params": {"s": "héllo"}}
    text = json.dumps(doc, ensure_ascii=False)
    data = text.encode()
    cut = data.index("é".encode()) + 1  # the second fragment starts inside a UTF-8 character
    with trio.fail_after(10):
        await raw.send_frame(client_frame(0x1, data[:cut], fin=False))
        await raw.send_frame(client_frame(0x9, b"mid"))  # a ping between fragments
        await raw.send_frame(client_frame(0x0, data[cut:-3], fin=False))
        await raw.send_frame(client_frame(0xA, b"unasked"))  # an unsolicited pong is ignored
        await raw.send_frame(client_frame(0x0, data[-3:]))
        pong = await raw.next_event()
        assert isinstance(pong, Pong) and pong.payload == b"mid"  # answered before the message
        reply = await raw.receive_json()
    assert reply == {"jsonrpc": "2.0", "id": 7, "result": {"s": "héllo"}}


async def test_close_handshake_echoes_the_code(open_raw: OpenRaw, gateway: Gateway) -> None:
    raw = await authed(open_raw, gateway)
    with trio.fail_after(10):
        await raw.send_close(4000, "done here")
        closed = await raw.wait_closed()
    assert (closed.code, closed.reason) == (4000, "done here")
    await trio.testing.wait_all_tasks_blocked()
    assert not gateway.connections


async def test_permessage_deflate_is_not_negotiated(
    gateway: Gateway, nursery: trio.Nursery
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(gateway.serve_stream, server_stream)
    raw = RawWebSocket(client_stream)
    offer = [(b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits")]
    await client_stream.send_all(
        raw.ws.send(Request(host="localhost", target="/", extra_headers=offer))
    )
    with trio.fail_after(10):
        head = b""
        while b"\r\n\r\n" not in head:
            head += await client_stream.receive_some(65536)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"sec-websocket-extensions" not in head.lower()
    raw.ws.receive_data(head)
    assert any(isinstance(e, AcceptConnection) for e in raw.ws.events())
    # Compressed frames (RSV1) are then a protocol error, not something to inflate.
    await raw.send_frame(client_frame(0x1, b"\x00", rsv=4))
    with trio.fail_after(10), pytest.raises(Closed) as closed:
        await raw.receive()
    assert closed.value.code == 1002
