#!/usr/bin/env python
"""Gateway memory under runs that stream large answers, against an earlier commit, in one go.

    python benchmarks/memory.py                  # 400 runs of 900 kB on each side
    python benchmarks/memory.py --quick          # 100 runs, to check the harness
    python benchmarks/memory.py --baseline-ref main --runs 200

Two gateways run side by side, each ``python -m aleph_trio`` with a config file whose
``[providers.local]`` (kind ``openai``) points at ``provider_stub.py``; everything else is the
default. One runs this checkout's ``src/``, the other the ``src/`` of ``--baseline-ref`` (a
``git archive`` of it, by default the last commit before the byte bounds). Each gets runs from
one authenticated connection, one at a time, each on a new session (so every prompt is the same
size); the stub answers each with ``--chunks`` chunks of ``--chunk-bytes`` bytes of text (900 x
1,000 = 900 kB) as fast as it can. The client reads every event of a run and checks that the
text adds up. After every ``--sample-every`` runs the gateway's VmRSS is read from
``/proc/PID/status``; the two sides take turns block by block (B A, A B, ...). The gateways are
pinned to CPU 0 with ``taskset``, this process to CPU 1.

Reported for each side: RSS at the start (connected, no run yet), its peak over the samples, at
the end, the growth per run over all runs and over the second half (least squares; flat when
memory is bounded), and how many runs completed. Targets: this checkout grows by at most twice
the default ``events.replay_buffer_bytes`` (the ring, and as much again for everything else:
caches, a run's text while it streams, the allocator's slack), and over the second half by at
most 2% of what the baseline grows per run. The table is printed and written, with every sample, to
``benchmarks/results/memory-latest.json`` (the table alone to ``memory-latest.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import signal
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
from _wsclient import Closed, WSClient, decode, request  # noqa: E402
from run import Bench, Server, machine_info  # noqa: E402
from runs import ProcsLoad, StubServer, spec_text  # noqa: E402

GATEWAY_CPU = 0
CLIENT_CPU = 1
MODEL = "local/stub"
#: The last commit before the replay ring, the send queue and a run's text were bounded by bytes.
DEFAULT_BASELINE = "1a42fa3"
TERMINAL = ("agent.completed", "agent.error", "agent.cancelled")


class Side:
    """One gateway, the code it runs and what was measured of it."""

    def __init__(self, name: str, src: Path, bench: Bench, config: Path) -> None:
        self.name = name
        self.src = src
        cmd = [sys.executable, "-m", "aleph_trio", "--host", "127.0.0.1", "--port", "0",
               "--data-dir", bench.data_dir(), "--config", str(config)]  # fmt: skip
        self.server = Server(f"gateway-{name}", cmd, bench)
        self.server.env = {**bench.env, "PYTHONPATH": str(src)}
        self.client: WSClient | None = None
        self.samples: list[tuple[int, int]] = []  #: (runs done, VmRSS KiB)
        self.runs = 0
        self.completed = 0
        self.cut_off = 0
        self.text_bytes = 0
        self.elapsed_s = 0.0
        self.cpu_s = 0.0
        self.bounded = False
        self.events = 0

    def start(self) -> None:
        self.server.start()
        self.client = self.server.connect()
        config = self.client.call(2, "config.get")["config"]
        self.bounded = "replay_buffer_bytes" in config["events"]
        time.sleep(0.5)
        self.samples.append((0, self.server.rss_kib()))

    def block(self, runs: int, chunks: int, chunk_bytes: int) -> None:
        t0, cpu0 = time.perf_counter(), self.server.cpu_s()
        for _ in range(runs):
            self.one_run(chunks, chunk_bytes)
        self.elapsed_s += time.perf_counter() - t0
        self.cpu_s += self.server.cpu_s() - cpu0
        self.samples.append((self.runs, self.server.rss_kib()))

    def one_run(self, chunks: int, chunk_bytes: int) -> None:
        if self.client is None:
            self.client = self.server.connect()
        client = self.client
        self.runs += 1
        rid = 1000 + self.runs
        params = {"message": spec_text(chunks=chunks, chunk_bytes=chunk_bytes), "model": MODEL,
                  "session_key": f"agent:main:memory-{self.runs}"}  # fmt: skip
        client.send(request(rid, "agent.run", params))
        streamed = 0
        try:
            while True:
                doc = decode(client.recv())
                event = doc.get("params")
                if event is None:
                    if doc.get("id") == rid and "error" in doc:
                        raise AssertionError(f"agent.run failed: {doc['error']}")
                    continue
                topic, data = event["topic"], event["data"]
                if topic == "stream.chunk":
                    streamed += len(data["content"])
                elif topic == "stream.end" and len(data["content"]) != streamed:
                    raise AssertionError("stream.end does not hold the streamed text")
                elif topic in TERMINAL:
                    if topic != "agent.completed":
                        raise AssertionError(f"the run ended with {topic}: {data}")
                    break
        except Closed:  # a slow consumer: counted, and the next run connects again
            self.cut_off += 1
            client.close()
            self.client = None
            return
        if streamed != chunks * chunk_bytes:
            raise AssertionError(f"read {streamed} of {chunks * chunk_bytes} bytes of text")
        self.completed += 1
        self.text_bytes += streamed

    def note_events(self) -> None:
        """How many events the gateway has published (its head ``seq``)."""
        if self.client is None:
            self.client = self.server.connect()
        reply = self.client.call(3, "events.subscribe", {"patterns": ["bench.none"]})
        self.events = int(reply["seq"])

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()

    def figures(self) -> dict[str, Any]:
        rss = [kib for _, kib in self.samples]
        start, end = rss[0], rss[-1]
        half = [(n, kib) for n, kib in self.samples if n >= self.runs // 2]
        return {
            "bounded_code": self.bounded,
            "src": str(self.src),
            "samples": self.samples,
            "rss_start_mib": start / 1024,
            "rss_peak_mib": max(rss) / 1024,
            "rss_end_mib": end / 1024,
            "growth_per_run_kib": (end - start) / max(1, self.runs),
            "growth_per_run_second_half_kib": _slope(half),
            "runs": self.runs,
            "completed_pct": 100 * self.completed / max(1, self.runs),
            "cut_off": self.cut_off,
            "text_mb": self.text_bytes / 1e6,
            "elapsed_s": self.elapsed_s,
            "gateway_cpu_ms_per_run": 1000 * self.cpu_s / max(1, self.runs),
            "events_per_run": self.events / max(1, self.runs),
        }


def _slope(points: list[tuple[int, int]]) -> float | None:
    """Least-squares KiB per run through ``points``."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def baseline_src(ref: str, into: Path) -> Path:
    """``src/`` of ``ref``, from ``git archive``."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def src_digest(src: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(path.relative_to(src.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


#: The default ``events.replay_buffer_bytes``: the most the ring may hold on its own.
RING_MIB = 64


def build_rows(after: dict[str, Any], before: dict[str, Any], other: float) -> list[dict[str, Any]]:
    runs = after["runs"]
    grown = after["rss_end_mib"] - after["rss_start_mib"]
    flat = after["growth_per_run_second_half_kib"]
    flat_before = before["growth_per_run_second_half_kib"]
    flat_ok = None if flat is None or not flat_before else flat / flat_before <= 0.02
    return [
        make_row(f"1. RSS after {runs} runs of {after['text_mb'] / max(1, runs):.2f} MB",
                 "MiB", after["rss_end_mib"], before["rss_end_mib"], other=other),
        make_row("   RSS at start", "MiB", after["rss_start_mib"], before["rss_start_mib"]),
        make_row("   RSS peak", "MiB", after["rss_peak_mib"], before["rss_peak_mib"]),
        make_row("   RSS growth, start to end", "MiB", grown,
                 before["rss_end_mib"] - before["rss_start_mib"],
                 f"<= {2 * RING_MIB} MiB", grown <= 2 * RING_MIB),
        make_row("   growth per run, all runs", "KiB", after["growth_per_run_kib"],
                 before["growth_per_run_kib"]),
        make_row(f"   growth per run, runs {runs // 2}-{runs}", "KiB", flat, flat_before,
                 "<= 0.02x", flat_ok),
        make_row("   runs completed", "%", after["completed_pct"], before["completed_pct"],
                 "= 100%", after["completed_pct"] == 100),
        make_row("   gateway CPU per run", "ms", after["gateway_cpu_ms_per_run"],
                 before["gateway_cpu_ms_per_run"]),
        make_row("   events published per run", "events", after["events_per_run"],
                 before["events_per_run"]),
    ]  # fmt: skip


def config_file(path: Path, stub: Server) -> Path:
    path.write_text(
        "[providers.local]\n"
        'kind = "openai"\n'
        f'base_url = "http://127.0.0.1:{stub.port}/v1"\n'
        'models = ["stub"]\n'
    )
    return path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=400, help="runs on each side")
    p.add_argument("--sample-every", type=int, default=50, help="runs between RSS samples")
    p.add_argument("--chunks", type=int, default=900, help="chunks in each answer")
    p.add_argument("--chunk-bytes", type=int, default=1000, help="bytes of text in each chunk")
    p.add_argument("--baseline-ref", default=DEFAULT_BASELINE, help="git ref of the other side")
    p.add_argument("--quick", action="store_true", help="100 runs, to check the harness")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--output", type=Path, default=HERE / "results" / "memory-latest.json")
    p.add_argument("--time-limit", type=float, default=900, help="abort the run after this long")
    args = p.parse_args()
    if args.quick:
        args.runs, args.sample_every = 100, 25
    return args


def main() -> int:
    args = parse_args()
    pin = start_runner(no_pin=args.no_pin, server_cpus={GATEWAY_CPU}, client_cpu=CLIENT_CPU,
                       time_limit=args.time_limit)  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aleph-memory-bench-") as tmp:
        work = Path(tmp)
        bench = Bench(work, pin)
        cmd = [sys.executable, str(HERE / "provider_stub.py")]
        stub = StubServer("stub", cmd, bench)
        stub.cmd = (["taskset", "-c", str(CLIENT_CPU)] if pin else []) + cmd
        stub.start()
        config = config_file(work / "config.toml", stub)
        after = Side("after", REPO / "src", bench, config)
        old_src = baseline_src(args.baseline_ref, work / "baseline")
        before = Side(f"before-{args.baseline_ref}", old_src, bench, config)
        old_digest = src_digest(old_src)
        sides = [before, after]
        try:
            for side in sides:
                side.start()
            if before.bounded or not after.bounded:
                raise SystemExit("the baseline must be code without the byte bounds, and this "
                                 "checkout code with them")  # fmt: skip
            blocks = -(-args.runs // args.sample_every)
            with ProcsLoad(stub, *(s.server for s in sides)) as load:
                for b in range(blocks):
                    runs = min(args.sample_every, args.runs - b * args.sample_every)
                    for side in sides if b % 2 == 0 else sides[::-1]:
                        side.block(runs, args.chunks, args.chunk_bytes)
                    say(f"{after.runs} runs: before {before.samples[-1][1] / 1024:.0f} MiB, "
                        f"after {after.samples[-1][1] / 1024:.0f} MiB")  # fmt: skip
            for side in sides:
                side.note_events()
        finally:
            for side in sides:
                side.stop()
            stub.stop()
    signal.setitimer(signal.ITIMER_REAL, 0)
    other = load.background_cores
    results = {"after": after.figures(), "before": before.figures()}
    rows = build_rows(results["after"], results["before"], other)
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
    print("VmRSS (MiB) after n runs:")
    print("  runs    " + "  ".join(f"{n:>6}" for n, _ in after.samples))
    for side in (before, after):
        print(f"  {side.name[:6]:<6}  " + "  ".join(f"{k / 1024:6.0f}" for _, k in side.samples))
    print_outcome(rows, report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
