#!/usr/bin/env python
"""What a run costs the gateway as its session grows: 10, 1,000 and 100,000 messages of history,
against an earlier commit, in one go.

    python benchmarks/history.py                 # 3 x 50 runs per size and side, about 2 minutes
    python benchmarks/history.py --quick         # 10 runs, to check the harness
    python benchmarks/history.py --baseline-ref main --runs 50

Two gateways run side by side, each ``python -m aleph_trio`` on its own data directory: one from
this checkout's ``src/``, the other from the ``src/`` of ``--baseline-ref`` (a ``git archive``;
by default the last commit before prompts read only what fits). Before a gateway starts, its data
directory is filled through that side's own store (``open_sqlite_store`` and the store's own
append, many appends a transaction): for the 10-message case one session per run, for the
1,000- and 100,000-message cases one session each that all their runs share (each run adds two
messages, so both long sessions change alike).
The history is a conversation of fixed seed: user messages of 20-400 characters, answers of
100-1,200, and every fifth exchange a tool call whose result has 2-8 kB, about 160 tokens a
message on average.

Each run is ``agent.run {message: "echo: <400 characters>", session_key, model:
"builtin/offline"}`` over one authenticated connection, one at a time, its events read until the
terminal one; the model answers with the same 400 characters (one word, so one event). The built-in
model has a 32,768-token window (4,096 kept for its answer), so a full prompt holds roughly the
newest 170 of these messages. Automatic compaction is off (``sessions.compact_at_tokens`` very
high): it would rewrite the long histories after the first run. The gateway's CPU time
(``/proc/PID/stat``) over the runs of one size, divided by their number, is the figure; the sides
take turns size by size (B A, A B, ...), ``--blocks`` times. The gateways are pinned to CPU 0
with ``taskset``, this process to CPU 1. The table is printed and written, with every raw figure,
to ``benchmarks/results/history-latest.json`` (the table alone to ``history-latest.md``).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _common import say, start_runner  # noqa: E402
from _table import (  # noqa: E402
    format_table,
    machine_line,
    make_row,
    print_outcome,
    write_report,
)
from _wsclient import WSClient, decode, request  # noqa: E402
from memory import baseline_src, src_digest  # noqa: E402
from run import Bench, Server, machine_info  # noqa: E402
from runs import ProcsLoad  # noqa: E402

GATEWAY_CPU = 0
CLIENT_CPU = 1
SIZES = (10, 1_000, 100_000)
MODEL = "builtin/offline"
#: The last commit before a prompt read only the newest messages that fit.
DEFAULT_BASELINE = "9f0af02"
TERMINAL = ("agent.completed", "agent.error", "agent.cancelled")
#: What each run asks: the built-in model answers with the same 400 characters, so the two
#: messages a run adds are like the history's own. One word: the model streams words at a fixed
#: pace, and one word is one batch, so the run's own streaming stays small beside the prompt.
MESSAGE = "echo: " + ("budget-review-" * 29)[:400]
WORDS = (
    "the a of to and in is it that for on with as this be at by from or an are was not have "
    "meeting invoice deploy server budget report schedule customer ticket release database "
    "backup review contract draft calendar agenda figures quarter migration query index cache "
    "latency error retry token session message answer question summary decision owner team"
).split()


def session_key(size: int, run: int) -> str:
    """Where run ``run`` of the ``size`` case goes: the 10-message case gets a session per run,
    the longer ones one session each that all their runs share."""
    return f"agent:main:h10-{run}" if size == 10 else f"agent:main:h{size}"


def conversation(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` messages: user, answer, and every fifth exchange a tool call with its result."""

    def text(low: int, high: int) -> str:
        size = rng.randint(low, high)
        out: list[str] = []
        length = 0
        while length < size:
            word = rng.choice(WORDS)
            out.append(word)
            length += len(word) + 1
        return " ".join(out)

    messages: list[dict[str, Any]] = []
    exchange = 0
    while len(messages) < count:
        messages.append({"role": "user", "content": text(20, 400)})
        if exchange % 5 == 4:
            call_id = f"call_{exchange}"
            calls = [{"id": call_id, "name": "memory_search", "arguments": {"query": "budget"}}]
            messages.append({"role": "assistant", "content": "", "tool_calls": calls})
            messages.append({"role": "tool", "content": text(2000, 8000), "tool_call_id": call_id})
        messages.append({"role": "assistant", "content": text(100, 1200)})
        exchange += 1
    return messages[:count]


