#!/usr/bin/env python
"""What recording one JSON-RPC call costs: our instruments against ``prometheus_client``.

    pip install prometheus-client   # only for the comparison; the gateway does not use it
    python benchmarks/metrics_cost.py

Both record the same thing per call: a counter labelled by method and code, and a latency
histogram labelled by method. Printed: nanoseconds per call (best of five rounds), and what
importing ``prometheus_client`` would add to the gateway's start.
"""

from __future__ import annotations

import subprocess
import sys
import timeit

from aleph_trio.web import Instruments

CALLS = 200_000


def ours() -> float:
    instruments = Instruments()
    observe = instruments.observe_call
    return min(timeit.repeat(lambda: observe("echo", 0, 0.0003), number=CALLS, repeat=5)) / CALLS


def theirs() -> float | None:
    try:
        import prometheus_client as pc
    except ImportError:
        return None
    registry = pc.CollectorRegistry()
    requests = pc.Counter("rpc_requests", "calls", ["method", "code"], registry=registry)
    latency = pc.Histogram("rpc_seconds", "latency", ["method"], registry=registry)

    def observe() -> None:
        requests.labels("echo", "0").inc()
        latency.labels("echo").observe(0.0003)

    return min(timeit.repeat(observe, number=CALLS, repeat=5)) / CALLS


def import_ms(module: str) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(done.stdout) * 1000 if done.returncode == 0 else None


def main() -> None:
    mine, other = ours(), theirs()
    print(f"aleph_trio.web instruments: {mine * 1e9:8.0f} ns per call")
    if other is None:
        print("prometheus_client is not installed: no comparison")
        return
    print(f"prometheus_client:          {other * 1e9:8.0f} ns per call ({other / mine:.1f}x)")
    print(
        f"import prometheus_client: {import_ms('prometheus_client'):.0f} ms (a fresh interpreter)"
    )


if __name__ == "__main__":
    main()
