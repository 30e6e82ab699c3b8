"""One client connection: a task group with a reader, a writer, a pinger and one task per request.

Closing the socket cancels this connection's requests only; work that belongs to the gateway (agent
runs, cron firings, wizards) lives in the gateway's own task groups.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import TYPE_CHECKING, final

import attrs
import trio

from ..auth import MAX_FAILURES_PER_CONNECTION, OWNER, Principal
from ..kernel import Event, Subscriber, component_logger
from ..protocol import (
    AlephError,
    Dropped,
    Id,
    InternalError,
    Invalid,
    InvalidRequest,
    Item,
    Notification,
    Request,
    encode_batch,
    encode_error,
    encode_result,
    parse_message,
)
from ..rpc import CallContext, dispatch
from ._outbound import Outbound
from ._websocket import TransportClosed, WebSocketTransport

if TYPE_CHECKING:
    from .._gateway import Gateway

__all__ = ["Connection"]

log = component_logger("server")

#: Message size limit before the connection has authenticated (PROTOCOL §1).
PRE_AUTH_MAX_MESSAGE = 64 * 1024


@attrs.frozen
class ConnectionStatistics:
    connection_id: str
    address: str
    role: str | None
    queued_frames: int
    queued_bytes: int
    frames_sent: int
    requests_handled: int
    in_flight: int
    patterns: tuple[str, ...]


@final
class Connection:
    """Created by the listener (or ``Gateway.connect``) for each accepted WebSocket."""

    def __init__(self, gateway: Gateway, transport: WebSocketTransport, *, address: str) -> None:
        server = gateway.config.server
        self._gateway = gateway
        self._transport = transport
        self._address = address
        self._id = "conn_" + uuid.uuid4().hex[:12]
        self._principal: Principal | None = None
        self._client_id: str | None = None
        self._auth_failures = 0
        self._authenticated = trio.Event()
        self._close_code: tuple[int, str] | None = None
        self._close_after_reply: tuple[int, str] | None = None
        self._cancel_scope = trio.CancelScope()
        self._in_flight = trio.Semaphore(server.max_in_flight)
        self._reading_paused = False
        self._read_pauses = 0
        self._outbound = Outbound(
            transport, server.send_queue, self._transport_broken, max_bytes=server.send_queue_bytes
        )
        self._subscriber = gateway.bus.subscribe(
            self._offer_event, on_overflow=self._slow_consumer, may_see=self._may_see
        )
        transport.max_message_size = PRE_AUTH_MAX_MESSAGE
        self.requests_handled = 0

    # -- the Peer interface handlers see ----------------------------------------------------

    @property
    def connection_id(self) -> str:
        return self._id

    @property
    def address(self) -> str:
        return self._address

    @property
    def principal(self) -> Principal | None:
        return self._principal

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def subscriber(self) -> Subscriber:
        return self._subscriber

    def authenticate(self, principal: Principal, client_id: str | None) -> None:
        self._principal = principal
        self._client_id = client_id
        self._transport.max_message_size = self._gateway.config.server.max_message_bytes
        self._authenticated.set()

    @property
    def auth_failures(self) -> int:
        return self._auth_failures

    def note_auth_failure(self) -> int:
        self._auth_failures += 1
        if self._auth_failures >= MAX_FAILURES_PER_CONNECTION:
            self._close_after_reply = (1008, "too many failed authentication attempts")
        return self._auth_failures

    async def send_event(self, event: Event) -> None:
        await self._outbound.send(event.encoded)

    # -- lifecycle ---------------------------------------------------------------------------

    def close_soon(self, code: int, reason: str) -> None:
        """Close this connection with ``code``: its requests are cancelled, the socket closed."""
        if self._close_code is None:
            self._close_code = (code, reason)
        self._cancel_scope.cancel()

    async def run(self) -> None:
        gateway = self._gateway
        log.debug("%s opened from %s", self._id, self._address)
        if not gateway.config.auth.require_auth:
            self.authenticate(OWNER, None)
        try:
            with self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._outbound.serve_writer)
                    nursery.start_soon(self._serve_pings)
                    if self._principal is None:
                        nursery.start_soon(self._watch_handshake)
                    await self._read_loop(nursery)
                    nursery.cancel_scope.cancel()
        finally:
            if self._close_code is None and trio.current_effective_deadline() == -math.inf:
                # Cancelled from outside (our own closes use our own scope): the gateway stops.
                self._close_code = (1001, "gateway stopping")
            gateway.bus.unsubscribe(self._subscriber)
            code, reason = self._close_code or (1000, "")
            if code != 1000:
                log.info("closing %s (%s): %d %s", self._id, self._address, code, reason)
            else:
                log.debug("closing %s (%s): 1000", self._id, self._address)
            with trio.CancelScope(shield=True), trio.move_on_after(3.0):
                await self._transport.aclose(code, reason)

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                message = await self._transport.receive_message()
            except TransportClosed as exc:
                if self._close_code is None and exc.code in (1009, 1002, 1007):
                    self._close_code = (exc.code, exc.reason)
                return
            try:
                self._in_flight.acquire_nowait()
            except trio.WouldBlock:
                # Back-pressure: nothing is read (pongs included) until a request finishes.
                self._read_pauses += 1
                self._reading_paused = True
                try:
                    await self._in_flight.acquire()
                finally:
                    self._reading_paused = False
            nursery.start_soon(self._handle_message, message)

    async def _handle_message(self, message: str | bytes) -> None:
        """Runs on the in-flight slot the reader took for this message."""
        try:
            if isinstance(message, bytes):
                error = InvalidRequest("Invalid request: binary frames are not supported")
                await self._outbound.send(encode_error(None, error))
                return
            server = self._gateway.config.server
            parsed = parse_message(message, max_batch=server.max_batch)
            if not parsed.batch:
                item = parsed.items[0]
                reply = await self._handle_item(item)
                if reply is not None:
                    if len(reply) > server.max_message_bytes:  # rare: only then the budget
                        budget = ResponseBudget(server.max_message_bytes, batch=False)
                        reply = budget.admit(_id_of(item), reply)
                    await self._outbound.send(reply)
            else:
                await self._handle_batch(parsed.items, server.max_message_bytes)
            if self._close_after_reply is not None:
                self.close_soon(*self._close_after_reply)
        finally:
            self._in_flight.release()
            self.requests_handled += 1

    async def _handle_batch(self, items: list[Item], max_bytes: int) -> None:
        """Elements run concurrently, each on an in-flight slot of its own like a separate
        request (the first on the message's), so a batch cannot run more than
        ``server.max_in_flight`` at once; the answer is kept within ``max_bytes``."""
        replies: list[bytes] = []
        budget = ResponseBudget(max_bytes, batch=True)

        async def run_item(item: Item, own_slot: bool) -> None:
            try:
                reply = await self._handle_item(item)
            finally:
                if own_slot:
                    self._in_flight.release()
            if reply is not None:
                replies.append(budget.admit(_id_of(item), reply))

        async with trio.open_nursery() as batch:
            for index, item in enumerate(items):
                if index:
                    try:
                        self._in_flight.acquire_nowait()
                    except trio.WouldBlock:
                        await self._in_flight.acquire()
                batch.start_soon(run_item, item, index > 0)
        if replies:
            await self._outbound.send(encode_batch(replies))

    async def _handle_item(self, item: Item) -> bytes | None:
        if isinstance(item, Invalid):
            self._gateway.instruments.requests.inc(("invalid", str(item.error.code)))
            return encode_error(item.id, item.error)
        if isinstance(item, Dropped):
            return None
        if isinstance(item, Notification) and self._principal is None:
            return None  # before authentication notifications are dropped, ``connect`` included
        gateway = self._gateway
        ctx = CallContext(gateway, self)
        started = time.perf_counter()
        try:
            result = await dispatch(gateway.registry, ctx, item.method, item.params)
        except AlephError as error:
            self._observe(item.method, error.code, started)
            if isinstance(item, Request):
                return encode_error(item.id, error)
            return None
        self._observe(item.method, 0, started)
        if isinstance(item, Notification):
            return None
        try:
            return encode_result(item.id, result)
        except (TypeError, ValueError, OverflowError, RecursionError):
            log.exception("result of %s cannot be encoded as JSON", item.method)
            return encode_error(
                item.id, InternalError(f"Internal error while running {item.method}")
            )

    def _observe(self, method: str, code: int, started: float) -> None:
        label = method if method in self._gateway.registry else "unknown"
        self._gateway.instruments.observe_call(label, code, time.perf_counter() - started)

    # -- events ------------------------------------------------------------------------------

    def _may_see(self, event: Event) -> bool:
        principal = self._principal
        if principal is None:
            return False
        if principal.role == "owner":
            return True
        return not event.owner_only and event.principal_id == principal.principal_id

    def _offer_event(self, event: Event) -> bool:
        return self._outbound.offer(event.encoded)

    def _slow_consumer(self) -> None:
        if self._close_code is None:
            self._gateway.instruments.slow_consumers.inc()
        self.close_soon(1008, "slow consumer: resume with events.subscribe since_seq")

    def _transport_broken(self, exc: TransportClosed) -> None:
        self.close_soon(exc.code, exc.reason)

    # -- timers ------------------------------------------------------------------------------

    async def _watch_handshake(self) -> None:
        timeout = self._gateway.config.auth.handshake_timeout_s
        with trio.move_on_after(timeout):
            await self._authenticated.wait()
            return
        self.close_soon(1008, "authentication timeout")

    async def _serve_pings(self) -> None:
        while True:
            server = self._gateway.config.server
            await trio.sleep(server.ping_interval_s)
            pauses = self._read_pauses
            # The timeout covers sending the ping too: a write stuck behind a peer that stopped
            # reading ends the connection here.
            with trio.move_on_after(server.ping_timeout_s):
                try:
                    pong = await self._transport.ping()
                except TransportClosed:
                    return
                await pong.wait()
                continue
            if self._reading_paused or self._read_pauses != pauses:
                # We stopped reading (requests at max_in_flight, e.g. approvals waiting for a
                # human), so the pong may be sitting unread: that says nothing about the peer.
                continue
            self.close_soon(1011, "ping timeout")
            return

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            connection_id=self._id,
            address=self._address,
            role=self._principal.role if self._principal else None,
            queued_frames=len(self._outbound),
            queued_bytes=self._outbound.queued_bytes,
            frames_sent=self._outbound.frames_sent,
            requests_handled=self.requests_handled,
            in_flight=self._gateway.config.server.max_in_flight - self._in_flight.value,
            patterns=tuple(self._subscriber.patterns),
        )


def _id_of(item: Item) -> Id:
    return item.id if isinstance(item, (Request, Invalid)) else None


@final
class ResponseBudget:
    """Keeps a response, single or a whole batch, within ``limit`` bytes: a reply that would
    pass it is replaced by a short ``-32603`` naming the size (``data.reason = "limit"``)."""

    def __init__(self, limit: int, *, batch: bool) -> None:
        self._limit = limit
        self._batch = batch
        self._used = 1 if batch else 0  # "[" + (reply + "," or "]") per element

    def admit(self, id_: Id, reply: bytes) -> bytes:
        size = self._used + len(reply) + (1 if self._batch else 0)
        if size > self._limit:
            what = "response too large"
            if self._batch:
                what = "batch response too large with this element"
            log.warning("%s: %d bytes, limit %d", what, size, self._limit)
            error = InternalError(
                f"Internal error: {what} ({size} bytes, limit {self._limit})",
                {"reason": "limit", "bytes": size, "limit": self._limit},
            )
            reply = encode_error(id_, error)
            size = self._used + len(reply) + (1 if self._batch else 0)
        self._used = size
        return reply
