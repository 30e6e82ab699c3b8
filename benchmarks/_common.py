"""Helpers shared by the benchmark server scripts and the runner (stdlib + trio only)."""

from __future__ import annotations

import datetime as _dt
import os
import resource
import shutil
import signal
import sys
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


def start_runner(
    *, no_pin: bool, server_cpus: set[int], client_cpu: int, time_limit: float
) -> bool:
    """What every runner does first: raise the open-files limit, pin itself to ``client_cpu``
    (when ``taskset`` and all the CPUs are there; returns whether it did) and give the whole run
    ``time_limit`` seconds (SIGALRM raises ``TimeoutError``)."""
    raise_nofile_limit()
    pin = not no_pin and shutil.which("taskset") is not None
    pin = pin and {*server_cpus, client_cpu} <= os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {client_cpu})
    else:
        print("note: the servers and the client are not pinned to CPUs", file=sys.stderr)

    def timed_out(signum: int, frame: object) -> None:
        raise TimeoutError(f"the benchmark run took longer than {time_limit:g} s")

    signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    return pin


def say(text: str) -> None:
    """A progress line on stderr."""
    print(f"  {text}", file=sys.stderr, flush=True)


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
