"""Who runs next: per-session FIFO lanes, then ``runs.max_concurrent`` slots, FIFO across sessions.

A :class:`Turn` (a run, or a compaction holding a session) waits first to be the head of its
session's lane, then, if it needs one, for a slot. Both queues are plain deques rather than Trio
locks or semaphores because Trio does not promise the order in which waiters wake.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import final

from ._live_run import Turn

__all__ = ["Lanes"]


@final
class Lanes:
    def __init__(self, max_concurrent: Callable[[], int], admit: Callable[[Turn], None]) -> None:
        self._max_concurrent = max_concurrent
        self._admit = admit
        self._lanes: dict[str, collections.deque[Turn]] = {}
        self._ready: collections.deque[Turn] = collections.deque()
        self._busy = 0

    def turns(self, session_key: str) -> Iterable[Turn]:
        """The session's turns, the one holding it first."""
        return tuple(self._lanes.get(session_key, ()))

    def busy(self, session_key: str) -> bool:
        return bool(self._lanes.get(session_key))

    def enqueue(self, turn: Turn) -> None:
        lane = self._lanes.setdefault(turn.session_key, collections.deque())
        lane.append(turn)
        if len(lane) == 1:
            self._offer(turn)

    def _offer(self, turn: Turn) -> None:
        if turn.finishing:
            return
        if not turn.needs_slot:
            self._admit(turn)
        elif self._busy < self._max_concurrent():
            self._busy += 1
            self._admit(turn)
        else:
            self._ready.append(turn)

    def release(self, turn: Turn) -> None:
        """``turn`` leaves its lane (and its slot); the next turns move up. Idempotent."""
        lane = self._lanes.get(turn.session_key)
        if lane is None or turn not in lane:
            return  # released already
        was_head = lane[0] is turn
        lane.remove(turn)
        if not lane:
            del self._lanes[turn.session_key]
        if turn.admitted.is_set():
            if turn.needs_slot:
                self._busy -= 1
        elif turn in self._ready:
            self._ready.remove(turn)
        if was_head and lane:
            self._offer(lane[0])
        self.fill()

    def fill(self) -> None:
        """Admit waiting turns while slots are free (also after ``runs.max_concurrent`` grew)."""
        while self._ready and self._busy < self._max_concurrent():
            turn = self._ready.popleft()
            if not turn.finishing:
                self._busy += 1
                self._admit(turn)
