"""Read timeouts without a cancel scope per read: the :class:`Watch` a response's reader
bumps around each wait, and the :class:`Watchdog` task that closes the connection of a read
stalled for longer than its limit.

The watchdog is a task of its owner's nursery, not a system task: :func:`open_watchdog` runs
one for as long as its ``async with`` block (the HTTP client's owner,
:func:`._http.open_http_client`), and the transport is handed it explicitly.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, final

import httpx
import trio

if TYPE_CHECKING:
    from ._http1 import Connection

__all__ = ["Watch", "Watchdog", "open_watchdog", "read_timeout"]


@final
class Watch:
    """One exchange's reads as the watchdog sees them.

    The reader adds one to ``count`` when it starts waiting for bytes and one when the wait is
    over, so ``count`` is odd while it waits; that is all a read costs. A count that stays odd
    and unchanged for ``limit`` seconds is a stalled read: the watchdog sets ``fired`` and
    closes the connection, which wakes the reader with an error it reports as a timeout. Time
    the caller spends between reads (count even) never counts."""

    __slots__ = ("conn", "count", "done", "fired", "limit", "period", "seen", "seen_at")

    def __init__(self, conn: Connection, limit: float | None) -> None:
        self.conn = conn
        self.limit = math.inf if limit is None else limit
        # How often the watchdog looks (never 0: a zero timeout must not spin it).
        self.period = max(self.limit / 8, 0.001)
        self.count = 0
        self.done = False
        self.fired = False
        self.seen = 0
        self.seen_at = 0.0


@final
class Watchdog:
    """Checks the read watches given to it every 1/8 of their limit, while :meth:`run` runs.

    A stall is seen between ``limit`` and ``limit * 9/8`` seconds after the bytes stopped."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._nap: trio.CancelScope | None = None
        self._running = False

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running: only then do read timeouts fire."""
        return self._running

    def add(self, watch: Watch) -> None:
        """Start watching; the reader is about to wait (odd count). A watchdog that is not
        running could never enforce the limit, so it refuses."""
        if not self._running:
            raise RuntimeError("the HTTP read watchdog is not running (see open_watchdog)")
        now = trio.current_time()
        watch.seen = watch.count
        watch.seen_at = now
        due = now + watch.period
        heapq.heappush(self._due, (due, next(self._order), watch))
        nap = self._nap
        if nap is not None and due < nap.deadline:
            nap.deadline = due

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch until cancelled (start it with ``nursery.start``: it is running once that
        returns)."""
        if self._running:
            raise RuntimeError("this HTTP read watchdog is already running")
        self._running = True
        try:
            task_status.started()
            await self._watch()
        finally:
            self._running = False
            self._nap = None

    async def _watch(self) -> None:
        due = self._due
        while True:
            now = trio.current_time()
            while due and due[0][0] <= now:
                watch = heapq.heappop(due)[2]
                if watch.done:
                    continue
                count = watch.count
                if count != watch.seen or not count & 1:
                    watch.seen = count
                    watch.seen_at = now
                elif now - watch.seen_at >= watch.limit:
                    watch.fired = True
                    watch.done = True
                    watch.conn.close()
                    continue
                check = now + watch.period
                if count & 1:
                    check = min(check, watch.seen_at + watch.limit)
                heapq.heappush(due, (check, next(self._order), watch))
            with trio.CancelScope(deadline=due[0][0] if due else math.inf) as nap:
                self._nap = nap
                await trio.sleep_forever()
            self._nap = None


@asynccontextmanager
async def open_watchdog() -> AsyncIterator[Watchdog]:
    """A :class:`Watchdog` running in a nursery of its own for as long as the block, cancelled
    when the block ends.

    An exception from the block comes out as it is, not wrapped in an exception group (the
    watchdog itself never fails), so this can go into an ``async with`` next to others."""
    dog = Watchdog()
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(dog.run, name="aleph_trio http read watchdog")
        try:
            yield dog
        except BaseException as exc:
            # Raised again below, once the watchdog has stopped and the nursery is closed.
            failure = exc
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        try:
            raise failure
        finally:
            failure = None  # no reference cycle through this frame


def read_timeout(watch: Watch) -> httpx.ReadTimeout:
    """What a read reports when the watchdog closed its connection."""
    return httpx.ReadTimeout(f"no bytes of the answer for {watch.limit:g} s")
