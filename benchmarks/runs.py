#!/usr/bin/env python
"""Agent runs through the gateway, against the same provider stream read directly, in one go.

    python benchmarks/runs.py            # all three: about 12 s on a quiet machine
    python benchmarks/runs.py --quick    # short streams, to check the harness
    python benchmarks/runs.py --only relay --only cancel
    python benchmarks/runs.py --profile latency   # the gateway embedded, under cProfile

The provider is ``provider_stub.py``, an OpenAI-compatible SSE server in its own process. The
gateway is ``python -m aleph_trio`` with a config file whose ``[providers.local]`` (kind
``openai``) points at the stub (``runs.max_concurrent = 64``, everything else default), a fresh
data directory per benchmark, authentication on. The gateway is pinned to CPU 0 with ``taskset``,
this process (the client) to CPU 1, the stub to CPU 2 when there is one and else to CPU 1 with the
client. The baseline ("direct") is the same stub stream read by this process: a raw-socket
HTTP/1.1 reader that splits the ``data:`` lines and decodes each chunk with msgspec, as the
WebSocket client (``_wsclient.py``) decodes each event.

1. ``relay``: the stub streams 10,000 chunks as fast as it can. Chunks per second received by
   the client, from sending the request to reading the last chunk: through the gateway
   (``agent.run``, one ``stream.chunk`` event per chunk) and directly, in alternating
   repetitions (D G G D D G G D); the median of each.
2. ``latency``: 50 concurrent runs on 50 sessions, each started by its own connection, which
   gets the run's events without subscribing. The stub sends each run 200 chunks 5 ms apart
   (the 50 streams evenly out of phase), each stamped with CLOCK_MONOTONIC just before it is
   written; the client notes when it has read each chunk. The same 50 streams read directly by
   50 concurrent readers give the baseline, in alternating blocks (D G G D). The gateway's share
   is the difference of the two p99s.
3. ``cancel``: a run on an endless stream (a chunk every 20 ms); once its first chunk is read,
   an ``agent.status`` round trip (for scale), then ``agent.cancel``, timed until both the
   ``agent.cancelled`` event and the reply have been read; 100 times.

Chunks look like OpenAI's own (``id``, ``object``, ``created``, ``model``,
``system_fingerprint``, ``logprobs``: about 230 bytes each); ``--shape minimal`` sends only the
fields the gateway reads (about 80 bytes). The table is printed and written, with every raw
figure, to ``benchmarks/results/runs-latest.json`` (the table alone to ``runs-latest.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import hashlib
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import monotonic_ns, raise_nofile_limit, say, start_runner  # noqa: E402
from _table import (  # noqa: E402
    code_line,
    format_table,
    machine_line,
    make_row,
    measure_selected,
    print_outcome,
    write_report,
)
from _wsclient import Closed, WSClient, decode, request  # noqa: E402
from run import (  # noqa: E402
    Bench,
    Load,
    Server,
    _own_cpu_s,
    _percentile,
    machine_info,
    wait_for_quiet,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

BENCHMARKS = ("relay", "latency", "cancel")
GATEWAY_CPU = 0
CLIENT_CPU = 1
MODEL = "local/stub"
BASELINE = "direct"
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


# -- processes ---------------------------------------------------------------------------------


class StubServer(Server):
    """``provider_stub.py``: prints ``ready http://HOST:PORT``."""

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=self.env, bufsize=0,
            )  # fmt: skip
        for line in self._lines(timeout):
            if line.startswith("ready http://"):
                host, _, port = line.split("//", 1)[1].rpartition(":")
                self.host, self.port = host, int(port)
                return


class Procs:
    """What one run shares: scratch directory, pinning, the stub, and how to start gateways."""

    def __init__(
        self,
        workdir: Path,
        pin: bool,
        profile_dir: Path | None,
        src: Path | None = None,
        cpus: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        self.bench = Bench(workdir, pin)
        if src is not None:  # the gateway imports aleph_trio from there
            self.bench.env["PYTHONPATH"] = str(src)
        self.workdir = workdir
        self.pin = pin
        self.stub_cpu = 2 if pin and 2 in cpus else CLIENT_CPU
        self.profile_dir = profile_dir
        self.stub: StubServer | None = None

    def start_stub(self) -> StubServer:
        cmd = [sys.executable, str(HERE / "provider_stub.py")]
        stub = StubServer("stub", cmd, self.bench)
        stub.cmd = (["taskset", "-c", str(self.stub_cpu)] if self.pin else []) + cmd
        stub.start()
        self.stub = stub
        return stub

    def config_file(self) -> Path:
        assert self.stub is not None
        path = self.workdir / "config.toml"
        path.write_text(
            "[providers.local]\n"
            'kind = "openai"\n'
            f'base_url = "http://127.0.0.1:{self.stub.port}/v1"\n'
            'models = ["stub"]\n'
            "[runs]\n"
            "max_concurrent = 64\n"
        )
        return path

    @contextlib.contextmanager
    def gateway(self, name: str) -> Iterator[Server]:
        """A fresh gateway (as shipped, or embedded under cProfile with ``--profile``)."""
        config = str(self.config_file())
        data_dir = self.bench.data_dir()
        if self.profile_dir is None:
            cmd = [sys.executable, "-m", "aleph_trio", "--host", "127.0.0.1", "--port", "0",
                   "--data-dir", data_dir, "--config", config]  # fmt: skip
        else:
            out = self.profile_dir / f"runs-profile-{name}.prof"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", data_dir,
                   "--config", config, "--profile-out", str(out)]  # fmt: skip
        server = Server(f"gateway-{name}", cmd, self.bench)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    def close(self) -> None:
        if self.stub is not None:
            self.stub.stop()