def populate(data_dir: Path, runs: int) -> None:
    """Fill ``data_dir`` (run with the side's own ``src/`` first on ``sys.path``)."""
    import trio

    from aleph_trio.store import open_sqlite_store
    from aleph_trio.store._sql_sessions import append_message

    rng = random.Random(20)
    plan = [(session_key(10, r), 10) for r in range(runs)]
    plan += [(session_key(1_000, 0), 1_000), (session_key(100_000, 0), 100_000)]

    data_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        async with open_sqlite_store(data_dir / "gateway.db") as store:
            for key, count in plan:
                messages = conversation(count, rng)
                for start in range(0, count, 2000):
                    batch = messages[start : start + 2000]

                    def write(conn: Any, key: str = key, batch: list[Any] = batch) -> None:
                        for m in batch:
                            calls = m.get("tool_calls")
                            append_message(
                                conn, key, "main", m["role"], m["content"],
                                tokens=max(1, (len(m["content"]) + 3) // 4), run_id=None,
                                tool_calls=calls,
                                tool_calls_json=json.dumps(calls) if calls else None,
                                tool_call_id=m.get("tool_call_id"),
                                created_at="2026-01-01T00:00:00.000Z",
                            )  # fmt: skip

                    await store._write(write)

    trio.run(main)


class Side:
    """One gateway, the code it runs and its CPU per run at each size."""

    def __init__(self, name: str, src: Path, bench: Bench, config: Path, runs: int) -> None:
        self.name = name
        self.src = src
        self.data_dir = Path(bench.data_dir())
        env = {**bench.env, "PYTHONPATH": str(src)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--populate",
                        str(self.data_dir), "--runs", str(runs)], env=env, check=True)  # fmt: skip
        say(f"{name}: history written in {time.perf_counter() - t0:.1f} s")
        cmd = [sys.executable, "-m", "aleph_trio", "--host", "127.0.0.1", "--port", "0",
               "--data-dir", str(self.data_dir), "--config", str(config)]  # fmt: skip
        self.server = Server(f"gateway-{name}", cmd, bench)
        self.server.env = env
        self.client: WSClient | None = None
        self.cpu_ms: dict[int, list[float]] = {size: [] for size in SIZES}
        self.wall_ms: dict[int, list[float]] = {size: [] for size in SIZES}
        self.done: dict[int, int] = dict.fromkeys(SIZES, 0)
        self.rid = 1000

    def start(self) -> None:
        self.server.start()
        self.client = self.server.connect()

    def block(self, size: int, runs: int) -> None:
        """``runs`` runs on ``size`` messages of history; their CPU per run is one sample."""
        t0, cpu0 = time.perf_counter(), self.server.cpu_s()
        for _ in range(runs):
            self.one_run(session_key(size, self.done[size]))
            self.done[size] += 1
        self.cpu_ms[size].append(1000 * (self.server.cpu_s() - cpu0) / runs)
        self.wall_ms[size].append(1000 * (time.perf_counter() - t0) / runs)

    def one_run(self, key: str) -> None:
        assert self.client is not None
        self.rid += 1
        params = {"message": MESSAGE, "model": MODEL, "session_key": key}
        self.client.send(request(self.rid, "agent.run", params))
        while True:
            doc = decode(self.client.recv())
            event = doc.get("params")
            if event is None:
                if doc.get("id") == self.rid and "error" in doc:
                    raise AssertionError(f"agent.run failed: {doc['error']}")
                continue
            if event["topic"] in TERMINAL:
                if event["topic"] != "agent.completed":
                    raise AssertionError(f"the run ended with {event['topic']}: {event['data']}")
                return

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()

    def figures(self) -> dict[str, Any]:
        cpu = {size: statistics.median(v) for size, v in self.cpu_ms.items()}
        return {
            "src": str(self.src),
            "cpu_ms_per_run": cpu,
            "wall_ms_per_run": {size: statistics.median(v) for size, v in self.wall_ms.items()},
            "samples_cpu_ms": self.cpu_ms,
            "ratio_to_10": {size: cpu[size] / cpu[10] for size in SIZES},
            "runs": self.done,
        }


