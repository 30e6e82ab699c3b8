"""Slowing down token guessing (PROTOCOL §4) without ever refusing the right token.

Two rules, both about *failed* ``connect``s; a correct token is always accepted at once:

- **Per connection**: after :data:`MAX_FAILURES_PER_CONNECTION` failures no further token is
  checked on that connection (it is answered ``-32001`` and the connection closed with 1008),
  however the attempts arrive: one by one, pipelined or in one batch.
- **Per peer address**: past ``auth.failures_per_minute`` failures within a minute, the answer to
  each further failure waits, 0.25 s for the first and doubling up to ``auth.failure_delay_max_s``.
  Refusing attempts outright (``-32003``) let anyone on the same address lock the owner out.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, final

import attrs

if TYPE_CHECKING:
    from ..kernel import AuthConfig

__all__ = ["MAX_FAILURES_PER_CONNECTION", "FailureLimiter"]

#: Failed ``connect``s after which a connection checks no more tokens and is closed (1008).
MAX_FAILURES_PER_CONNECTION = 5
#: The delay before answering the first failure past the per-minute allowance; it doubles.
FIRST_DELAY_S = 0.25
WINDOW_S = 60.0
#: Addresses remembered at most; past that, addresses with nothing recent are forgotten.
MAX_ADDRESSES = 10_000


@final
@attrs.define(eq=False)
class FailureLimiter:
    """Counts failed ``connect``s per peer address over the last minute."""

    _settings: Callable[[], AuthConfig]
    _failures: dict[str, collections.deque[float]] = attrs.Factory(dict)

    def record_failure(self, address: str, now: float) -> float:
        """Count one failure from ``address``; returns how long to wait before answering it."""
        settings = self._settings()
        window = self._failures.get(address)
        if window is None:
            if len(self._failures) >= MAX_ADDRESSES:
                self._prune(now)
            window = self._failures[address] = collections.deque()
        self._expire(window, now)
        window.append(now)
        # Past the allowance only the count matters up to where the delay stops growing.
        keep = settings.failures_per_minute + 32
        while len(window) > keep:
            window.popleft()
        return self.delay_for(len(window), settings)

    def recent(self, address: str, now: float) -> int:
        """Failures from ``address`` within the last minute."""
        window = self._failures.get(address)
        if window is None:
            return 0
        self._expire(window, now)
        return len(window)

    @staticmethod
    def delay_for(count: int, settings: AuthConfig) -> float:
        """The wait before answering the ``count``-th failure of the last minute."""
        over = count - settings.failures_per_minute
        if over <= 0:
            return 0.0
        return min(settings.failure_delay_max_s, FIRST_DELAY_S * 2.0 ** min(over - 1, 32))

    @staticmethod
    def _expire(window: collections.deque[float], now: float) -> None:
        while window and window[0] <= now - WINDOW_S:
            window.popleft()

    def _prune(self, now: float) -> None:
        for address in list(self._failures):
            if not self.recent(address, now):
                del self._failures[address]