class ProcsLoad(Load):
    """CPU used by other processes than this one, the stub and the gateway (see ``run.Load``)."""

    def __init__(self, *servers: Server) -> None:
        super().__init__(None)
        self.servers = servers

    def _ours(self) -> float:
        return super()._ours() + sum(s.cpu_s() for s in self.servers)


def profiling(gateway: Server, on: bool) -> None:
    """Switch the embedded gateway's profiler (only under ``--profile``)."""
    if gateway.name.startswith("gateway") and "--profile-out" in gateway.cmd:
        gateway.trigger(1 if on else 0)


# -- reading the stub directly ---------------------------------------------------------------


def spec_text(**spec: Any) -> str:
    """The run's message: what the stub is to stream (see ``provider_stub.py``)."""
    return _encode_json(spec)


def open_direct(stub: Server, spec: str) -> socket.socket:
    """Connect to the stub and send the request the gateway's provider would send."""
    body = _encode_json({
        "model": "stub",
        "messages": [{"role": "user", "content": spec}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }).encode()  # fmt: skip
    sock = socket.create_connection((stub.host, stub.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s:%d\r\naccept: text/event-stream\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (stub.host.encode(), stub.port, len(body), body)
    )
    return sock


class SSEReader:
    """The ``data:`` payloads of a close-delimited SSE response, as they arrive."""

    def __init__(self) -> None:
        self.buf = b""
        self.in_head = True

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buf + data
        if self.in_head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return []
            if b" 200 " not in buf[: buf.find(b"\r\n")]:
                raise RuntimeError(f"the stub answered {buf[:80]!r}")
            buf = buf[end + 4 :]
            self.in_head = False
        events = buf.split(b"\n\n")
        self.buf = events.pop()
        return [e[6:] for e in events if e.startswith(b"data: ")]


def content_of(payload: bytes) -> str | None:
    """The text of one SSE chunk (``None`` for the finish and usage chunks)."""
    doc = decode(payload)
    for choice in doc["choices"]:
        content = choice["delta"].get("content")
        if content:
            return str(content)
    return None


# -- 1. relay throughput ---------------------------------------------------------------------


def relay_direct(stub: Server, chunks: int, shape: str) -> dict[str, Any]:
    clock = time.perf_counter_ns
    cpu0 = _own_cpu_s()
    t0 = clock()
    sock = open_direct(stub, spec_text(chunks=chunks, shape=shape))
    reader, count, first, last, done = SSEReader(), 0, 0, 0, False
    with sock:
        while not done:
            data = sock.recv(262144)
            if not data:
                break
            for payload in reader.feed(data):
                if payload == b"[DONE]":
                    done = True
                    break
                content = content_of(payload)
                if content is not None:
                    if content != f"c{count} ":
                        raise AssertionError(f"chunk {count} read as {content!r}")
                    count += 1
                    last = clock()
                    first = first or last
    if count != chunks or not done:
        raise AssertionError(f"read {count} of {chunks} chunks directly (done: {done})")
    return _relay_figures(chunks, t0, first, last, _own_cpu_s() - cpu0, None)


def relay_gateway(
    client: WSClient, gateway: Server, chunks: int, shape: str, rep: int
) -> dict[str, Any]:
    """One run of ``chunks`` chunks; ``{"cut_off": ...}`` if the gateway closed the connection."""
    clock = time.perf_counter_ns
    rid = 100 + rep
    params = {"message": spec_text(chunks=chunks, shape=shape), "model": MODEL,
              "session_key": f"agent:main:relay-{rep}"}  # fmt: skip
    frame = client.frame(request(rid, "agent.run", params))
    recv = client.recv
    gw0, cpu0 = gateway.cpu_s(), _own_cpu_s()
    t0 = clock()
    client.send_raw(frame)
    count, first, last, events = 0, 0, 0, 0
    try:
        while True:
            doc = decode(recv())
            event = doc.get("params")
            if event is None:
                if doc.get("id") == rid and "error" in doc:
                    raise AssertionError(f"agent.run failed: {doc['error']}")
                continue
            topic = event["topic"]
            if topic == "stream.chunk":
                # Chunks decoded from one provider read arrive as one event: count the pieces.
                data = event["data"]
                if data["index"] != events:
                    raise AssertionError(f"event {events} arrived with index {data['index']}")
                events += 1
                for piece in data["content"].split():
                    if piece != f"c{count}":
                        raise AssertionError(f"chunk {count} arrived as {piece!r}")
                    count += 1
                last = clock()
                first = first or last
            elif topic == "agent.completed":
                break
            elif topic in ("agent.error", "agent.cancelled"):
                raise AssertionError(f"the run ended with {topic}: {event['data']}")
    except Closed as exc:
        return {"cut_off": str(exc), "chunks_read": count}
    gw1, cpu1 = gateway.cpu_s(), _own_cpu_s()
    if count != chunks:
        raise AssertionError(f"read {count} of {chunks} chunks through the gateway")
    return _relay_figures(chunks, t0, first, last, cpu1 - cpu0, gw1 - gw0)


def _relay_figures(
    chunks: int, t0: int, first: int, last: int, client_cpu: float, server_cpu: float | None
) -> dict[str, Any]:
    elapsed = (last - t0) / 1e9
    return {
        "chunks_per_s": chunks / elapsed,
        "elapsed_s": elapsed,
        "first_chunk_ms": (first - t0) / 1e6,
        "streaming_chunks_per_s": (chunks - 1) / ((last - first) / 1e9),
        "client_cpu_util": client_cpu / elapsed,
        "gateway_cpu_s": server_cpu,
        "gateway_cpu_us_per_chunk": None if server_cpu is None else server_cpu / chunks * 1e6,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def bench_relay(args: argparse.Namespace, procs: Procs) -> dict[str, Any]:
    stub = procs.stub
    assert stub is not None
    shape = args.shape
    reps: dict[str, list[dict[str, Any]]] = {"gateway": [], "baseline": []}
    with procs.gateway("relay") as gateway:
        client = gateway.connect()
        try:
            relay_direct(stub, args.chunks, shape)  # warm-up: page cache, code, run manager
            if "cut_off" in relay_gateway(client, gateway, args.chunks, shape, 0):
                client.close()
                client = gateway.connect()
            gc.collect()
            before = wait_for_quiet(args.quiet, 5)
            profiling(gateway, True)
            with ProcsLoad(gateway, stub) as load:
                for i in range(2 * args.reps):
                    # D G G D D G G D ...: each side goes first in every other pair
                    label = ("baseline", "gateway", "gateway", "baseline")[i % 4]
                    gc.disable()
                    try:
                        if label == "gateway":
                            got = relay_gateway(client, gateway, args.chunks, shape, i + 1)
                        else:
                            got = relay_direct(stub, args.chunks, shape)
                    finally:
                        gc.enable()
                    reps[label].append(got)
                    if "cut_off" in got:  # closed as a slow consumer: go on with a new one
                        client.close()
                        client = gateway.connect()
            profiling(gateway, False)
        finally:
            client.close()
    out: dict[str, Any] = {}
    for label, runs in reps.items():
        done = [r for r in runs if "cut_off" not in r]
        out[label] = {
            "chunks_per_s": _median(done, "chunks_per_s"),
            "chunks_per_s_reps": [round(r["chunks_per_s"]) for r in done],
            "first_chunk_ms": _median(done, "first_chunk_ms"),
            "streaming_chunks_per_s": _median(done, "streaming_chunks_per_s"),
            "client_cpu_util": _median(done, "client_cpu_util"),
            "cut_off": len(runs) - len(done),
            "reps": runs,
        }
    done = [r for r in reps["gateway"] if "cut_off" not in r]
    out["gateway"]["gateway_cpu_us_per_chunk"] = _median(done, "gateway_cpu_us_per_chunk")
    out["gateway"]["gateway_cpu_util"] = (
        statistics.median(r["gateway_cpu_s"] / r["elapsed_s"] for r in done) if done else None
    )
    out.update(chunks=args.chunks, reps=args.reps, shape=shape,
               background_cores=load.background_cores, background_cores_before=before,
               exit_code_on_sigterm=gateway.exit_code)  # fmt: skip
    return out


# -- 2. chunk latency under 50 concurrent runs ------------------------------------------------


class _Streams:
    """Concurrent streams read through epoll; records (arrival - stamp) of every chunk."""

    def __init__(self, streams: int, chunks: int, edge: int = 10) -> None:
        self.epoll = select.epoll()
        self.latencies: list[int] = []
        self.middle: list[int] = []  # chunks edge .. chunks - edge - 1 of each stream
        self.counts = [0] * streams
        self.first_stamp = [0] * streams
        self.done = [False] * streams
        self.errors: list[str] = []
        self.chunks = chunks
        self.edge = edge
        self.first_arrival = 0
        self.last_arrival = 0
        self.finished = 0
        self.on_first: Callable[[], None] | None = None

    def chunk(self, i: int, content: str, arrived: int) -> None:
        """One event's content: one or more ``<n>:<stamp>;`` pieces (the gateway sends pieces
        decoded from one provider read as one event)."""
        for piece in content.split(";"):
            if piece:
                self._piece(i, piece, arrived)

    def _piece(self, i: int, piece: str, arrived: int) -> None:
        k, _, stamp = piece.partition(":")
        n = self.counts[i]
        if int(k) != n:
            raise AssertionError(f"stream {i}: chunk {k} arrived as number {n}")
        sent = int(stamp)
        latency = arrived - sent
        self.latencies.append(latency)
        if self.edge <= n < self.chunks - self.edge:
            self.middle.append(latency)
        if not n:
            self.first_stamp[i] = sent
            if not self.first_arrival:
                self.first_arrival = arrived
                if self.on_first is not None:
                    self.on_first()
        self.last_arrival = arrived
        self.counts[i] = n + 1

    def wait(self, readers: dict[int, Callable[[int], None]], timeout: float) -> None:
        """Poll until every stream is done (or ``timeout``); ``readers[fd](fd)`` reads."""
        deadline = time.monotonic() + timeout
        while not all(self.done):
            if time.monotonic() > deadline:
                left = sum(1 for d in self.done if not d)
                raise RuntimeError(f"{left} streams had not finished after {timeout:g} s")
            for fd, _ in self.epoll.poll(0.5):
                readers[fd](fd)
        self.finished = monotonic_ns()

    def close(self) -> None:
        self.epoll.close()


def latency_direct(stub: Server, specs: list[str], chunks: int, timeout: float) -> _Streams:
    streams = _Streams(len(specs), chunks)
    socks = [open_direct(stub, spec) for spec in specs]
    parsers = [SSEReader() for _ in socks]
    index = {s.fileno(): i for i, s in enumerate(socks)}
    now = monotonic_ns

    def read(fd: int) -> None:
        i = index[fd]
        try:
            data = socks[i].recv(262144)
        except BlockingIOError:
            return
        arrived = now()
        if not data:
            if not streams.done[i]:
                streams.errors.append(f"stream {i} closed before [DONE]")
                streams.done[i] = True
            streams.epoll.unregister(fd)
            return
        for payload in parsers[i].feed(data):
            if payload == b"[DONE]":
                streams.done[i] = True
                continue
            content = content_of(payload)
            if content is not None:
                streams.chunk(i, content, arrived)

    try:
        for sock in socks:
            sock.setblocking(False)
            streams.epoll.register(sock.fileno(), select.EPOLLIN)
        streams.wait({fd: read for fd in index}, timeout)
    finally:
        for sock in socks:
            sock.close()
        streams.close()
    return streams


def latency_gateway(
    clients: list[WSClient],
    specs: list[str],
    chunks: int,
    block: int,
    timeout: float,
    on_first: Callable[[], None] | None = None,
) -> _Streams:
    """Run i on connection i (which started it and so gets its events, with no subscription)."""
    streams = _Streams(len(specs), chunks)
    streams.on_first = on_first
    index = {c.fileno(): i for i, c in enumerate(clients)}
    now = monotonic_ns

    def read(fd: int) -> None:
        i = index[fd]
        client = clients[i]
        try:
            data = client.sock.recv(262144)
        except BlockingIOError:
            return
        arrived = now()
        if not data:
            raise RuntimeError(f"connection {i} closed by the gateway")
        reader = client.reader
        reader.feed(data)
        for message in reader.messages():
            doc = decode(message)
            event = doc.get("params")
            if event is None:
                if "error" in doc:
                    streams.errors.append(f"run {i}: agent.run failed: {doc['error']}")
                    streams.done[i] = True
                continue
            topic = event["topic"]
            if topic == "stream.chunk":
                streams.chunk(i, event["data"]["content"], arrived)
            elif topic == "agent.completed":
                streams.done[i] = True
            elif topic in ("agent.error", "agent.cancelled"):
                streams.errors.append(f"run {i}: {topic} {event['data']}")
                streams.done[i] = True
        if reader.control:
            client._handle_control()  # a ping from the gateway, or its close

    try:
        for client in clients:
            streams.epoll.register(client.fileno(), select.EPOLLIN)
        for i, (client, spec) in enumerate(zip(clients, specs, strict=True)):
            params = {"message": spec, "model": MODEL, "session_key": f"agent:main:l{block}-{i}"}
            client.sock.setblocking(True)
            client.send(request(10 + block, "agent.run", params))
            client.sock.setblocking(False)
        streams.wait({fd: read for fd in index}, timeout)
    finally:
        streams.close()
    return streams


def bench_latency(args: argparse.Namespace, procs: Procs) -> dict[str, Any]:
    stub = procs.stub
    assert stub is not None
    n, chunks, interval_ms = args.streams, args.stream_chunks, args.interval_ms
    interval_ns = int(interval_ms * 1e6)
    timeout = chunks * interval_ms / 1000 + args.lead_ms / 1000 + 15

    def specs() -> tuple[list[str], list[int]]:
        """Stream i's chunk k is due at t0 + i * interval / n + k * interval: evenly spread."""
        t0 = monotonic_ns() + int(args.lead_ms * 1e6)
        starts = [t0 + i * interval_ns // n for i in range(n)]
        texts = [
            spec_text(chunks=chunks, interval_ms=interval_ms, t0_ns=start, shape=args.shape)
            for start in starts
        ]
        return texts, starts

    blocks: dict[str, list[dict[str, Any]]] = {"gateway": [], "baseline": []}
    pooled: dict[str, list[int]] = {"gateway": [], "baseline": []}
    middle: dict[str, list[int]] = {"gateway": [], "baseline": []}
    with procs.gateway("latency") as gateway:
        clients = [gateway.connect() for _ in range(n)]
        try:
            # warm-up: one short round each way (connections, run manager, stub timers)
            warm = [spec_text(chunks=10, interval_ms=interval_ms, shape=args.shape)] * n
            latency_direct(stub, warm, 10, timeout)
            latency_gateway(clients, warm, 10, 0, timeout)
            gc.collect()
            before = wait_for_quiet(args.quiet, 5)
            profiling(gateway, True)
            with ProcsLoad(gateway, stub) as load:
                for b in range(args.blocks):
                    label = ("baseline", "gateway", "gateway", "baseline")[b % 4]
                    texts, starts = specs()
                    cpu_at_first: list[float] = []

                    def note_cpu() -> None:
                        cpu_at_first.append(gateway.cpu_s())  # noqa: B023

                    gc.disable()
                    try:
                        if label == "gateway":
                            got = latency_gateway(clients, texts, chunks, b + 1, timeout, note_cpu)
                            streaming_cpu = gateway.cpu_s() - cpu_at_first[0]
                        else:
                            got = latency_direct(stub, texts, chunks, timeout)
                            streaming_cpu = 0.0
                    finally:
                        gc.enable()
                    streaming_s = (got.finished - got.first_arrival) / 1e9
                    late = [
                        (stamp - start) / 1e6
                        for stamp, start in zip(got.first_stamp, starts, strict=True)
                        if stamp - start > 2_000_000
                    ]
                    blocks[label].append({
                        "completed": sum(1 for c in got.counts if c == chunks) - len(got.errors),
                        "chunks": sum(got.counts),
                        "p50_ms": _percentile(got.latencies, 0.5) / 1e6,
                        "p99_ms": _percentile(got.latencies, 0.99) / 1e6,
                        "max_ms": max(got.latencies) / 1e6,
                        "middle_p99_ms": _percentile(got.middle, 0.99) / 1e6,
                        "streaming_s": streaming_s,
                        "gateway_cpu_busy": streaming_cpu / streaming_s,
                        "late_starts": len(late),
                        "latest_start_ms": max(late, default=0.0),
                        "errors": got.errors[:5],
                    })  # fmt: skip
                    pooled[label].extend(got.latencies)
                    middle[label].extend(got.middle)
                    gc.collect()
            profiling(gateway, False)
        finally:
            for client in clients:
                client.close()
    out: dict[str, Any] = {}
    for label, ns in pooled.items():
        out[label] = {
            "p50_ms": _percentile(ns, 0.5) / 1e6,
            "p99_ms": _percentile(ns, 0.99) / 1e6,
            "p999_ms": _percentile(ns, 0.999) / 1e6,
            "max_ms": max(ns) / 1e6,
            "min_ms": min(ns) / 1e6,
            "middle_p99_ms": _percentile(middle[label], 0.99) / 1e6,
            "samples": len(ns),
            "completed_pct": 100 * min(b["completed"] for b in blocks[label]) / n,
            "blocks": blocks[label],
        }
    g = out["gateway"]
    g["added_p99_ms"] = g["p99_ms"] - out["baseline"]["p99_ms"]
    g["added_p50_ms"] = g["p50_ms"] - out["baseline"]["p50_ms"]
    g["gateway_cpu_busy_pct"] = 100 * statistics.median(
        b["gateway_cpu_busy"] for b in blocks["gateway"]
    )
    out.update(streams=n, chunks=chunks, interval_ms=interval_ms, shape=args.shape,
               background_cores=load.background_cores, background_cores_before=before,
               exit_code_on_sigterm=gateway.exit_code)  # fmt: skip
    return out


# -- 3. cancel ---------------------------------------------------------------------------------


def bench_cancel(args: argparse.Namespace, procs: Procs) -> dict[str, Any]:
    stub = procs.stub
    assert stub is not None
    clock = time.perf_counter_ns
    status_ns: list[int] = []
    event_ns: list[int] = []
    reply_ns: list[int] = []
    both_ns: list[int] = []
    replies_first = 0
    chunks_seen: list[int] = []
    with procs.gateway("cancel") as gateway:
        client = gateway.connect()
        ids = iter(range(100, 10**9))

        def next_doc() -> dict[str, Any]:
            doc = decode(client.recv())
            assert isinstance(doc, dict)
            return doc

        def one(i: int, record: bool) -> None:
            nonlocal replies_first
            rid = next(ids)
            spec = spec_text(chunks=-1, interval_ms=args.cancel_interval_ms, shape=args.shape)
            params = {"message": spec, "model": MODEL, "session_key": f"agent:main:c{i}"}
            client.send(request(rid, "agent.run", params))
            run_id = None
            chunks = 0
            while run_id is None or not chunks:  # the reply, then the first chunk
                doc = next_doc()
                if doc.get("id") == rid:
                    if "error" in doc:
                        raise AssertionError(f"agent.run failed: {doc['error']}")
                    run_id = doc["result"]["run_id"]
                elif doc.get("method") == "event":
                    event = doc["params"]
                    if event["topic"] == "stream.chunk":
                        chunks += 1
                    elif event["topic"].startswith("agent.") and event["topic"] != "agent.started":
                        raise AssertionError(f"the run ended early: {event}")
            # the baseline: a plain request on the same connection while the run streams
            sid = next(ids)
            frame = client.frame(request(sid, "agent.status", {"run_id": run_id}))
            t = clock()
            client.send_raw(frame)
            while True:
                doc = next_doc()
                if doc.get("id") == sid:
                    status = clock() - t
                    if doc.get("result", {}).get("status") != "running":
                        raise AssertionError(f"agent.status answered {doc}")
                    break
                if doc.get("method") == "event" and doc["params"]["topic"] == "stream.chunk":
                    chunks += 1
            cid = next(ids)
            frame = client.frame(request(cid, "agent.cancel", {"run_id": run_id}))
            t = clock()
            client.send_raw(frame)
            got_event = got_reply = 0
            while not (got_event and got_reply):
                doc = next_doc()
                now = clock()
                if doc.get("id") == cid:
                    if doc.get("result") != {"cancelled": True, "run_id": run_id}:
                        raise AssertionError(f"agent.cancel answered {doc}")
                    got_reply = now
                elif doc.get("method") == "event":
                    event = doc["params"]
                    topic = event["topic"]
                    if topic == "stream.chunk":
                        chunks += 1
                    elif topic == "agent.cancelled" and event["data"]["run_id"] == run_id:
                        got_event = now
                    elif topic in ("agent.completed", "agent.error"):
                        raise AssertionError(f"the run ended with {topic}: {event['data']}")
            if record:
                status_ns.append(status)
                event_ns.append(got_event - t)
                reply_ns.append(got_reply - t)
                both_ns.append(max(got_event, got_reply) - t)
                replies_first += got_reply < got_event
                chunks_seen.append(chunks)

        try:
            for i in range(args.cancel_warmup):
                one(i, record=False)
            gc.collect()
            before = wait_for_quiet(args.quiet, 5)
            profiling(gateway, True)
            with ProcsLoad(gateway, stub) as load:
                gc.disable()
                try:
                    for i in range(args.cancels):
                        one(args.cancel_warmup + i, record=True)
                finally:
                    gc.enable()
            profiling(gateway, False)
        finally:
            client.close()

    def summary(ns: Sequence[int]) -> dict[str, float]:
        return {
            "p50_ms": _percentile(ns, 0.5) / 1e6,
            "p99_ms": _percentile(ns, 0.99) / 1e6,
            "max_ms": max(ns) / 1e6,
        }

    return {
        "gateway": {**summary(both_ns), "cancels": len(both_ns),
                    "event": summary(event_ns), "reply": summary(reply_ns),
                    "replies_before_event": replies_first,
                    "chunks_before_cancelled_median": statistics.median(chunks_seen)},
        "baseline": {**summary(status_ns), "what": "agent.status round trip during the stream"},
        "interval_ms": args.cancel_interval_ms,
        "background_cores": load.background_cores,
        "background_cores_before": before,
        "exit_code_on_sigterm": gateway.exit_code,
    }  # fmt: skip


# -- the embedded gateway for --profile --------------------------------------------------------


def serve_embedded(data_dir: str, config: str, profile_out: str) -> None:
    """The gateway as ``python -m aleph_trio`` runs it, with a cProfile switched from stdin."""
    import cProfile
    import logging

    import trio
    from _common import stdin_triggers

    from aleph_trio import open_gateway
    from aleph_trio.kernel import LEVELS, load_config

    loaded = load_config(Path(config))
    logging.basicConfig(
        level=LEVELS[loaded.config.logging.level],
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    profiler = cProfile.Profile()

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_gateway(loaded, data_dir=data_dir) as gateway:
                async with trio.open_nursery() as nursery:
                    bound = await nursery.start(gateway.serve, "127.0.0.1", 0)

                    async def switch() -> None:
                        async for on in stdin_triggers():
                            (profiler.enable if on else profiler.disable)()

                    nursery.start_soon(switch)
                    sys.stdout.write(f"ready ws://127.0.0.1:{bound}\ntoken {gateway.owner_token}\n")
                    sys.stdout.flush()
                    async for _ in signals:
                        break
                    nursery.cancel_scope.cancel()

    trio.run(main)
    profiler.disable()
    profiler.dump_stats(profile_out)


def print_profile(path: Path, limit: int = 30) -> None:
    import pstats

    out = path.with_suffix(".txt")
    with open(out, "w") as f:
        for key in ("tottime", "cumulative"):
            stats = pstats.Stats(str(path), stream=f)
            stats.strip_dirs().sort_stats(key).print_stats(limit)
    print(f"profile: {path} (top {limit} by tottime and cumulative in {out})")
    stats = pstats.Stats(str(path))
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)


# -- reporting -------------------------------------------------------------------------------


def _pct(util: float | None) -> float | None:
    return None if util is None else 100 * util


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(*args: Any, **kwargs: Any) -> None:
        rows.append(make_row(*args, **kwargs))

    if "relay" in results:
        r = results["relay"]
        g, b = r["gateway"], r["baseline"]
        rate, base = g["chunks_per_s"], b["chunks_per_s"]
        ok = rate is not None and base is not None and rate / base >= 0.5 and not g["cut_off"]
        row(f"1. relay {r['chunks']:,} chunks", "chunk/s", rate, base, ">= 0.5x", ok,
            r["background_cores"])  # fmt: skip
        done = 100 * (1 - g["cut_off"] / r["reps"])
        row("   runs completed (not cut off)", "%", done, 100.0, "= 100%", done == 100)
        row("   first chunk after request", "ms", g["first_chunk_ms"], b["first_chunk_ms"])
        row("   gateway CPU per chunk", "us", g["gateway_cpu_us_per_chunk"], None)
        row("   client CPU busy", "%", _pct(g["client_cpu_util"]), _pct(b["client_cpu_util"]))
    if "latency" in results:
        r = results["latency"]
        g, b = r["gateway"], r["baseline"]
        head = f"2. {r['streams']} runs x {r['chunks']} chunks"
        row(f"{head}, latency p99", "ms", g["p99_ms"], b["p99_ms"], other=r["background_cores"])
        row("   added by the gateway, p99", "ms", g["added_p99_ms"], None, "<= 5 ms",
            g["added_p99_ms"] <= 5)  # fmt: skip
        row("   latency p50", "ms", g["p50_ms"], b["p50_ms"])
        row("   latency max", "ms", g["max_ms"], b["max_ms"])
        row("   p99 without each run's first/last 10", "ms", g["middle_p99_ms"],
            b["middle_p99_ms"])  # fmt: skip
        row(
            "   gateway CPU busy, first chunk to last run done",
            "%",
            g["gateway_cpu_busy_pct"],
            None,
        )
        row("   runs completed", "%", g["completed_pct"], b["completed_pct"], "= 100%",
            g["completed_pct"] == 100)  # fmt: skip
    if "cancel" in results:
        r = results["cancel"]
        g, b = r["gateway"], r["baseline"]
        row(f"3. agent.cancel -> cancelled (x{g['cancels']}), p50", "ms", g["p50_ms"], None,
            other=r["background_cores"])  # fmt: skip
        row("   p99", "ms", g["p99_ms"], None, "<= 50 ms", g["p99_ms"] <= 50)
        row("   max", "ms", g["max_ms"], None)
        row("   agent.status round trip meanwhile, p99", "ms", b["p99_ms"], None)
    return rows


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Agent runs through the gateway against a direct read.")
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this (repeatable)")
    p.add_argument("--chunks", type=int, default=10_000, help="chunks per relay stream")
    p.add_argument("--reps", type=int, default=4, help="relay repetitions of each side")
    p.add_argument("--streams", type=int, default=50, help="concurrent runs in the latency test")
    p.add_argument("--stream-chunks", type=int, default=200, help="chunks per latency stream")
    p.add_argument("--interval-ms", type=float, default=5.0, help="pace of the latency streams")
    p.add_argument("--lead-ms", type=float, default=500, help="time to start every stream")
    p.add_argument("--blocks", type=int, default=4, help="alternating latency blocks (D G G D)")
    p.add_argument("--cancels", type=int, default=100, help="measured cancels")
    p.add_argument("--cancel-warmup", type=int, default=5, help="unmeasured cancels first")
    p.add_argument("--cancel-interval-ms", type=float, default=20, help="pace of the endless run")
    p.add_argument(
        "--shape",
        choices=("openai", "minimal"),
        default="openai",
        help="chunk JSON: OpenAI's full chunk (default) or only what is parsed",
    )
    p.add_argument("--quick", action="store_true", help="short streams, to check the harness")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--quiet", type=float, default=0.1, help="other CPU (cores) that forces a retry")
    p.add_argument(
        "--retries", type=int, default=1, help="extra attempts for a disturbed benchmark"
    )
    p.add_argument("--budget", type=float, default=90, help="no retries after this many seconds")
    p.add_argument("--profile", choices=BENCHMARKS, help="run this one on a profiled gateway")
    p.add_argument("--src", type=Path, help="run the gateway from this src/ (e.g. a git archive)")
    p.add_argument("--output", type=Path, default=HERE / "results" / "runs-latest.json")
    p.add_argument("--time-limit", type=float, default=300, help="abort the run after this long")
    p.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.chunks, args.reps, args.stream_chunks, args.blocks = 2000, 2, 50, 2
        args.cancels, args.cancel_warmup = 20, 2
    if args.profile:
        args.only = [args.profile]
    return args


def main() -> int:
    args = parse_args()
    if args.serve:
        raise_nofile_limit()
        serve_embedded(args.serve, args.config, args.profile_out)
        return 0

    cpus = os.sched_getaffinity(0)  # before this process pins itself
    pin = start_runner(
        no_pin=args.no_pin,
        server_cpus={GATEWAY_CPU},
        client_cpu=CLIENT_CPU,
        time_limit=args.time_limit,
    )
    started = time.perf_counter()
    wanted = args.only or BENCHMARKS
    results: dict[str, Any] = {}
    profile_dir = args.output.parent if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aleph-runs-bench-") as tmp:
        procs = Procs(Path(tmp), pin, profile_dir, args.src, cpus)
        try:
            procs.start_stub()
            runners: dict[str, tuple[str, Callable[[argparse.Namespace, Procs], dict[str, Any]]]]
            runners = {
                "relay": (f"relay: {args.chunks:,} chunks, {args.reps} + {args.reps} "
                          "repetitions", bench_relay),
                "latency": (f"latency: {args.streams} runs x {args.stream_chunks} chunks, "
                            f"{args.interval_ms:g} ms apart, {args.blocks} blocks",
                            bench_latency),
                "cancel": (f"cancel: {args.cancels} runs", bench_cancel),
            }  # fmt: skip
            results = measure_selected(
                [name for name in BENCHMARKS if name in wanted],
                {
                    name: (text, functools.partial(bench, args, procs))
                    for name, (text, bench) in runners.items()
                },
                retries=args.retries,
                quiet=args.quiet,
                in_budget=lambda: time.perf_counter() - started < args.budget,
                say=say,
            )
        finally:
            procs.close()
    signal.setitimer(signal.ITIMER_REAL, 0)

    rows = build_rows(results)
    machine = machine_info(pin)
    if args.src is not None:
        machine.update(commit=None, src_modified=None, src_dir=str(args.src),
                       src_sha256=src_digest(args.src))  # fmt: skip
    machine["versions"].update({d: _version(d) for d in ("httpx", "httpcore", "h11")})
    machine["pinning"] = (
        {"gateway_cpu": GATEWAY_CPU, "client_cpu": CLIENT_CPU, "stub_cpu": procs.stub_cpu}
        if pin
        else None
    )
    output = args.output
    if args.profile:
        output = output.with_name(f"runs-profile-{args.profile}.json")
    report = write_report(
        output,
        started=started,
        machine=machine,
        settings=vars(args),
        rows=rows,
        results=results,
        baseline=BASELINE,
    )

    m = machine
    print(machine_line(machine, ["trio", "httpx", "h11", "msgspec"]))
    if args.src is not None:
        print(f"code: {args.src}, src sha256 {m['src_sha256']}")
    else:
        print(code_line(machine))
    if pin:
        shared = " (shared with the client)" if procs.stub_cpu == CLIENT_CPU else ""
        print(f"pinning: gateway CPU {GATEWAY_CPU}, client CPU {CLIENT_CPU}, "
              f"stub CPU {procs.stub_cpu}{shared}")  # fmt: skip
    else:
        print("pinning: off")
    if args.profile:
        print("PROFILED: the gateway ran under cProfile; the figures are not comparable")
    print()
    print(format_table(rows, baseline=BASELINE))
    print()
    print("direct: the same stub stream read by this process over plain HTTP (no gateway)")
    print("other CPU: cores used by other processes while measuring")
    print_outcome(rows, report, output)
    if args.profile:
        print()
        print_profile(output.parent / f"runs-profile-{args.profile}.prof")
    return 0


def src_digest(src: Path) -> str:
    """The digest ``run.machine_info`` gives a checkout whose ``src/`` is ``src``."""
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(path.relative_to(src.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
