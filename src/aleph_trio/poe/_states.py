"""The lives of a POE run and of a contract (PROTOCOL §16).

::

    POE run:   running ──▶ succeeded / failed / cancelled
    contract:  pending ──▶ signed / rejected

A POE run is recorded ``running`` when it is accepted and ends in exactly one outcome; one a
stopped process left ``running`` is failed at the next start. Anything else raises
:class:`IllegalTransition`, a bug in the caller.
"""

from __future__ import annotations

from typing import Final

from ..kernel import TransitionTable

__all__ = ["CONTRACTS", "LIVE", "POE_RUNS", "TERMINAL"]

POE_RUNS: Final = TransitionTable(
    "POE run",
    {
        "running": frozenset({"succeeded", "failed", "cancelled"}),
        "succeeded": frozenset(),
        "failed": frozenset(),
        "cancelled": frozenset(),
    },
)
CONTRACTS: Final = TransitionTable(
    "contract",
    {
        "pending": frozenset({"signed", "rejected"}),
        "signed": frozenset(),
        "rejected": frozenset(),
    },
)
TERMINAL: Final = POE_RUNS.terminal
LIVE: Final = POE_RUNS.live
