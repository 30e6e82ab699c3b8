"""The bounded outbound queue of one connection (PROTOCOL §5).

Every frame to a client goes through here. The queue is bounded twice: by frames
(``server.send_queue``) and by their bytes (``server.send_queue_bytes``); a frame is always let
into an empty queue, so one larger than the byte bound can still be sent. Responses wait for room
(back-pressure to their handler); events never wait: an event that finds the queue full makes
``offer`` answer ``False`` and the connection closes as a slow consumer. Frames waiting together
leave in one write.

Writing is combined: the task that queues a response writes the queue out itself when nobody is
writing, which saves a scheduler pass per reply; an event offered while nothing is queued or
being written goes straight into the socket from the publishing task when the kernel takes it
at once. Anything else is written by the connection's writer task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, final

import trio

from ._websocket import TransportClosed

if TYPE_CHECKING:
    from ._websocket import WebSocketTransport

__all__ = ["Outbound"]


@final
class Outbound:
    def __init__(
        self,
        transport: WebSocketTransport,
        capacity: int,
        on_broken: Callable[[TransportClosed], None],
        *,
        max_bytes: int,
    ) -> None:
        self._transport = transport
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._on_broken = on_broken
        self._frames: list[bytes] = []
        self._bytes = 0  #: the bytes of ``_frames``
        self._room = trio.lowlevel.ParkingLot()
        self._writer = trio.lowlevel.ParkingLot()
        self._flushing = False
        self._broken = False
        self.frames_sent = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def _has_room(self, size: int) -> bool:
        frames = self._frames
        return not frames or (len(frames) < self.capacity and self._bytes + size <= self.max_bytes)

    def _append(self, frame: bytes) -> None:
        self._frames.append(frame)
        self._bytes += len(frame)

    async def send(self, frame: bytes) -> None:
        """Queue a frame, waiting while the queue is full, and write it out if nobody is writing."""
        while not self._has_room(len(frame)) and not self._broken:
            await self._room.park()
        if self._broken:
            return
        self._append(frame)
        await self._flush(rounds=1)

    def offer(self, frame: bytes) -> bool:
        """Queue a frame without waiting; ``False`` when the queue is full."""
        if self._broken:
            return True  # the connection is going away; nothing more will be written
        if not self._frames and not self._flushing and self._transport.try_send_now(frame):
            self.frames_sent += 1
            if self._transport.has_tail:
                self._writer.unpark()  # the kernel took part of it: the writer sends the rest
            return True
        if not self._has_room(len(frame)):
            return False
        self._append(frame)
        self._writer.unpark()
        return True

    async def serve_writer(self) -> None:
        """The connection's writer task: writes whatever ``offer`` queued or a round left."""
        while True:
            if not (self._frames or self._transport.has_tail) or self._flushing:
                await self._writer.park()
            await self._flush(rounds=None)

    async def _flush(self, *, rounds: int | None) -> None:
        if self._flushing or self._broken:
            return
        self._flushing = True
        done = 0
        try:
            while (self._frames or self._transport.has_tail) and (rounds is None or done < rounds):
                batch, self._frames, self._bytes = self._frames, [], 0
                self._room.unpark_all()
                await self._transport.send_frames(batch)
                self.frames_sent += len(batch)
                done += 1
        except TransportClosed as exc:
            self._broken = True
            self._frames.clear()
            self._bytes = 0
            self._room.unpark_all()
            self._on_broken(exc)
        finally:
            self._flushing = False
        if self._frames:
            self._writer.unpark()
