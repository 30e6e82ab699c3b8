"""Helpers shared by the benchmark server scripts and the runner (stdlib + trio only)."""

from __future__ import annotations

import datetime as _dt
import os
import resource
import time
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: Topic every benchmark event is published on (clients subscribe to ``bench.*``).
BENCH_TOPIC = "bench.tick"


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Raise the soft open-files limit towards ``wanted`` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC is system-wide on Linux, so server and client stamps are comparable."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def now_ts() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def stdin_triggers() -> AsyncIterator[int]:
    """Yield one integer per line written to this process's stdin (until EOF).

    The runner writes ``"<i>\\n"`` to ask a server script to broadcast event number ``i``. Stdin
    is read through a non-blocking :class:`trio.lowlevel.FdStream`, so no thread is involved.
    """
    stream = trio.lowlevel.FdStream(os.dup(0))
    buffered = b""
    async with stream:
        while True:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                if line.strip():
                    yield int(line)
