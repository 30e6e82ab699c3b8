#!/usr/bin/env python
"""``GET /health`` over one HTTP keep-alive connection: requests per second on one core.

    python benchmarks/health.py [--seconds 5] [--depth 32]

The gateway (``serve_gateway.py``, default config) runs pinned to CPU 0 with ``taskset``; this
process is the client on CPU 1, a blocking socket sending ``--depth`` pipelined requests per
write and reading their answers (``sequential``: one at a time; ``16 conns``: sixteen
keep-alive connections with one request in flight each). Two figures per mode: requests per
wall-clock second, and requests per second of the gateway's own CPU time (read from
``/proc/<pid>/stat``), which is what one core can serve whatever else the machine is doing.
The same client measures ``baseline_http.py``, a bare Trio loop answering every request head
with a fixed response, in the same run: the floor of any Trio server on this machine. The
target is 10,000 requests per second of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
TARGET_PER_CORE = 10_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_answers(sock: socket.socket, buffer: bytearray, count: int) -> None:
    """Read ``count`` whole responses (head + content-length body) from ``sock``."""
    done = 0
    while done < count:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).lower()
            at = head.index(b"content-length:") + len(b"content-length:")
            length = int(head[at : head.index(b"\r\n", at) if b"\r\n" in head[at:] else None])
            total = end + 4 + length
            if len(buffer) >= total:
                assert buffer.startswith(b"HTTP/1.1 200"), bytes(buffer[:40])
                del buffer[:total]
                done += 1
                continue
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        buffer += chunk


def measure(port: int, pid: int, seconds: float, depth: int) -> dict[str, float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    batch = REQUEST * depth
    for _ in range(200):  # warm up
        sock.sendall(batch)
        read_answers(sock, buffer, depth)
    requests = 0
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sock.sendall(batch)
        read_answers(sock, buffer, depth)
        requests += depth
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    sock.close()
    return {"depth": depth, **rates(requests, wall, cpu)}


def measure_concurrent(port: int, pid: int, seconds: float, connections: int) -> dict[str, float]:
    """``connections`` keep-alive connections, each with one request in flight at a time."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    buffers = {s.fileno(): bytearray() for s in socks}
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        selector.register(sock, selectors.EVENT_READ)
    requests = 0
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for sock in socks:
        sock.sendall(REQUEST)
    while time.perf_counter() - t0 < seconds:
        for key, _ in selector.select(1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            buffer = buffers[sock.fileno()]
            buffer += sock.recv(65536)
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                continue
            head = bytes(buffer[:end]).lower()
            at = head.index(b"content-length:") + len(b"content-length:")
            length = int(head[at:].split(b"\r\n", 1)[0])
            if len(buffer) < end + 4 + length:
                continue
            del buffer[: end + 4 + length]
            requests += 1
            sock.sendall(REQUEST)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    for sock in socks:
        sock.close()
    return {"connections": connections, **rates(requests, wall, cpu)}


def rates(requests: int, wall: float, cpu: float) -> dict[str, float]:
    """Requests per wall-clock second and per second of the server's CPU time."""
    return {
        "requests": requests,
        "per_wall_second": requests / wall,
        "per_core_second": requests / cpu if cpu else float("inf"),
        "server_cpu_share": cpu / wall,
    }


def run_server(command: list[str], seconds: float, depth: int) -> dict[str, dict[str, float]]:
    taskset = shutil.which("taskset")
    if taskset:
        command = [taskset, "-c", "0", *command]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        while line and not line.startswith("ready "):
            line = server.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        return {
            "pipelined": measure(port, server.pid, seconds, depth),
            "sequential": measure(port, server.pid, seconds, 1),
            "16 conns": measure_concurrent(port, server.pid, seconds, 16),
        }
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--depth", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    data_dir = tempfile.mkdtemp(prefix="bench-http-")
    try:
        gateway = run_server(
            [sys.executable, str(HERE / "serve_gateway.py"), "--data-dir", data_dir],
            args.seconds,
            args.depth,
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    baseline = run_server(
        [sys.executable, str(HERE / "baseline_http.py")], args.seconds, args.depth
    )
    print(f"{'':>10}  {'gateway req/s per core-second':>30}  {'bare Trio floor':>16}  ratio")
    for mode, row in gateway.items():
        floor = baseline[mode]["per_core_second"]
        print(
            f"{mode:>10}  {row['per_core_second']:>30,.0f}  {floor:>16,.0f}  "
            f"{row['per_core_second'] / floor:.2f}x   "
            f"({row['per_wall_second']:,.0f} req/s wall, {row['server_cpu_share']:.0%} busy)"
        )
    met = gateway["pipelined"]["per_core_second"] >= TARGET_PER_CORE
    print(f"target {TARGET_PER_CORE:,} req/s on one core (keep-alive, pipelined): ", end="")
    print("met" if met else "MISSED")
    out = HERE / "results" / "health.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"gateway": gateway, "baseline": baseline}, indent=2) + "\n")


if __name__ == "__main__":
    main()