def build_rows(after: dict[str, Any], before: dict[str, Any], other: float) -> list[dict[str, Any]]:
    a, b = after["cpu_ms_per_run"], before["cpu_ms_per_run"]
    flat = a[100_000] / a[1_000]
    rows = [make_row(f"1. gateway CPU per run, {SIZES[0]} messages", "ms", a[10], b[10],
                     other=other)]  # fmt: skip
    rows += [make_row(f"   gateway CPU per run, {size:,} messages", "ms", a[size], b[size])
             for size in SIZES[1:]]  # fmt: skip
    rows += [
        make_row("   1,000 messages / 10", "x", a[1_000] / a[10], b[1_000] / b[10]),
        make_row("   100,000 messages / 10", "x", a[100_000] / a[10], b[100_000] / b[10]),
        make_row("   100,000 messages / 1,000", "x", flat, b[100_000] / b[1_000],
                 "<= 1.25x", flat <= 1.25),
        make_row("   wall time per run, 100,000 messages", "ms",
                 after["wall_ms_per_run"][100_000], before["wall_ms_per_run"][100_000]),
    ]  # fmt: skip
    return rows


def config_file(path: Path) -> Path:
    path.write_text("[sessions]\ncompact_at_tokens = 1000000000000\n")
    return path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50, help="runs per size, side and block")
    p.add_argument("--blocks", type=int, default=3, help="turns each side takes at each size")
    p.add_argument("--baseline-ref", default=DEFAULT_BASELINE, help="git ref of the other side")
    p.add_argument("--quick", action="store_true", help="10 runs a block, to check the harness")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--output", type=Path, default=HERE / "results" / "history-latest.json")
    p.add_argument("--time-limit", type=float, default=900, help="abort the run after this long")
    p.add_argument("--populate", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.runs = 10
    return args


def main() -> int:
    args = parse_args()
    if args.populate is not None:
        populate(args.populate, args.runs * args.blocks)
        return 0
    pin = start_runner(no_pin=args.no_pin, server_cpus={GATEWAY_CPU}, client_cpu=CLIENT_CPU,
                       time_limit=args.time_limit)  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aleph-history-bench-") as tmp:
        work = Path(tmp)
        bench = Bench(work, pin)
        config = config_file(work / "config.toml")
        old_src = baseline_src(args.baseline_ref, work / "baseline")
        old_digest = src_digest(old_src)
        total = args.runs * args.blocks
        before = Side(f"before-{args.baseline_ref}", old_src, bench, config, args.runs)
        after = Side("after", REPO / "src", bench, config, args.runs)
        sides = [before, after]
        try:
            for side in sides:
                side.start()
            turn = 0
            with ProcsLoad(*(s.server for s in sides)) as load:
                for _ in range(args.blocks):
                    for size in SIZES:
                        for side in sides if turn % 2 == 0 else sides[::-1]:
                            side.block(size, args.runs)
                        turn += 1
                        say(f"{size:,} messages: before {before.cpu_ms[size][-1]:.1f} ms, "
                            f"after {after.cpu_ms[size][-1]:.1f} ms of CPU per run")  # fmt: skip
        finally:
            for side in sides:
                side.stop()
    signal.setitimer(signal.ITIMER_REAL, 0)
    assert all(side.done[size] == total for side in sides for size in SIZES)
    results = {"after": after.figures(), "before": before.figures()}
    rows = build_rows(results["after"], results["before"], load.background_cores)
    machine = machine_info(pin)
    machine["baseline"] = {"ref": args.baseline_ref, "src_sha256": old_digest}
    report = write_report(args.output, started=started, machine=machine, settings=vars(args),
                          rows=rows, results=results, baseline="before")  # fmt: skip
    print(machine_line(machine, ["trio", "msgspec"]))
    old = machine["baseline"]
    print(f"code: commit {machine['commit']}, src sha256 {machine['src_sha256']}; "
          f"before: {old['ref']}, src sha256 {old['src_sha256']}")  # fmt: skip
    print()
    print(format_table(rows, baseline="before"))
    print()
    print_outcome(rows, report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
