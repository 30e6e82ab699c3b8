"""The life of a cron run — one firing of a job, as ``cron.get`` lists it (PROTOCOL §12).

::

    running ──▶ completed / failed / cancelled      (a firing that ran)
    skipped                                          (the previous firing was still running)
    missed                                           (the scheduler was not running at its time)

A firing is recorded ``running`` before its agent run starts and ends in exactly one of the
three outcomes. ``skipped`` and ``missed`` are born terminal: they record fire times that did
not run. Anything else raises :class:`IllegalTransition`, a bug in the caller.
"""

from __future__ import annotations

from typing import Final, Literal

from ..kernel import IllegalTransition, TransitionTable

__all__ = [
    "CRON_RUNS",
    "INITIAL",
    "LIVE",
    "TERMINAL",
    "TRANSITIONS",
    "CronRunStatus",
    "IllegalTransition",
    "check_initial",
    "check_transition",
]

CronRunStatus = Literal["running", "completed", "failed", "cancelled", "skipped", "missed"]

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "running": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "skipped": frozenset(),
    "missed": frozenset(),
}
#: The statuses a cron run record may be created with.
INITIAL: Final = frozenset({"running", "skipped", "missed"})
CRON_RUNS: Final = TransitionTable("cron run", TRANSITIONS)
TERMINAL: Final = CRON_RUNS.terminal
LIVE: Final = CRON_RUNS.live
check_transition: Final = CRON_RUNS.check


def check_initial(status: str) -> str:
    """``status`` if a cron run may be recorded with it; raises :class:`IllegalTransition`."""
    if status not in INITIAL:
        raise IllegalTransition(f"a cron run cannot start as {status}")
    return status
