"""A small Chrome DevTools Protocol client over the browser's WebSocket (:mod:`._wire`).

One :class:`CdpConnection` per browser: a single reader task (:meth:`CdpConnection.serve`)
takes every message off the socket, parsing the frames itself. A reply finds its caller by
id, through a one-shot :class:`_Reply` slot the caller made and removes again whatever happens
(answer, error, cancellation): the reader hands the reply straight to the waiting task, with
no channel to build and close per command; an event goes to the listeners of its session,
each a bounded channel fed without waiting (a full listener loses the event, which is
counted). Targets are attached with ``flatten=True``, so a page is a :class:`CdpSession`: the
same socket, every message tagged with its ``sessionId``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any, Final, final

import attrs
import msgspec
import outcome
import trio

from ._wire import Wire, WireClosed

__all__ = ["CdpClosed", "CdpConnection", "CdpError", "CdpEvent", "CdpSession"]

#: Screenshots of long pages and accessibility trees of big ones are large.
MAX_MESSAGE_SIZE: Final = 256 * 1024 * 1024
#: Events a listener may have waiting before further ones are dropped.
LISTENER_BUFFER: Final = 4096


class CdpError(Exception):
    """The browser answered a command with an error."""

    def __init__(self, method: str, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class CdpClosed(Exception):
    """The connection to the browser is gone (the browser stopped or crashed)."""


@attrs.frozen
class CdpEvent:
    method: str
    params: dict[str, Any]
    session_id: str | None


_CLOSED: Final[dict[str, Any]] = {}


@final
class _Reply:
    """One command's answer: set once by the reader task, awaited once by the caller."""

    __slots__ = ("_task", "_value")

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None
        self._value: dict[str, Any] | None = None

    def set(self, value: dict[str, Any]) -> None:
        if self._value is not None:
            return
        self._value = value
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task, outcome.Value(value))

    async def get(self) -> dict[str, Any]:
        """The answer (``_CLOSED`` if the connection went away first)."""
        if self._value is not None:
            await trio.lowlevel.checkpoint()
            return self._value
        self._task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        value: dict[str, Any] = await trio.lowlevel.wait_task_rescheduled(abort)
        return value


@attrs.define(eq=False)
class _Listener:
    send: trio.MemorySendChannel[CdpEvent]
    methods: frozenset[str] | None


_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@final
class CdpConnection:
    """Commands and events over one browser WebSocket; :meth:`serve` must be running."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._ids = itertools.count(1)
        self._pending: dict[int, _Reply] = {}
        self._listeners: dict[str | None, list[_Listener]] = {}
        self.closed = trio.Event()
        #: Events lost because a listener's buffer was full.
        self.dropped_events = 0

    async def serve(self) -> None:
        """Read until the socket closes, then fail every command still waiting."""
        try:
            while True:
                try:
                    raw = await self._wire.receive()
                except WireClosed:
                    return
                try:
                    message = _decoder.decode(raw)
                except msgspec.DecodeError:
                    continue
                if not isinstance(message, dict):
                    continue
                if "id" in message:
                    reply = self._pending.pop(message["id"], None)
                    if reply is not None:
                        reply.set(message)
                elif "method" in message:
                    self._dispatch(
                        CdpEvent(
                            message["method"], message.get("params", {}), message.get("sessionId")
                        )
                    )
        finally:
            self.closed.set()
            for reply in self._pending.values():
                reply.set(_CLOSED)
            self._pending.clear()
            for listeners in self._listeners.values():
                for listener in listeners:
                    listener.send.close()

    def _dispatch(self, event: CdpEvent) -> None:
        for listener in self._listeners.get(event.session_id, ()):
            if listener.methods is not None and event.method not in listener.methods:
                continue
            try:
                listener.send.send_nowait(event)
            except trio.WouldBlock:
                self.dropped_events += 1
            except trio.ClosedResourceError:
                pass

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result; raises :class:`CdpError` or
        :class:`CdpClosed`."""
        if self.closed.is_set():
            raise CdpClosed("the browser connection is closed")
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        waiting = self._pending[command_id] = _Reply()
        try:
            try:
                await self._wire.send(_encoder.encode(message))
            except WireClosed as exc:
                raise CdpClosed("the browser connection closed") from exc
            reply = await waiting.get()
        finally:
            self._pending.pop(command_id, None)
        if reply is _CLOSED:
            raise CdpClosed("the browser connection closed")
        if "error" in reply:
            error = reply["error"]
            raise CdpError(
                method, error.get("code", 0), error.get("message", ""), error.get("data")
            )
        result: dict[str, Any] = reply.get("result", {})
        return result

    @contextlib.contextmanager
    def listen(
        self,
        session_id: str | None = None,
        methods: frozenset[str] | None = None,
        *,
        buffer: int = LISTENER_BUFFER,
    ) -> Iterator[trio.MemoryReceiveChannel[CdpEvent]]:
        """Events of one session (``None``: the browser's own), optionally only ``methods``."""
        send, receive = trio.open_memory_channel[CdpEvent](buffer)
        listener = _Listener(send, methods)
        self._listeners.setdefault(session_id, []).append(listener)
        if self.closed.is_set():
            send.close()
        try:
            yield receive
        finally:
            listeners = self._listeners.get(session_id, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._listeners.pop(session_id, None)
            send.close()
            receive.close()

    def session(self, session_id: str) -> CdpSession:
        return CdpSession(self, session_id)

    async def attach(self, target_id: str) -> CdpSession:
        """A flattened session on ``target_id``."""
        result = await self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        return self.session(result["sessionId"])


@final
@attrs.frozen
class CdpSession:
    """One attached target: commands and events tagged with its session id."""

    connection: CdpConnection
    session_id: str

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.connection.send(method, params, session_id=self.session_id)

    def listen(
        self, methods: frozenset[str] | None = None, *, buffer: int = LISTENER_BUFFER
    ) -> contextlib.AbstractContextManager[trio.MemoryReceiveChannel[CdpEvent]]:
        return self.connection.listen(self.session_id, methods, buffer=buffer)
