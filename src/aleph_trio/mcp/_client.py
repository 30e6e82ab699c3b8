"""A Model Context Protocol client over stdio: newline-delimited JSON-RPC 2.0 (MCP's stdio
transport) on the pipes of a server process.

Requests carry increasing integer ids; each waits on a one-shot slot that the reader fills
when the answer with its id arrives. When the server's output ends, every request still
waiting fails with :class:`ServerGone`, so no caller waits for an answer that cannot come.
A cancelled request tells the server with ``notifications/cancelled``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, Final, final

import attrs
import trio

from ..kernel import component_logger

__all__ = ["PROTOCOL_VERSION", "McpConnection", "McpError", "ServerGone"]

log = component_logger("mcp")

PROTOCOL_VERSION: Final = "2025-06-18"
#: A line longer than this ends the connection (a server sending garbage without newlines).
MAX_LINE_BYTES: Final = 16 * 1024 * 1024
READ_CHUNK: Final = 64 * 1024


class McpError(Exception):
    """The server answered a request with an error."""


class ServerGone(McpError):
    """The server's output ended (it exited or was stopped) before the answer came."""


@final
@attrs.define(eq=False)
class _Slot:
    filled: trio.Event = attrs.Factory(trio.Event)
    result: dict[str, Any] | None = None
    error: McpError | None = None

    def fill(self, result: dict[str, Any] | None = None, error: McpError | None = None) -> None:
        if not self.filled.is_set():
            self.result, self.error = result, error
            self.filled.set()


@final
class McpConnection:
    """One session with a server: write requests to its stdin, read answers from its stdout."""

    def __init__(self, stdin: trio.abc.SendStream, name: str) -> None:
        self._stdin = stdin
        self._name = name
        self._ids = itertools.count(1)
        self._slots: dict[int, _Slot] = {}
        self._writing = trio.Lock()
        self._gone: str | None = None
        #: Called with each notification the server sends (method, params).
        self.on_notification: Callable[[str, dict[str, Any]], None] = lambda m, p: None

    @property
    def in_flight(self) -> int:
        return len(self._slots)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and wait for its result; raises :class:`McpError` for an error
        answer and :class:`ServerGone` when the server goes away first."""
        if self._gone is not None:
            raise ServerGone(self._gone)
        request_id = next(self._ids)
        slot = self._slots[request_id] = _Slot()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self._write(message)
            await slot.filled.wait()
        except trio.Cancelled:
            if not slot.filled.is_set() and self._gone is None:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await self.notify(
                        "notifications/cancelled",
                        {"requestId": request_id, "reason": "cancelled by the caller"},
                    )
            raise
        finally:
            self._slots.pop(request_id, None)
        if slot.error is not None:
            raise slot.error
        return slot.result or {}

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._write(message)

    async def _write(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        async with self._writing:
            try:
                await self._stdin.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ServerGone(self._gone or f"cannot write to MCP server {self._name}") from exc

    def close(self, reason: str) -> None:
        """The server is gone: every request still waiting fails with ``reason``."""
        if self._gone is None:
            self._gone = reason
        for slot in self._slots.values():
            slot.fill(error=ServerGone(self._gone))

    async def read_from(self, stdout: trio.abc.ReceiveStream) -> None:
        """Read and dispatch the server's messages until its output ends."""
        buffer = bytearray()
        while chunk := await stdout.receive_some(READ_CHUNK):
            buffer += chunk
            start = 0
            while (end := buffer.find(b"\n", start)) >= 0:
                await self._handle(bytes(buffer[start:end]))
                start = end + 1
            del buffer[:start]
            if len(buffer) > MAX_LINE_BYTES:
                raise McpError(f"a message longer than {MAX_LINE_BYTES} bytes")

    async def _handle(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            log.warning("MCP server %s wrote a line that is not JSON: %.200r", self._name, line)
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if isinstance(method, str):
            params = message.get("params")
            params = params if isinstance(params, dict) else {}
            if "id" in message:  # a request to us: we offer no client features but ping
                await self._answer(message["id"], method)
            else:
                self.on_notification(method, params)
            return
        slot = self._slots.get(message.get("id"))  # type: ignore[arg-type]
        if slot is None:
            return
        error = message.get("error")
        if error is not None:
            text = error.get("message") if isinstance(error, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            slot.fill(error=McpError(f"{text or 'error'} (code {code})"))
        else:
            result = message.get("result")
            slot.fill(result=result if isinstance(result, dict) else {})

    async def _answer(self, request_id: Any, method: str) -> None:
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if method == "ping":
            answer["result"] = {}
        else:
            answer["error"] = {"code": -32601, "message": f"Method not found: {method}"}
        try:
            await self._write(answer)
        except ServerGone:
            pass
