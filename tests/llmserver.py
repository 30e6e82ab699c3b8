"""A small HTTP/1.1 server on 127.0.0.1 that stands in for an LLM provider.

Each test gives it a script: a list of (status, headers, body parts, delays) responses, served in
order; it records every request (method, path, headers, JSON body). Body parts are written one by
one (with optional pauses), so streams really arrive in pieces; ``DROP`` ends the connection
mid-answer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio

from aleph_trio.providers import ModelRequest, Provider, TextDelta

DROP = object()


@attrs.define
class Reply:
    status: int = 200
    #: bytes, str, DROP, a float (seconds to pause) or a trio.Event (pause until it is set)
    parts: list[Any] = attrs.Factory(list)
    content_type: str = "text/event-stream"
    headers: dict[str, str] = attrs.Factory(dict)


@attrs.define
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@attrs.define
class LLMServer:
    port: int = 0
    script: list[Reply] = attrs.Factory(list)
    requests: list[Recorded] = attrs.Factory(list)
    open_connections: int = 0
    connections_accepted: int = 0
    #: Answer with chunked bodies and serve further requests on the same connection.
    keep_alive: bool = False
    _all_closed: trio.Event = attrs.Factory(trio.Event)
    _arrived: trio.lowlevel.ParkingLot = attrs.Factory(trio.lowlevel.ParkingLot)

    async def wait_requests(self, count: int) -> None:
        """Return once ``count`` requests have arrived in all."""
        while len(self.requests) < count:
            await self._arrived.park()

    async def wait_all_closed(self) -> None:
        """Return once no connection to this server is open."""
        if self.open_connections:
            await self._all_closed.wait()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, stream: trio.SocketStream) -> None:
        if self.open_connections == 0:
            self._all_closed = trio.Event()
        self.open_connections += 1
        self.connections_accepted += 1
        try:
            buffer = b""
            while True:
                request, buffer = await self._read_request(stream, buffer)
                if request is None:
                    return
                self.requests.append(request)
                self._arrived.unpark_all()
                reply = (
                    self.script.pop(0) if self.script else Reply(404, [b"no script"], "text/plain")
                )
                if not await self._answer(stream, reply) or not self.keep_alive:
                    return
        except trio.BrokenResourceError:
            pass
        finally:
            self.open_connections -= 1
            if self.open_connections == 0:
                self._all_closed.set()
            await stream.aclose()

    @staticmethod
    async def _read_request(
        stream: trio.SocketStream, buffer: bytes
    ) -> tuple[Recorded | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None, b""
            buffer += chunk
        head, body = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += await stream.receive_some(65536)
        request = Recorded(method, path, headers, json.loads(body[:length]) if length else None)
        return request, body[length:]

    async def _answer(self, stream: trio.SocketStream, reply: Reply) -> bool:
        """Send ``reply``; false when it ended the connection (``DROP``, the client left).
        With ``keep_alive`` the body is chunked, so the connection can carry the next request."""
        framing = "transfer-encoding: chunked" if self.keep_alive else "connection: close"
        extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
        await stream.send_all(
            f"HTTP/1.1 {reply.status} X\r\ncontent-type: {reply.content_type}\r\n"
            f"{extra}{framing}\r\n\r\n".encode()
        )
        for part in reply.parts:
            if part is DROP:
                return False
            if isinstance(part, float | int | trio.Event):
                # Pause, but notice at once if the client goes away meanwhile.
                async with trio.open_nursery() as nursery:
                    if isinstance(part, trio.Event):
                        nursery.start_soon(_cancel_when_set, part, nursery.cancel_scope)
                    else:
                        nursery.cancel_scope.deadline = trio.current_time() + part
                    if not await stream.receive_some(1):
                        return False
                continue
            data = part.encode() if isinstance(part, str) else part
            if self.keep_alive:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            await stream.send_all(data)
        if self.keep_alive:
            await stream.send_all(b"0\r\n\r\n")
        return True


@asynccontextmanager
async def serve_llm() -> AsyncIterator[LLMServer]:
    server = LLMServer()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


def sse(*chunks: object, done: bool = True) -> list[str]:
    """Server-sent events for these JSON chunks, one event per part."""
    parts = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    if done:
        parts.append("data: [DONE]\n\n")
    return parts


async def all_deltas(provider: Provider, request: ModelRequest) -> list[object]:
    """Every delta of one model call, adjacent text joined: providers join the text of one
    read, and where reads fall is up to the network."""
    got: list[object] = []
    with trio.fail_after(10):
        async with contextlib.aclosing(provider.stream(request)) as batches:
            async for batch in batches:
                for delta in batch:
                    if isinstance(delta, TextDelta) and got and isinstance(got[-1], TextDelta):
                        got[-1] = TextDelta(got[-1].text + delta.text)
                    else:
                        got.append(delta)
    return got


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def models_reply(*ids: str, status: int = 200) -> Reply:
    """An OpenAI-compatible ``GET /models`` answer listing ``ids`` (``status`` ≥ 400: an error
    body in OpenAI's shape instead)."""
    if status >= 400:
        body = {"error": {"message": f"HTTP {status}", "type": "invalid_request_error"}}
    else:
        body = {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}
    return Reply(status, [json.dumps(body)], "application/json")
