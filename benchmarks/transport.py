#!/usr/bin/env python
"""CPU time per network read of a streamed answer: httpx's default transport (httpcore) against
``LeanTransport``, over loopback.

    python benchmarks/transport.py                  # 20,000 pieces, 3 rounds: about 50 s
    python benchmarks/transport.py --pieces 2000 --rounds 1   # to check the harness

The server is this script with ``--serve``, in its own process: plain blocking sockets, HTTP/1.1
keep-alive, and to every request one chunked answer of ``--pieces`` server-sent events of about
60 bytes, one chunk per event. After each chunk it sleeps ``--gap-us`` microseconds, longer than
either client needs per read, so that every piece arrives as a read of its own (the way an LLM
answer streams). This process is the client: ``httpx.AsyncClient()`` and
``httpx.AsyncClient(transport=LeanTransport(watchdog=...))`` in turn (the watchdog in this
script's nursery), each reading the whole answer with ``response.aiter_bytes()`` like the
gateway does, and as the floor a bare trio loop (``wait_readable`` + ``recv``) reading the same
answer without any HTTP. Only the client's CPU time is measured (``time.process_time``, user +
system, from sending the request until the answer is read); one warm-up request per reader
first. With two CPUs or more the server runs on
CPU 0 and the client on CPU 1.

The figures are CPU microseconds per piece, which is per read: the lean transport yields once
per read and the bare loop counts its reads, so their counts show that the pacing held.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"tok%06d"}}]}\n\n'


def serve(gap_s: float) -> None:
    """Answer every request on every connection with one paced chunked stream (a thread per
    connection: each client keeps its own connection alive)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(f"ready {listener.getsockname()[1]}", flush=True)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=answer, args=(conn, gap_s), daemon=True).start()


def answer(conn: socket.socket, gap_s: float) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                data = conn.recv(65536)
                if not data:
                    return
                buffered += data
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            stream(conn, int(head.split(b" ", 2)[1].rsplit(b"/", 1)[1]), gap_s)


def stream(conn: socket.socket, pieces: int, gap_s: float) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    for i in range(pieces):
        event = EVENT % i
        conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        time.sleep(gap_s)
    conn.sendall(b"0\r\n\r\n")


Reader = Callable[[str], Awaitable[tuple[float, int, int]]]


def httpx_reader(client: httpx.AsyncClient) -> Reader:
    async def read(url: str) -> tuple[float, int, int]:
        """CPU seconds, pieces and body bytes of one answer."""
        started = time.process_time()
        pieces = size = 0
        async with client.stream("GET", url) as response:
            response.raise_for_status()
            async for piece in response.aiter_bytes():
                pieces += 1
                size += len(piece)
        return time.process_time() - started, pieces, size

    return read


async def bare_read(url: str) -> tuple[float, int, int]:
    """The floor: the same answer read with trio.lowlevel.wait_readable and socket.recv, no HTTP
    at all (so ``size`` counts the whole chunked wire format, not the body)."""
    host, port, path = url.removeprefix("http://").replace(":", "/", 1).split("/", 2)
    started = time.process_time()
    reads = size = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.setblocking(False)
        sock.send(b"GET /%s HTTP/1.1\r\nhost: %s\r\n\r\n" % (path.encode(), host.encode()))
        tail = b""
        while not tail.endswith(b"\r\n0\r\n\r\n"):
            await trio.lowlevel.wait_readable(sock)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server left mid-answer")
            reads += 1
            size += len(data)
            tail = (tail + data)[-7:]
    return time.process_time() - started, reads, size


async def measure(port: int, pieces: int, rounds: int) -> dict[str, list[tuple[float, int]]]:
    from aleph_trio.providers._read_watchdog import open_watchdog
    from aleph_trio.providers._transport import LeanTransport

    expected = len(b"".join(EVENT % i for i in range(pieces)))
    async with open_watchdog() as watchdog:
        default = httpx.AsyncClient(timeout=30)
        lean = httpx.AsyncClient(timeout=30, transport=LeanTransport(watchdog=watchdog))
        async with default, lean:
            return await measure_with(port, pieces, rounds, expected, default, lean)


async def measure_with(
    port: int,
    pieces: int,
    rounds: int,
    expected: int,
    default: httpx.AsyncClient,
    lean: httpx.AsyncClient,
) -> dict[str, list[tuple[float, int]]]:
    readers = {
        "httpx default (httpcore)": httpx_reader(default),
        "LeanTransport": httpx_reader(lean),
        "bare trio socket loop": bare_read,
    }
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in readers}
    for read in readers.values():
        await read(f"http://127.0.0.1:{port}/100")
    for _ in range(rounds):
        for name, read in readers.items():
            cpu, seen, size = await read(f"http://127.0.0.1:{port}/{pieces}")
            assert read is bare_read or size == expected, (name, size, expected)
            results[name].append((cpu, seen))
            print(
                f"  {name}: {cpu / pieces * 1e6:.1f} us/piece, {seen} reads/pieces seen",
                file=sys.stderr,
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap-us", type=float, default=200.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.gap_us / 1e6)
        return

    # This checkout's sources, whichever copy of the package is installed.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    pin = len(os.sched_getaffinity(0)) >= 2 and {0, 1} <= os.sched_getaffinity(0)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--gap-us", str(args.gap_us)],
        stdout=subprocess.PIPE,
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pin else None,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        if not line.startswith("ready "):
            raise SystemExit(f"the server did not start: {line!r}")
        if pin:
            os.sched_setaffinity(0, {1})
        results = trio.run(measure, int(line.split()[1]), args.pieces, args.rounds)
    finally:
        server.terminate()
        server.wait()

    per_read = {
        name: statistics.median(cpu for cpu, _ in runs) / args.pieces * 1e6
        for name, runs in results.items()
    }
    print(f"{args.pieces} pieces per answer, {args.rounds} round(s), median CPU time per read:")
    for name, micros in per_read.items():
        seen = statistics.median(n for _, n in results[name])
        print(f"  {name:26} {micros:7.2f} us  ({seen:.0f} pieces/reads seen)")
    default, lean, floor = per_read.values()
    print(f"  ratio default / lean: {default / lean:.2f}x")
    print(
        f"  above the bare loop: default {default - floor:.2f} us, lean {lean - floor:.2f} us"
        f" ({(default - floor) / max(lean - floor, 0.01):.1f}x)"
    )


if __name__ == "__main__":
    main()
