"""Reading processes from Linux's ``/proc``: who is in a process group, in which state."""

from __future__ import annotations

import os

__all__ = ["group_members"]


def group_members(pgid: int) -> list[tuple[int, bytes]]:
    """``(pid, state)`` of every process in group ``pgid``; ``state`` is ``/proc``'s letter
    (``R``, ``S``, ``Z`` for a zombie, ...)."""
    members = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if len(fields) > 2 and int(fields[2]) == pgid:
                members.append((int(entry.name), fields[0]))
    return members
