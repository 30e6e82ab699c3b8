"""The life of an exec approval (PROTOCOL §10), as a transition table.

::

    pending ──▶ approved    (allow-once, allow-always)
            ──▶ denied      (deny)
            ──▶ expired     (timeout: no answer in time, or the gateway restarted)
            ──▶ cancelled   (whoever asked stopped waiting: its run was cancelled)

The first resolution wins: nothing leaves a final state, so a second answer is refused
(``invalid_state``). An expiry is a denial; nothing is ever approved by default.
"""

from __future__ import annotations

from typing import Final, Literal

from ..kernel import IllegalTransition, TransitionTable

__all__ = [
    "APPROVALS",
    "DECISION_STATUS",
    "HUMAN_DECISIONS",
    "TRANSITIONS",
    "ApprovalStatus",
    "IllegalTransition",
    "check_transition",
]

ApprovalStatus = Literal["pending", "approved", "denied", "expired", "cancelled"]

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "pending": frozenset({"approved", "denied", "expired", "cancelled"}),
    "approved": frozenset(),
    "denied": frozenset(),
    "expired": frozenset(),
    "cancelled": frozenset(),
}

#: What each decision makes of a pending approval.
DECISION_STATUS: Final[dict[str, str]] = {
    "allow-once": "approved",
    "allow-always": "approved",
    "deny": "denied",
    "timeout": "expired",
    "cancelled": "cancelled",
}

#: Decisions a human may give through ``exec.approval.resolve``.
HUMAN_DECISIONS: Final = ("allow-once", "allow-always", "deny")


APPROVALS: Final = TransitionTable("approval", TRANSITIONS)
check_transition: Final = APPROVALS.check
