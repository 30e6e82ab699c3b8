#!/usr/bin/env python
"""Benchmarks of the cron scheduler with 10,000 jobs loaded.

    python benchmarks/cron.py            # all three: about 2 minutes (the jitter window is 90 s)
    python benchmarks/cron.py --quick    # 2,000 jobs and a 15 s window, to check the harness

1. ``startup``: a data directory holding 10,000 jobs (seeded mix of cron expressions in several
   time zones, macros and intervals, none due for the next hours). A fresh process opens the
   gateway on it and then starts a second ``CronService`` on the same gateway, timing
   ``nursery.start(service.serve)``: failing interrupted cron runs, reading every job, building
   the schedule. Baseline: the plainest start a scheduler could have, a sqlite3 ``SELECT`` of
   the same jobs and ``cronsim`` computing each one's next fire time, in a loop.
2. ``memory``: VmRSS (``/proc/self/status``) of that process once the gateway is open, minus the
   same for a process opening a gateway with no jobs (each the median of three processes).
3. ``jitter``: the gateway embedded in this process on the 10,000-job directory plus 60 jobs
   ``every 1m`` whose anchors are one second apart, so one job fires every second, each an agent
   run of the built-in model. Jitter = the wall time an in-process client receives
   ``cron.triggered`` minus the fire time it names. Baseline: a bare Trio task calling
   ``trio.sleep_until`` for the same one-per-second wall times; jitter = wake-up - target.

The table is printed and written, with every raw figure, to ``benchmarks/results/cron-latest.json``
(the table alone to ``cron-latest.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import trio  # noqa: E402
from _table import format_table, make_row, write_report  # noqa: E402
from run import _percentile, machine_info  # noqa: E402

from aleph_trio import Config, open_gateway  # noqa: E402
from aleph_trio.cron import CronService, parse_schedule  # noqa: E402
from aleph_trio.kernel import format_ts, parse_ts, utc_now  # noqa: E402
from aleph_trio.store import CronJob, open_sqlite_store  # noqa: E402

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
FIRE_JOBS = 60


def _schedules(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return (
            f"{rng.randrange(60)} {rng.randrange(24)} * * {rng.choice(['*', 'mon-fri', '1,3,5'])}"
        )
    if kind < 0.75:
        return f"{rng.randrange(60)} {rng.randrange(24)} {rng.randrange(1, 29)} * *"
    if kind < 0.85:
        return rng.choice(["@daily", "@weekly", "@monthly", "@yearly"])
    return f"every {rng.randrange(2, 30)}d"


def make_jobs(count: int, now: dt.datetime, seed: int = 1) -> list[CronJob]:
    """``count`` jobs none of which is due within two hours of ``now`` (the jitter window must see
    only the one-per-second jobs)."""
    rng = random.Random(seed)
    jobs: list[CronJob] = []
    created_at = format_ts(now - dt.timedelta(days=1))
    anchor = parse_ts(created_at)
    while len(jobs) < count:
        text, zone = _schedules(rng), rng.choice(ZONES)
        schedule = parse_schedule(text, zone)
        next_at = schedule.next_after(now, anchor=anchor)
        if next_at is None or next_at - now < dt.timedelta(hours=2):
            continue
        i = len(jobs)
        jobs.append(
            CronJob(
                f"job_bench_{i:05d}", f"report {i}", text, zone, "main",
                f"echo: summarise the tickets of queue {i} and post the digest",
                f"agent:main:cron:job_bench_{i:05d}", True, "run_once", "skip", created_at,
                next_run_at=format_ts(next_at),
            )
        )  # fmt: skip
    return jobs


def fire_jobs(now: dt.datetime) -> list[CronJob]:
    """60 ``every 1m`` jobs, anchors one second apart: one of them fires every second."""
    base = now.replace(microsecond=0) - dt.timedelta(minutes=1)
    jobs = []
    for i in range(FIRE_JOBS):
        created_at = format_ts(base + dt.timedelta(seconds=i))
        anchor = parse_ts(created_at)
        next_at = parse_schedule("every 1m").next_after(
            now + dt.timedelta(seconds=3), anchor=anchor
        )
        assert next_at is not None
        jobs.append(
            CronJob(
                f"job_tick_{i:02d}", f"tick {i}", "every 1m", "UTC", "main", "echo: tick",
                f"agent:main:cron:job_tick_{i:02d}", True, "run_once", "skip", created_at,
                next_run_at=format_ts(next_at),
            )
        )  # fmt: skip
    return jobs


async def write_jobs(data_dir: Path, jobs: list[CronJob]) -> None:
    async with open_sqlite_store(data_dir / "gateway.db") as store, trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(store.insert_cron_job, job)  # group-committed, 256 a transaction


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


# -- 1 and 2: start-up and memory, in a fresh process each ----------------------------------


async def _child(data_dir: str) -> dict[str, Any]:
    started = time.perf_counter()
    async with open_gateway(Config(), data_dir=data_dir, watch_config=False) as gateway:
        opened_s = time.perf_counter() - started
        rss = rss_kib()
        second = CronService(
            store=gateway.store,
            bus=gateway.bus,
            runs=gateway.runs,
            models=gateway.models,
            settings=gateway.settings.current,
        )
        async with trio.open_nursery() as nursery:
            t0 = time.perf_counter()
            await nursery.start(second.serve)
            cron_start_s = time.perf_counter() - t0
            jobs = second.statistics().jobs
            nursery.cancel_scope.cancel()
    return {"open_s": opened_s, "cron_start_s": cron_start_s, "rss_kib": rss, "jobs": jobs}


def run_child(data_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def baseline_start(db: Path) -> float:
    """A plain loop: read the jobs with sqlite3 and compute each next fire time with cronsim."""
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

    macros = {"@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
              "@yearly": "0 0 1 1 *"}  # fmt: skip
    t0 = time.perf_counter()
    conn = sqlite3.connect(db)
    now = dt.datetime.now(dt.UTC)
    table = {}
    for job_id, schedule, zone, created_at in conn.execute(
        "SELECT job_id, schedule, timezone, created_at FROM cron_jobs"
    ):
        if schedule.startswith("every"):
            days = dt.timedelta(days=int(schedule[6:-1]))
            anchor = dt.datetime.fromisoformat(created_at)
            table[job_id] = anchor + ((now - anchor) // days + 1) * days
        else:
            expr = macros.get(schedule, schedule)
            table[job_id] = next(CronSim(expr, now.astimezone(ZoneInfo(zone))))
    conn.close()
    assert table
    return time.perf_counter() - t0


# -- 3: firing jitter -----------------------------------------------------------------------


async def gateway_jitter(data_dir: Path, seconds: float) -> list[float]:
    jitter: list[float] = []
    async with open_gateway(Config(), data_dir=data_dir, watch_config=False) as gw:
        async with gw.connect() as client:
            await client.subscribe(["cron.triggered"])
            with trio.move_on_after(seconds):
                while True:
                    event = await client.next_event()
                    received = time.time()
                    scheduled = parse_ts(event.data["scheduled_for"]).timestamp()
                    jitter.append(received - scheduled)
    return jitter


async def baseline_jitter(seconds: float) -> list[float]:
    jitter: list[float] = []
    target = float(int(time.time()) + 2)
    end = time.time() + seconds
    while target < end:
        await trio.sleep_until(trio.current_time() + (target - time.time()))
        jitter.append(time.time() - target)
        target += 1.0
    return jitter


def summary(values: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values]
    return {
        "count": len(ms),
        "p50_ms": _percentile(ms, 0.5),
        "p99_ms": _percentile(ms, 0.99),
        "max_ms": max(ms),
        "min_ms": min(ms),
    }


# -- the table ------------------------------------------------------------------------------


def row(label: str, unit: str, gateway: float | None, baseline: float | None,
        limit: float | None = None) -> dict[str, Any]:  # fmt: skip
    ok = None if limit is None or gateway is None else gateway <= limit
    target = "info" if limit is None else f"<= {limit:,g} {unit}"
    return make_row(label, unit, gateway, baseline, target, ok)


def build_rows(results: dict[str, Any], jobs: int) -> list[dict[str, Any]]:
    rows = []
    if "startup" in results:
        s = results["startup"]
        rows += [
            row(f"1. scheduler start, {jobs:,} jobs", "ms", s["cron_start_ms"],
                s["baseline_ms"], 1000),
            row("   open_gateway, with the jobs", "ms", s["open_ms"], None),
            row("   open_gateway, no jobs", "ms", s["open_empty_ms"], None),
            row(f"2. memory for {jobs:,} jobs", "MB", s["extra_mb"], None, 50),
        ]  # fmt: skip
    if "jitter" in results:
        g, b = results["jitter"]["gateway"], results["jitter"]["baseline"]
        rows += [
            row("3. firing jitter, 1 fire/s, p99", "ms", g["p99_ms"], b["p99_ms"], 50),
            row("   firing jitter, p50", "ms", g["p50_ms"], b["p50_ms"]),
            row("   firing jitter, max", "ms", g["max_ms"], b["max_ms"]),
        ]
    return rows


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cron scheduler benchmarks with many jobs loaded.")
    p.add_argument("--only", action="append", choices=("startup", "jitter"))
    p.add_argument("--jobs", type=int, default=10_000, help="jobs loaded")
    p.add_argument("--processes", type=int, default=3, help="start-up processes per data set")
    p.add_argument("--seconds", type=float, default=90, help="jitter window (one fire a second)")
    p.add_argument("--quick", action="store_true", help="2,000 jobs, one process, 15 s window")
    p.add_argument("--output", type=Path, default=HERE / "results" / "cron-latest.json")
    p.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.jobs, args.processes, args.seconds = 2000, 1, 15
    args.wanted = args.only or ("startup", "jitter")
    return args


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(trio.run(_child, args.child)))
        return 0

    def say(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aleph-cron-bench-") as tmp:
        loaded, empty = Path(tmp) / "loaded", Path(tmp) / "empty"
        now = utc_now()
        say(f"writing {args.jobs:,} jobs")
        loaded.mkdir()
        trio.run(write_jobs, loaded, make_jobs(args.jobs, now))
        if "startup" in args.wanted:
            say(f"start-up and memory: {args.processes} processes per data set")
            full = [run_child(loaded) for _ in range(args.processes)]
            bare = [run_child(empty) for _ in range(args.processes)]
            assert all(r["jobs"] == args.jobs for r in full)
            base = [baseline_start(loaded / "gateway.db") for _ in range(args.processes)]
            med = statistics.median
            results["startup"] = {
                "cron_start_ms": med(r["cron_start_s"] for r in full) * 1000,
                "open_ms": med(r["open_s"] for r in full) * 1000,
                "open_empty_ms": med(r["open_s"] for r in bare) * 1000,
                "extra_mb": (med(r["rss_kib"] for r in full) - med(r["rss_kib"] for r in bare))
                / 1024,
                "baseline_ms": med(base) * 1000,
                "processes": {"loaded": full, "empty": bare, "baseline_s": base},
            }
        if "jitter" in args.wanted:
            say(f"jitter: {args.seconds:g} s of one firing a second, then the bare Trio task")
            trio.run(write_jobs, loaded, fire_jobs(utc_now()))
            gateway = trio.run(gateway_jitter, loaded, args.seconds)
            baseline = trio.run(baseline_jitter, args.seconds)
            results["jitter"] = {"gateway": summary(gateway), "baseline": summary(baseline),
                                 "raw_s": {"gateway": gateway, "baseline": baseline}}  # fmt: skip

    rows = build_rows(results, args.jobs)
    report = write_report(args.output, started=started, machine=machine_info(False),
                          settings=vars(args), rows=rows, results=results,
                          baseline="plain loop")  # fmt: skip
    m = report["machine"]
    print(f"machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['python']}, commit {m['commit']}")
    print()
    print(format_table(rows, baseline="plain loop"))
    print()
    print("plain loop: start-up = sqlite3 SELECT + cronsim next fire time per job; "
          "jitter = a bare Trio task on trio.sleep_until")  # fmt: skip
    print(f"wall time {report['wall_time_s']} s; results in {args.output}")
    failed = [r["benchmark"].strip() for r in rows if r["pass"] is False]
    if failed:
        print("targets missed: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
