"""Ctrl-C as cancellation, so a command can tidy up before it exits quietly with 130.

While a command runs, SIGINT does not raise ``KeyboardInterrupt`` (which Trio would deliver
wrapped in exception groups, printed as a long traceback): it cancels the innermost scope the
command opened with :meth:`Interrupt.scope`. The code around that scope still has its
connection, so ``chat`` can stop the answer it was following. A second Ctrl-C cancels the next
scope out.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Iterator

import trio

__all__ = ["EXIT_INTERRUPTED", "Interrupt", "interruptible"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class Interrupt:
    def __init__(self) -> None:
        self.received = False
        self._scopes: list[trio.CancelScope] = []

    @contextlib.contextmanager
    def scope(self) -> Iterator[trio.CancelScope]:
        """A scope that Ctrl-C cancels (the innermost open one first)."""
        scope = trio.CancelScope()
        self._scopes.append(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.remove(scope)

    def fire(self) -> None:
        self.received = True
        for scope in reversed(self._scopes):
            if not scope.cancel_called:
                scope.cancel()
                return


@contextlib.asynccontextmanager
async def interruptible() -> AsyncIterator[Interrupt]:
    """Route SIGINT to an :class:`Interrupt` for as long as the block runs."""
    interrupt = Interrupt()
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for _ in signals:
                    interrupt.fire()

            nursery.start_soon(watch)
            with interrupt.scope():
                yield interrupt
            nursery.cancel_scope.cancel()
