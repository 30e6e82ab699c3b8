"""Slowing down token guessing (PROTOCOL §4): failed ``connect``s per peer address."""

from __future__ import annotations

import collections
from typing import final

import attrs

__all__ = ["FailureLimiter"]


@final
@attrs.define(eq=False)
class FailureLimiter:
    """At most ``limit`` failed ``connect``s per peer address within ``window_s`` seconds."""

    limit: int = 20
    window_s: float = 60.0
    _failures: dict[str, collections.deque[float]] = attrs.Factory(dict)

    def retry_after(self, address: str, now: float) -> float:
        """Seconds until ``address`` may try again (0 when it may try now)."""
        window = self._failures.get(address)
        if window is None:
            return 0.0
        while window and window[0] <= now - self.window_s:
            window.popleft()
        if not window:
            del self._failures[address]
            return 0.0
        if len(window) < self.limit:
            return 0.0
        return window[0] + self.window_s - now

    def record_failure(self, address: str, now: float) -> None:
        window = self._failures.setdefault(address, collections.deque())
        window.append(now)
        while len(window) > self.limit:
            window.popleft()
        if len(self._failures) > 10_000:  # keep memory bounded under an address-spraying attack
            self._prune(now)

    def _prune(self, now: float) -> None:
        for address in list(self._failures):
            self.retry_after(address, now)
