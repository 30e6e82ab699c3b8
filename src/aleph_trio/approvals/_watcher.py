"""Kills the gateway's commands when the gateway is gone, however it went.

Run by :class:`~aleph_trio.approvals._guard.ProcessGuard` as ``python -I -S <this file>``, in
a session of its own, with a pipe from the gateway as stdin. The gateway writes ``+<pgid>``
when a command's process group starts and ``-<pgid>`` when it is over. When the pipe ends
(the gateway closed it, or the gateway died and the kernel closed it: ``kill -9`` included),
every group still listed is killed and the watcher exits.

This file imports nothing but the standard library and runs as a script, so it starts in a few
milliseconds and does not depend on the gateway's own imports.
"""

from __future__ import annotations

import os
import signal
import sys


def _kill(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Stop(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def main() -> None:
    # A Ctrl-C in the gateway's terminal is for the gateway, which stops its commands itself;
    # SIGTERM (a service manager stopping everything) stops the commands and the watcher.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    groups: set[int] = set()
    try:
        for line in sys.stdin.buffer:
            text = line.strip()
            if len(text) < 2 or not text[1:].isdigit():
                continue
            if text[:1] == b"+":
                groups.add(int(text[1:]))
            elif text[:1] == b"-":
                groups.discard(int(text[1:]))
    except _Stop:
        pass
    finally:
        for pgid in groups:
            _kill(pgid)


if __name__ == "__main__":
    main()
