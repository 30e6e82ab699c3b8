"""The life of an agent run (PROTOCOL §7), as a transition table.

::

    queued ──▶ running ⇄ waiting_input
       │         │  ⇅
       │         │ waiting_approval
       ▼         ▼
    cancelled / failed / completed      (terminal: nothing leaves them)

A run may be cancelled or fail from any live state; only a running run completes. Anything else
raises :class:`IllegalTransition`, a bug in the caller, never a client error.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["LIVE", "TERMINAL", "TRANSITIONS", "IllegalTransition", "RunStatus", "check_transition"]

RunStatus = Literal[
    "queued", "running", "waiting_input", "waiting_approval", "completed", "failed", "cancelled"
]

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "queued": frozenset({"running", "cancelled", "failed"}),
    "running": frozenset({"waiting_input", "waiting_approval", "completed", "failed", "cancelled"}),
    "waiting_input": frozenset({"running", "failed", "cancelled"}),
    "waiting_approval": frozenset({"running", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
TERMINAL: Final = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
LIVE: Final = frozenset(TRANSITIONS) - TERMINAL


class IllegalTransition(Exception):
    """A run was asked to move where the table does not allow."""


def check_transition(current: str, new: str) -> str:
    """``new`` if a run in ``current`` may move there; raises :class:`IllegalTransition` if not."""
    allowed = TRANSITIONS.get(current)
    if allowed is None:
        raise IllegalTransition(f"unknown run status {current!r}")
    if new not in allowed:
        raise IllegalTransition(f"a run cannot go from {current} to {new}")
    return new
