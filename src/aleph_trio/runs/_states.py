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

from ..kernel import IllegalTransition, TransitionTable

__all__ = [
    "LIVE",
    "RUNS",
    "TERMINAL",
    "TRANSITIONS",
    "IllegalTransition",
    "RunStatus",
    "check_transition",
]

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
RUNS: Final = TransitionTable("run", TRANSITIONS)
TERMINAL: Final = RUNS.terminal
LIVE: Final = RUNS.live
check_transition: Final = RUNS.check
