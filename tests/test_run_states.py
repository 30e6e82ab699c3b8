"""The run status table (PROTOCOL §7)."""

from __future__ import annotations

import itertools

import pytest

from aleph_trio.runs._states import (
    LIVE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    check_transition,
)

ALLOWED = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("queued", "failed"),
    ("running", "waiting_input"),
    ("running", "waiting_approval"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("waiting_input", "running"),
    ("waiting_input", "failed"),
    ("waiting_input", "cancelled"),
    ("waiting_approval", "running"),
    ("waiting_approval", "failed"),
    ("waiting_approval", "cancelled"),
}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(TRANSITIONS, repeat=2)))
def test_every_pair(current: str, new: str) -> None:
    if (current, new) in ALLOWED:
        assert check_transition(current, new) == new
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, new)


def test_terminal_and_live_sets() -> None:
    assert TERMINAL == {"completed", "failed", "cancelled"}
    # What a restart marks failed (the run manager hands LIVE to the store) is exactly what
    # can still move.
    assert set(TRANSITIONS) - TERMINAL == LIVE


def test_unknown_status() -> None:
    with pytest.raises(IllegalTransition, match="unknown"):
        check_transition("paused", "running")
