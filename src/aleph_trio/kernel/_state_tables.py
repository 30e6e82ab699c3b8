"""Lifecycles as transition tables (runs, approvals, cron firings): one checker for all.

Each lifecycle module declares its table at the top (state → states it may move to) and uses
:meth:`TransitionTable.check` for every move. A move the table does not allow raises
:class:`IllegalTransition`: a bug in the caller, never a client error.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["IllegalTransition", "TransitionTable"]


class IllegalTransition(Exception):
    """Something was asked to move where its table does not allow."""


@attrs.frozen
class TransitionTable:
    name: str  #: what moves, for messages ("run", "approval")
    transitions: Mapping[str, frozenset[str]]

    @property
    def terminal(self) -> frozenset[str]:
        """States nothing leaves."""
        return frozenset(s for s, targets in self.transitions.items() if not targets)

    @property
    def live(self) -> frozenset[str]:
        return frozenset(self.transitions) - self.terminal

    def check(self, current: str, new: str) -> str:
        """``new`` if a thing in ``current`` may move there; raises :class:`IllegalTransition`."""
        allowed = self.transitions.get(current)
        if allowed is None:
            raise IllegalTransition(f"unknown {self.name} status {current!r}")
        if new not in allowed:
            raise IllegalTransition(f"a {self.name} cannot go from {current} to {new}")
        return new
