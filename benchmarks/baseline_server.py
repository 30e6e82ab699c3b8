"""Baseline: the plainest JSON-RPC echo server on trio-websocket, to compare the gateway against.

Each connection loops ``get_message`` -> JSON decode ->
``{"jsonrpc":"2.0","id":..,"result":params}`` -> ``send_message``. It uses the same JSON codec as
the gateway (msgspec) so the comparison is about the server machinery, not the codec. Every
request is answered, whatever its method, so the benchmark client sends exactly the same frames
(``connect``, ``events.subscribe``, ``echo``) to both servers.

For the broadcast benchmark it keeps the set of open connections; each line ``<i>`` read on stdin
sends one ``event`` notification (same shape as the gateway's) to every connection, one after the
other. Prints ``ready ws://HOST:PORT`` when listening; SIGTERM/SIGINT stop it (exit 0).

    python benchmarks/baseline_server.py [--host 127.0.0.1] [--port 0]
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys

import msgspec
import trio
import trio_websocket
from _common import BENCH_TOPIC, monotonic_ns, now_ts, raise_nofile_limit, stdin_triggers

encoder = msgspec.json.Encoder()
decoder = msgspec.json.Decoder()


async def main(host: str, port: int) -> None:
    connections: set[trio_websocket.WebSocketConnection] = set()

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        connections.add(ws)
        try:
            while True:
                try:
                    text = await ws.get_message()
                except trio_websocket.ConnectionClosed:
                    return
                try:
                    doc = decoder.decode(text)
                except msgspec.DecodeError:
                    continue
                if not isinstance(doc, dict):
                    continue
                reply = {"jsonrpc": "2.0", "id": doc.get("id"), "result": doc.get("params")}
                try:
                    await ws.send_message(encoder.encode(reply).decode())
                except trio_websocket.ConnectionClosed:
                    return
        finally:
            connections.discard(ws)

    async def broadcaster() -> None:
        seq = 0
        async for i in stdin_triggers():
            t0 = monotonic_ns()
            seq += 1
            params = {
                "topic": BENCH_TOPIC,
                "seq": seq,
                "ts": now_ts(),
                "data": {"i": i, "t0_ns": t0},
            }
            frame = encoder.encode({"jsonrpc": "2.0", "method": "event", "params": params}).decode()
            for ws in list(connections):
                try:
                    await ws.send_message(frame)
                except trio_websocket.ConnectionClosed:
                    pass

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(
                trio_websocket.serve_websocket, handler, host, port, None, handler_nursery=nursery
            )
            server = await nursery.start(serve)
            nursery.start_soon(broadcaster)
            sys.stdout.write(f"ready ws://{host}:{server.port}\n")
            sys.stdout.flush()
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_nofile_limit()
    trio.run(main, args.host, args.port)
