#!/usr/bin/env python
"""Another connection's ``health`` while clients flood the gateway with batches, in one go.

    python benchmarks/flood.py            # about 40 s on a quiet machine
    python benchmarks/flood.py --quick    # shorter blocks, to check the harness
    python benchmarks/flood.py --only session_list

The gateway is ``python -m aleph_trio --host 127.0.0.1 --port 0 --data-dir <fresh dir>``:
default configuration (``server.max_batch`` 100, ``server.max_in_flight`` 64,
``server.max_message_bytes`` 4 MiB), authentication on, one gateway for the whole run. It is
pinned to CPU 0 with ``taskset``; this process (the prober) and the flooding clients, each its own
process so that neither waits for the other's interpreter, are pinned to CPU 1. Every connection
authenticates with ``connect`` and speaks through the same minimal client as ``run.py``
(``_wsclient.py``).

The store is populated first through the API: ``--sessions`` sessions (``agent.run`` of the
built-in model on ``agent:main:flood-<i>``, each answered) and ``--memories`` memories
(``memory.store``, a dozen words from a 400-word vocabulary each).

A flooding client sends ``--depth`` batches of 100 requests (the most a batch may hold) and sends
another each time one is answered, so the gateway always has its fill of work from it:

1. ``session_list``: one client, batches of ``session.list`` (``limit`` 50: about 15 KB each).
2. ``memory_search``: one client, batches of ``memory.search`` (a two-word query, ``limit`` 10).
3. ``five``: five clients at once, batches of both kinds (the load that used to delay ``health``
   by seconds when batches had no cap).

Meanwhile the prober, on a connection of its own, sends ``health`` and waits for its answer, then
pauses ``--gap`` ms, and again. The baseline is the same prober on the same gateway with nobody
flooding, measured in blocks alternating with the flooded ones (idle, flood, flood, idle, ...),
so both see the same machine and the same store. Each flooded block starts its flooders, waits
until each has had an answer (the flood is under way), measures, then stops them and waits until
their last batches are answered. The client's garbage collector is off while measuring.

The table is printed and written, with every raw figure, to
``benchmarks/results/flood-latest.json`` (the table alone to ``flood-latest.md``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import say, start_runner  # noqa: E402
from _table import (  # noqa: E402
    code_line,
    format_table,
    machine_line,
    make_row,
    print_outcome,
    write_report,
)
from _wsclient import WSClient, decode, request  # noqa: E402
from run import Bench, Load, Server, _percentile, machine_info, running  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Sequence

BENCHMARKS = ("session_list", "memory_search", "five")
GATEWAY_CPU = 0
CLIENT_CPU = 1
#: ``server.max_batch``'s default: the largest batch the gateway accepts.
BATCH = 100
clock = time.perf_counter_ns
WORDS = [f"w{i:03d}" for i in range(400)]
#: How a flooding client gets the owner token from this process.
TOKEN_VAR = "FLOOD_BENCH_TOKEN"


# -- the flooding client (a process of its own) ------------------------------------------------


def batch_frame(client: WSClient, kind: str, first_id: int, size: int, rng: random.Random) -> bytes:
    docs = []
    for i in range(size):
        if kind == "session.list":
            params: dict[str, Any] = {"limit": 50, "offset": rng.randrange(0, 50)}
        else:
            params = {"query": f"{rng.choice(WORDS)} {rng.choice(WORDS)}", "limit": 10}
        docs.append({"jsonrpc": "2.0", "id": first_id + i, "method": kind, "params": params})
    return client.frame(json.dumps(docs, separators=(",", ":")).encode())


def flooder(args: argparse.Namespace) -> int:
    """Keep ``depth`` batches outstanding until stdin closes; then drain and print figures."""
    client = WSClient(args.host, args.port)
    client.call(1, "connect", {"token": os.environ[TOKEN_VAR]})
    client.sock.setblocking(False)
    rng = random.Random(args.seed)
    kinds = args.kinds.split(",")
    next_id = 1000
    outstanding = sent = answered = elements = errors = received_bytes = 0
    stopping = False
    first = True

    def send_one() -> None:
        nonlocal next_id, outstanding, sent
        frame = batch_frame(client, kinds[sent % len(kinds)], next_id, args.batch, rng)
        next_id += args.batch
        client.sock.setblocking(True)
        client.send_raw(frame)
        client.sock.setblocking(False)
        outstanding += 1
        sent += 1

    for _ in range(args.depth):
        send_one()
    poller = select.epoll()
    poller.register(client.fileno(), select.EPOLLIN)
    poller.register(0, select.EPOLLIN)
    started = time.perf_counter()
    while outstanding:
        for fd, _ in poller.poll(5.0):
            if fd == 0:
                if not os.read(0, 4096):
                    stopping = True
                    poller.unregister(0)
                continue
            for message in client.poll():
                received_bytes += len(message)
                outstanding -= 1
                answered += 1
                if message[:1] == b"[":
                    elements += args.batch
                    errors += message.count(b'"error":{')
                else:  # one error for the whole batch: this must not happen here
                    errors += args.batch
                if first:
                    print("flooding", flush=True)
                    first = False
                if not stopping:
                    send_one()
    elapsed = time.perf_counter() - started
    client.close()
    print(json.dumps({"batches": answered, "elements": elements, "errors": errors,
                      "bytes": received_bytes, "elapsed_s": elapsed}), flush=True)  # fmt: skip
    return 0


class Flood:
    """Flooding client processes, started together and stopped together."""

    def __init__(
        self, server: Server, bench: Bench, kinds: Sequence[str], depth: int, batch: int
    ) -> None:
        prefix = ["taskset", "-c", str(CLIENT_CPU)] if bench.pin_prefix else []
        self.procs = []
        for n, kind in enumerate(kinds):
            cmd = [*prefix, sys.executable, str(Path(__file__)), "--flooder", "--host",
                   server.host, "--port", str(server.port),
                   "--kinds", kind, "--depth", str(depth), "--seed", str(n),
                   "--batch", str(batch)]  # fmt: skip
            env = {**os.environ, TOKEN_VAR: server.token or ""}  # not on a command line
            self.procs.append(
                subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env
                )
            )
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().strip()
            if line != "flooding":
                raise RuntimeError(f"a flooder did not start: {line!r}")

    def stop(self) -> list[dict[str, Any]]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        out = []
        for proc in self.procs:
            assert proc.stdout is not None
            stdout = proc.stdout.read()
            if proc.wait(timeout=60):
                raise RuntimeError(f"a flooder failed: {stdout[-500:]!r}")
            out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
        return out


# -- populating the store ------------------------------------------------------------------------


def populate(server: Server, sessions: int, memories: int) -> None:
    client = server.connect()
    rng = random.Random(7)
    rid = 100
    for start in range(0, memories, BATCH):
        docs = []
        for _ in range(min(BATCH, memories - start)):
            text = " ".join(rng.choice(WORDS) for _ in range(12))
            docs.append({"jsonrpc": "2.0", "id": rid, "method": "memory.store",
                         "params": {"content": text, "source": "flood"}})  # fmt: skip
            rid += 1
        client.send(json.dumps(docs).encode())
        replies = decode(client.recv())
        if any("error" in r for r in replies):
            raise AssertionError(f"memory.store failed: {replies[0]}")
    # agent.run, at most 16 runs unfinished at a time; its answer and the run's events are read
    # in one loop (``WSClient.call`` would skip the events of other runs).
    started = finished = 0
    while finished < sessions:
        while started < sessions and started - finished < 16:
            params = {"message": f"echo: session {started}",
                      "session_key": f"agent:main:flood-{started}"}  # fmt: skip
            client.send(request(rid, "agent.run", params))
            rid += 1
            started += 1
        doc = decode(client.recv())
        if "error" in doc:
            raise AssertionError(f"agent.run failed: {doc['error']}")
        topic = doc["params"]["topic"] if doc.get("method") == "event" else None
        if topic in ("agent.error", "agent.cancelled"):
            raise AssertionError(f"run failed: {doc['params']}")
        if topic == "agent.completed":
            finished += 1
    listed = client.call(rid, "session.list", {"limit": 1})
    if listed["total"] < sessions:
        raise AssertionError(f"only {listed['total']} sessions")
    client.close()


# -- the prober ----------------------------------------------------------------------------------


class Prober:
    """``health`` round trips on a connection of its own, ``gap`` apart."""

    def __init__(self, server: Server, gap_s: float) -> None:
        self.client = server.connect()
        self.gap_s = gap_s
        self.rid = 10

    def probe(self, duration: float) -> list[int]:
        out: list[int] = []
        until = time.perf_counter() + duration
        client = self.client
        while time.perf_counter() < until:
            self.rid += 1
            frame = client.frame(request(self.rid, "health"))
            t0 = clock()
            client.send_raw(frame)
            doc = decode(client.recv())
            out.append(clock() - t0)
            if doc.get("id") != self.rid or doc["result"]["status"] != "ok":
                raise AssertionError(f"unexpected answer {doc!r}")
            time.sleep(self.gap_s)
        return out

    def close(self) -> None:
        self.client.close()


def _summary(ns: Sequence[int]) -> dict[str, float]:
    return {
        "p50_ms": _percentile(ns, 0.5) / 1e6,
        "p99_ms": _percentile(ns, 0.99) / 1e6,
        "max_ms": max(ns) / 1e6,
        "count": len(ns),
    }


SCENARIOS: dict[str, list[str]] = {
    "session_list": ["session.list"],
    "memory_search": ["memory.search"],
    "five": ["session.list", "memory.search"] * 2 + ["session.list,memory.search"],
}


def measure(
    name: str, server: Server, bench: Bench, prober: Prober, args: argparse.Namespace
) -> dict[str, Any]:
    idle: list[int] = []
    flooded: list[int] = []
    floods: list[dict[str, Any]] = []
    flood_s = flood_cpu_s = flood_elapsed_s = 0.0
    gc.collect()
    gc.disable()
    try:
        with Load(server) as load:
            for block in range(args.blocks):
                order = ("idle", "flood") if block % 2 == 0 else ("flood", "idle")
                for what in order:
                    if what == "idle":
                        idle += prober.probe(args.block_s)
                        continue
                    flood = Flood(server, bench, SCENARIOS[name], args.depth, args.batch)
                    try:
                        t0, cpu0 = time.perf_counter(), server.cpu_s()
                        flooded += prober.probe(args.block_s)
                        flood_cpu_s += server.cpu_s() - cpu0
                        flood_s += time.perf_counter() - t0
                    finally:
                        got = flood.stop()
                    floods += got
                    # from each flooder's first batch to its last answer; they run side by side
                    flood_elapsed_s += max(f["elapsed_s"] for f in got)
    finally:
        gc.enable()
    elements = sum(f["elements"] for f in floods)
    errors = sum(f["errors"] for f in floods)
    if errors:
        raise AssertionError(f"{errors} of {elements} flooded requests answered with an error")
    return {
        "idle": _summary(idle),
        "flood": _summary(flooded),
        "flood_clients": len(SCENARIOS[name]),
        "batch": args.batch,
        "flood_elements_per_s": elements / flood_elapsed_s,
        "flood_mb_per_s": sum(f["bytes"] for f in floods) / flood_elapsed_s / 1e6,
        "gateway_cpu_util_flooded": flood_cpu_s / flood_s,
        "floods": floods,
        "background_cores": load.background_cores,
        "idle_ms": [round(n / 1e6, 3) for n in idle],
        "flood_ms": [round(n / 1e6, 3) for n in flooded],
    }


# -- report --------------------------------------------------------------------------------------

LABELS = {
    "session_list": "1. health, 1 client flooding session.list x{batch}",
    "memory_search": "2. health, 1 client flooding memory.search x{batch}",
    "five": "3. health, 5 clients flooding both",
}


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in BENCHMARKS:
        if name not in results:
            continue
        r = results[name]
        flood, idle = r["flood"], r["idle"]
        target = name != "five"
        label = LABELS[name].format(batch=r["batch"])
        rows.append(make_row(f"{label}, p50", "ms", flood["p50_ms"], idle["p50_ms"],
                             other=r["background_cores"]))  # fmt: skip
        rows.append(make_row("   p99", "ms", flood["p99_ms"], idle["p99_ms"],
                             "< 50 ms" if target else "info",
                             flood["p99_ms"] < 50 if target else None))  # fmt: skip
        rows.append(make_row("   max", "ms", flood["max_ms"], idle["max_ms"]))
        rows.append(make_row("   flooded requests answered", "req/s", r["flood_elements_per_s"],
                             None))  # fmt: skip
        rows.append(make_row("   gateway CPU while flooded", "cores",
                             r["gateway_cpu_util_flooded"], None))  # fmt: skip
    return rows


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="health latency while other clients flood batches.")
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this (repeatable)")
    p.add_argument("--sessions", type=int, default=300, help="sessions created first")
    p.add_argument("--memories", type=int, default=5000, help="memories stored first")
    p.add_argument("--depth", type=int, default=4, help="batches each flooder keeps outstanding")
    p.add_argument(
        "--batch", type=int, default=BATCH, help="requests per batch (at most server.max_batch)"
    )
    p.add_argument("--blocks", type=int, default=4, help="idle/flood block pairs per benchmark")
    p.add_argument("--block-s", type=float, default=3.0, help="seconds per block")
    p.add_argument("--gap", type=float, default=2.0, help="ms between health round trips")
    p.add_argument("--quick", action="store_true", help="shorter blocks, to check the harness")
    p.add_argument("--no-pin", action="store_true", help="do not pin gateway and clients to CPUs")
    p.add_argument("--output", type=Path, default=HERE / "results" / "flood-latest.json")
    p.add_argument("--time-limit", type=float, default=300, help="abort the run after this long")
    # the flooding client's own options (it is this script run with --flooder)
    p.add_argument("--flooder", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--host", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--kinds", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.blocks, args.block_s, args.sessions, args.memories = 2, 1.0, 60, 1000
    return args


def main() -> int:
    args = parse_args()
    if args.flooder:
        return flooder(args)
    pin = start_runner(
        no_pin=args.no_pin,
        server_cpus={GATEWAY_CPU},
        client_cpu=CLIENT_CPU,
        time_limit=args.time_limit,
    )
    started = time.perf_counter()
    wanted = [name for name in BENCHMARKS if name in (args.only or BENCHMARKS)]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aleph-flood-bench-") as tmp:
        bench = Bench(Path(tmp), pin)
        server = bench.gateway()
        with running(server):
            say(f"populating: {args.sessions} sessions, {args.memories} memories")
            populate(server, args.sessions, args.memories)
            prober = Prober(server, args.gap / 1000)
            try:
                prober.probe(0.5)  # warm-up
                for name in wanted:
                    say(f"{name}: {args.blocks} x ({args.block_s:g} s idle + "
                        f"{args.block_s:g} s flooded)")  # fmt: skip
                    results[name] = measure(name, server, bench, prober, args)
            finally:
                prober.close()
        results["exit_code_on_sigterm"] = server.exit_code
    signal.setitimer(signal.ITIMER_REAL, 0)

    rows = build_rows(results)
    machine = machine_info(pin)
    machine["pinning"] = {"gateway_cpu": GATEWAY_CPU, "client_cpu": CLIENT_CPU} if pin else None
    report = write_report(args.output, started=started, machine=machine, settings=vars(args),
                          rows=rows, results=results, baseline="idle")  # fmt: skip
    print(machine_line(machine, ["trio", "msgspec"]))
    print(code_line(machine))
    pinning = f"gateway CPU {GATEWAY_CPU}, clients CPU {CLIENT_CPU}" if pin else "off"
    print(f"pinning: {pinning}")
    print()
    print(format_table(rows, baseline="idle"))
    print()
    print("idle: the same health round trips on the same gateway with nobody flooding, measured "
          "in blocks alternating with the flooded ones")  # fmt: skip
    print("other CPU: cores used by other processes while measuring")
    print_outcome(rows, report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
