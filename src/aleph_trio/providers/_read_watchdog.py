"""Read timeouts without a cancel scope per read: the :class:`Watch` a response's reader
bumps around each wait, and the per-run :class:`Watchdog` task that closes the connection of a
read stalled for longer than its limit.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING, Final, final

import httpx
import trio

if TYPE_CHECKING:
    from ._http1 import Connection

__all__ = ["Watch", "Watchdog", "current_watchdog", "read_timeout"]


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
    """Checks the read watches of one trio run every 1/8 of their limit, from a system task.

    A stall is seen between ``limit`` and ``limit * 9/8`` seconds after the bytes stopped."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._nap: trio.CancelScope | None = None

    def add(self, watch: Watch) -> None:
        """Start watching; the reader is about to wait (odd count)."""
        now = trio.current_time()
        watch.seen = watch.count
        watch.seen_at = now
        due = now + watch.period
        heapq.heappush(self._due, (due, next(self._order), watch))
        nap = self._nap
        if nap is not None and due < nap.deadline:
            nap.deadline = due

    async def run(self) -> None:
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


_WATCHDOG: Final[trio.lowlevel.RunVar[Watchdog]] = trio.lowlevel.RunVar("http_read_watchdog")


def current_watchdog() -> Watchdog:
    """The watchdog of the current trio run, started on first use."""
    try:
        return _WATCHDOG.get()
    except LookupError:
        dog = Watchdog()
        _WATCHDOG.set(dog)
        trio.lowlevel.spawn_system_task(dog.run, name="aleph_trio http read watchdog")
        return dog


def read_timeout(watch: Watch) -> httpx.ReadTimeout:
    """What a read reports when the watchdog closed its connection."""
    return httpx.ReadTimeout(f"no bytes of the answer for {watch.limit:g} s")
