#!/usr/bin/env python
"""Run every gateway benchmark against a bare trio-websocket baseline, in one go.

    python benchmarks/run.py            # everything, about a minute
    python benchmarks/run.py --quick    # shorter windows, for a smoke test

Each benchmark starts fresh server processes (baseline first, then the gateway), pinned to CPU 0
with ``taskset -c 0``; this process is the client and pins itself to CPU 1. The client code is the
same for both servers (``_wsclient.py``). Results are printed as a table and written to
``benchmarks/results/latest.json``.

Benchmarks:

1. ``sequential``: one authenticated connection, one ``echo`` request at a time.
2. ``pipelined``: one connection, send 200 ``echo`` requests in one write, read the 200 replies.
3. ``idle_rss``: 1000 idle authenticated connections; server VmRSS growth per connection.
4. ``broadcast``: one event to 100 subscribed connections; time from just before publish until the
   last connection has read it (server-side CLOCK_MONOTONIC stamp in the event).
5. ``startup``: ``python -m aleph_trio`` exec until a WebSocket handshake succeeds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _common import monotonic_ns, raise_nofile_limit  # noqa: E402
from _wsclient import Closed, WSClient, decode, request  # noqa: E402

SERVER_CPU = 0
CLIENT_CPU = 1
#: The baseline has no authentication: it answers ``connect`` like any other request. It is sent a
#: token of the same length as the gateway's so both servers decode the same number of bytes.
DUMMY_TOKEN = "x" * 43


# -- server processes ------------------------------------------------------------------------


class Server:
    """A benchmark server process: started, waited for, measured, stopped."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], workdir: Path, pin: bool) -> None:
        self.name = name
        self.cmd = (["taskset", "-c", str(SERVER_CPU)] if pin else []) + cmd
        self.env = env
        self.log_path = workdir / f"{name}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.token: str | None = None
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed by the child's lifetime
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self.env, bufsize=0
        )
        log.close()
        url = None
        token = None
        needs_token = self.name != "baseline"
        for line in self._lines(timeout):
            if line.startswith("ready ws://"):
                url = line.split(" ", 1)[1]
            elif " listening on ws://" in line:
                url = line.rsplit(" ", 1)[1]
            elif line.startswith("owner token: "):
                token = line.split(": ", 1)[1]
            elif line.startswith("token "):
                token = line.split(" ", 1)[1]
            if url is not None and (token is not None or not needs_token):
                break
        assert url is not None
        host_port = url.removeprefix("ws://").rstrip("/")
        host, _, port = host_port.rpartition(":")
        self.host, self.port, self.token = host, int(port), token

    def _lines(self, timeout: float) -> Iterator[str]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buffered = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.name} did not start within {timeout}s: {self.log_tail()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"{self.name} exited during start-up: {self.log_tail()}")
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                yield line.decode().strip()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.exit_code = None if proc is None else proc.returncode
            return self.exit_code
        proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.exit_code = None
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.stdout is not None:
            proc.stdout.close()
        return self.exit_code

    def trigger(self, i: int) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        os.write(self.proc.stdin.fileno(), b"%d\n" % i)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_s(self) -> float:
        """User + system CPU time of the server process so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def connect(self, *, authenticate: bool = True) -> WSClient:
        client = WSClient(self.host, self.port)
        if authenticate:
            client.call(1, "connect", {"token": self.token or DUMMY_TOKEN})
        return client


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Bench:
    """Builds the server processes for one run."""

    def __init__(self, workdir: Path, pin: bool) -> None:
        self.workdir = workdir
        self.pin = pin
        self.python = sys.executable
        env = dict(os.environ)
        env.pop("ALEPH_TRIO_TOKEN", None)
        env["ALEPH_TRIO_CONFIG"] = str(workdir / "no-such-config.toml")  # defaults, not the user's
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env
        self._dirs = 0

    def data_dir(self) -> Path:
        self._dirs += 1
        path = self.workdir / f"data-{self._dirs}"
        return path

    def baseline(self) -> Server:
        cmd = [self.python, str(HERE / "baseline_server.py"), "--host", "127.0.0.1", "--port", "0"]
        return Server("baseline", cmd, self.env, self.workdir, self.pin)

    def gateway(self) -> Server:
        """``python -m aleph_trio`` as shipped, authentication on."""
        cmd = [self.python, "-m", "aleph_trio", "--host", "127.0.0.1", "--port", "0",
               "--data-dir", str(self.data_dir()), "--print-token"]
        return Server("gateway", cmd, self.env, self.workdir, self.pin)

    def gateway_embedded(self) -> Server:
        """The gateway in-process with a stdin publish trigger (for the broadcast benchmark)."""
        cmd = [self.python, str(HERE / "serve_gateway.py"), "--host", "127.0.0.1", "--port", "0",
               "--data-dir", str(self.data_dir())]
        return Server("gateway-embedded", cmd, self.env, self.workdir, self.pin)


# -- measurements ----------------------------------------------------------------------------


def _client_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _window(server: Server, work: Callable[[float], int], duration: float) -> dict[str, float]:
    """Run ``work(until)`` for ``duration`` seconds; returns the count and CPU use on both sides."""
    cpu0, ccpu0 = server.cpu_s(), _client_cpu_s()
    t0 = time.perf_counter()
    count = work(t0 + duration)
    elapsed = time.perf_counter() - t0
    cpu1, ccpu1 = server.cpu_s(), _client_cpu_s()
    return {
        "messages": count,
        "elapsed_s": elapsed,
        "msgs_per_s": count / elapsed,
        "server_cpu_util": (cpu1 - cpu0) / elapsed,
        "server_cpu_us_per_msg": (cpu1 - cpu0) / count * 1e6,
        "client_cpu_util": (ccpu1 - ccpu0) / elapsed,
    }


ECHO_PARAMS = {"text": "hello, gateway", "n": 0}


def bench_sequential(server: Server, duration: float, warmup: float) -> dict[str, Any]:
    client = server.connect()
    try:
        ids = list(range(1, 1025))
        frames = [client.frame(request(i, "echo", {**ECHO_PARAMS, "n": i})) for i in ids]
        reply = client.call(99_998, "echo", ECHO_PARAMS)
        assert reply == ECHO_PARAMS, reply
        latencies: list[int] = []

        def work(until: float, record: bool = False) -> int:
            count = 0
            send, recv, now = client.send_raw, client.recv, time.perf_counter_ns
            while True:
                for k in range(1024):
                    t = now()
                    send(frames[k])
                    doc = decode(recv())
                    if record:
                        latencies.append(now() - t)
                    if doc["id"] != ids[k]:
                        raise AssertionError(f"unexpected reply {doc!r}")
                    count += 1
                    if not count & 63 and time.perf_counter() >= until:
                        return count

        work(time.perf_counter() + warmup)
        result = _window(server, lambda until: work(until, record=True), duration)
        result["rtt_p50_us"] = _percentile(latencies, 0.5) / 1000
        result["rtt_p99_us"] = _percentile(latencies, 0.99) / 1000
        return result
    finally:
        client.close()


def bench_pipelined(server: Server, depth: int, duration: float, warmup: float) -> dict[str, Any]:
    client = server.connect()
    try:
        batch = b"".join(client.frame(request(i, "echo", {**ECHO_PARAMS, "n": i})) for i in range(1, depth + 1))
        expected = depth * (depth + 1) // 2

        def work(until: float) -> int:
            count = 0
            send, recv = client.send_raw, client.recv
            while time.perf_counter() < until:
                send(batch)
                total = 0
                for _ in range(depth):
                    doc = decode(recv())
                    total += doc["id"]
                    if "result" not in doc:
                        raise AssertionError(f"unexpected reply {doc!r}")
                if total != expected:
                    raise AssertionError("replies do not match the requests")
                count += depth
            return count

        work(time.perf_counter() + warmup)
        result = _window(server, work, duration)
        result["depth"] = depth
        return result
    finally:
        client.close()


def bench_idle_rss(server: Server, count: int, settle: float) -> dict[str, Any]:
    warm = server.connect()
    warm.call(2, "echo", ECHO_PARAMS)
    warm.close()
    time.sleep(settle)
    before = server.rss_kib()
    clients: list[WSClient] = []
    try:
        t0 = time.perf_counter()
        for _ in range(count):
            clients.append(server.connect())
        opened_s = time.perf_counter() - t0
        time.sleep(settle)
        after = server.rss_kib()
        # every connection must still be alive and answering
        for i, client in enumerate(clients[:: max(1, count // 20)]):
            client.call(10 + i, "echo", ECHO_PARAMS)
        return {
            "connections": count,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "rss_per_conn_kib": (after - before) / count,
            "open_rate_per_s": count / opened_s,
        }
    finally:
        for client in clients:
            client.close()


def bench_broadcast(server: Server, fanout: int, iterations: int, warmup: int, gap: float) -> dict[str, Any]:
    clients: list[WSClient] = []
    epoll = select.epoll()
    try:
        for _ in range(fanout):
            client = server.connect()
            client.call(2, "events.subscribe", {"patterns": ["bench.*"]})
            client.sock.setblocking(False)
            epoll.register(client.fileno(), select.EPOLLIN)
            clients.append(client)
        by_fd = {c.fileno(): c for c in clients}
        all_fds = frozenset(by_fd)
        last_ms: list[float] = []
        first_ms: list[float] = []
        for it in range(warmup + iterations):
            server.trigger(it)
            waiting = set(all_fds)
            t_pub = None
            first = last = 0
            deadline = time.monotonic() + 10
            while waiting:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"event {it} reached {fanout - len(waiting)}/{fanout} connections")
                for fd, _ in epoll.poll(1.0):
                    try:
                        messages = by_fd[fd].poll()
                    except BlockingIOError:
                        continue
                    arrived = monotonic_ns()
                    for message in messages:
                        doc = decode(message)
                        if doc.get("method") != "event":
                            continue
                        data = doc["params"]["data"]
                        if data["i"] != it:
                            raise AssertionError(f"expected event {it}, got {data}")
                        t_pub = data["t0_ns"]
                        waiting.discard(fd)
                        first = first or arrived
                        last = arrived
            if it >= warmup:
                assert t_pub is not None
                last_ms.append((last - t_pub) / 1e6)
                first_ms.append((first - t_pub) / 1e6)
            time.sleep(gap)
        return {
            "fanout": fanout,
            "iterations": iterations,
            "all_received_median_ms": statistics.median(last_ms),
            "all_received_p99_ms": _percentile(last_ms, 0.99),
            "all_received_min_ms": min(last_ms),
            "all_received_max_ms": max(last_ms),
            "first_received_median_ms": statistics.median(first_ms),
        }
    finally:
        epoll.close()
        for client in clients:
            client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_startup(bench: Bench, kind: str, runs: int) -> dict[str, Any]:
    """Exec until the first successful TCP connect + WebSocket handshake. One warm-up run first."""
    times_ms: list[float] = []
    exit_codes: list[int | None] = []
    prefix = ["taskset", "-c", str(SERVER_CPU)] if bench.pin else []
    for run in range(runs + 1):
        port = _free_port()
        if kind == "gateway":
            cmd = [bench.python, "-m", "aleph_trio", "--host", "127.0.0.1", "--port", str(port),
                   "--data-dir", str(bench.data_dir())]  # a fresh data dir: the token is created
        else:
            cmd = [bench.python, str(HERE / "baseline_server.py"), "--host", "127.0.0.1", "--port", str(port)]
        log_path = bench.workdir / f"startup-{kind}-{run}.log"
        with open(log_path, "wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(prefix + cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log, env=bench.env)
        try:
            while True:
                try:
                    client = WSClient("127.0.0.1", port, timeout=5)
                    break
                except (ConnectionRefusedError, ConnectionResetError, Closed):
                    if proc.poll() is not None:
                        raise RuntimeError(f"{kind} exited during start-up: {log_path.read_text()[-2000:]}") from None
                    if time.perf_counter() - t0 > 15:
                        raise RuntimeError(f"{kind} did not accept a connection within 15 s") from None
                    time.sleep(0.0005)
            elapsed_ms = (time.perf_counter() - t0) * 1000
            client.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code: int | None = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
        if run:  # run 0 warms the page cache and bytecode caches
            times_ms.append(elapsed_ms)
            exit_codes.append(code)
    return {
        "runs": runs,
        "median_ms": statistics.median(times_ms),
        "max_ms": max(times_ms),
        "min_ms": min(times_ms),
        "all_ms": [round(t, 1) for t in times_ms],
        "exit_codes": sorted(set(exit_codes), key=lambda c: (c is None, c or 0)),
    }


# -- machine and reporting -------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info(pin: bool) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        if dirty:
            commit += "+dirty"
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {d: _version(d) for d in ("aleph_trio", "trio", "trio-websocket", "wsproto", "msgspec", "attrs")},
        "commit": commit,
        "pinning": {"server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU} if pin else None,
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def _row(name: str, unit: str, gateway: float, baseline: float | None, *, higher_is_better: bool,
         target: float | None = None, absolute_max: float | None = None) -> dict[str, Any]:
    ratio = gateway / baseline if baseline else None
    if absolute_max is not None:
        ok: bool | None = gateway < absolute_max
        target_text = f"< {absolute_max:g} {unit}"
    elif target is not None and ratio is not None:
        ok = ratio >= target if higher_is_better else ratio <= target
        target_text = f"{'>=' if higher_is_better else '<='} {target:g}x"
    else:
        ok, target_text = None, "info"
    return {"benchmark": name, "unit": unit, "gateway": gateway, "baseline": baseline, "ratio": ratio,
            "target": target_text, "pass": ok}


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    s = results.get("sequential")
    if s:
        rows.append(_row("1. sequential echo", "msg/s", s["gateway"]["msgs_per_s"], s["baseline"]["msgs_per_s"],
                         higher_is_better=True, target=0.9))
        rows.append(_row("   server CPU per echo", "us", s["gateway"]["server_cpu_us_per_msg"],
                         s["baseline"]["server_cpu_us_per_msg"], higher_is_better=False))
        rows.append(_row("   round trip p99", "us", s["gateway"]["rtt_p99_us"], s["baseline"]["rtt_p99_us"],
                         higher_is_better=False))
    p = results.get("pipelined")
    if p:
        depth = p["gateway"]["depth"]
        rows.append(_row(f"2. pipelined echo x{depth}", "msg/s", p["gateway"]["msgs_per_s"],
                         p["baseline"]["msgs_per_s"], higher_is_better=True, target=0.8))
        rows.append(_row("   server CPU per echo", "us", p["gateway"]["server_cpu_us_per_msg"],
                         p["baseline"]["server_cpu_us_per_msg"], higher_is_better=False))
    r = results.get("idle_rss")
    if r:
        n = r["gateway"]["connections"]
        rows.append(_row(f"3. RSS per idle conn (x{n})", "KiB", r["gateway"]["rss_per_conn_kib"],
                         r["baseline"]["rss_per_conn_kib"], higher_is_better=False, target=2.0))
        rows.append(_row("   connect+auth rate", "conn/s", r["gateway"]["open_rate_per_s"],
                         r["baseline"]["open_rate_per_s"], higher_is_better=True))
    b = results.get("broadcast")
    if b:
        n = b["gateway"]["fanout"]
        rows.append(_row(f"4. broadcast to {n}, median", "ms", b["gateway"]["all_received_median_ms"],
                         b["baseline"]["all_received_median_ms"], higher_is_better=False, target=2.0))
        rows.append(_row(f"   broadcast to {n}, p99", "ms", b["gateway"]["all_received_p99_ms"],
                         b["baseline"]["all_received_p99_ms"], higher_is_better=False, target=2.0))
    st = results.get("startup")
    if st:
        rows.append(_row("5. startup, median", "ms", st["gateway"]["median_ms"], st["baseline"]["median_ms"],
                         higher_is_better=False, absolute_max=1000))
        rows.append(_row("   startup, max", "ms", st["gateway"]["max_ms"], st["baseline"]["max_ms"],
                         higher_is_better=False, absolute_max=1000))
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ["benchmark", "unit", "aleph_trio", "baseline", "ratio", "target", "result"]
    lines = [header]
    for row in rows:
        verdict = {True: "PASS", False: "FAIL", None: ""}[row["pass"]]
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        lines.append([row["benchmark"], row["unit"], _fmt(row["gateway"]), _fmt(row["baseline"]), ratio,
                      row["target"], verdict])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        cells = [c.ljust(w) if j < 2 or j >= 5 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description="Gateway benchmarks against a trio-websocket baseline.")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per throughput run")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each")
    parser.add_argument("--depth", type=int, default=200, help="pipelined requests per round")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections for the RSS benchmark")
    parser.add_argument("--fanout", type=int, default=100, help="subscribed connections for broadcast")
    parser.add_argument("--broadcasts", type=int, default=500, help="measured broadcasts")
    parser.add_argument("--startups", type=int, default=10, help="measured start-ups per server")
    parser.add_argument("--only", action="append", choices=["sequential", "pipelined", "idle_rss", "broadcast", "startup"],
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="short windows, for checking the harness")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--time-limit", type=float, default=600, help="abort the whole run after this long")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.broadcasts, args.startups = 1.0, 0.2, 100, 3

    raise_nofile_limit(max(65536, 2 * args.idle + 1024))
    pin = not args.no_pin and shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2
    if pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    else:
        print("note: not pinning server and client to separate CPUs", file=sys.stderr)

    def timed_out(signum: int, frame: object) -> None:
        raise TimeoutError(f"benchmark run exceeded {args.time_limit:g} s")

    signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, args.time_limit)

    wanted = args.only or ["sequential", "pipelined", "idle_rss", "broadcast", "startup"]
    results: dict[str, Any] = {}
    exit_codes: dict[str, list[int | None]] = {"baseline": [], "gateway": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aleph-bench-") as tmp:
        bench = Bench(Path(tmp), pin)

        def both(name: str, measure: Callable[[Server], dict[str, Any]], gateway: Callable[[], Server]) -> None:
            results[name] = {}
            for label, make in (("baseline", bench.baseline), ("gateway", gateway)):
                print(f"  {name}: {label} ...", file=sys.stderr, flush=True)
                server = make()
                with running(server):
                    results[name][label] = measure(server)
                exit_codes[label].append(server.exit_code)

        if "sequential" in wanted:
            both("sequential", lambda s: bench_sequential(s, args.duration, args.warmup), bench.gateway)
        if "pipelined" in wanted:
            both("pipelined", lambda s: bench_pipelined(s, args.depth, args.duration, args.warmup), bench.gateway)
        if "idle_rss" in wanted:
            both("idle_rss", lambda s: bench_idle_rss(s, args.idle, settle=0.5), bench.gateway)
        if "broadcast" in wanted:
            both("broadcast", lambda s: bench_broadcast(s, args.fanout, args.broadcasts, 20, 0.002),
                 bench.gateway_embedded)
        if "startup" in wanted:
            print("  startup: baseline, gateway ...", file=sys.stderr, flush=True)
            results["startup"] = {
                "baseline": bench_startup(bench, "baseline", args.startups),
                "gateway": bench_startup(bench, "gateway", args.startups),
            }
    signal.setitimer(signal.ITIMER_REAL, 0)

    rows = build_rows(results)
    machine = machine_info(pin)
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "machine": machine,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "server_exit_codes_on_sigterm": {k: sorted({c for c in v}, key=lambda c: (c is None, c or 0))
                                         for k, v in exit_codes.items()},
        "summary": rows,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    m = machine
    print(f"machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['python']}, trio {m['versions']['trio']}, "
          f"trio-websocket {m['versions']['trio-websocket']}, kernel {m['kernel']}")
    print(f"pinning: server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}" if pin else "pinning: off")
    print()
    print(format_table(rows))
    print()
    print(f"wall time {report['wall_time_s']} s; written to {args.output}")
    failed = [r["benchmark"].strip() for r in rows if r["pass"] is False]
    if failed:
        print("targets missed: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
