"""The gateway in-process, with a stdin trigger for the broadcast benchmark.

Runs ``open_gateway`` + ``gateway.serve`` exactly as an embedding application would (default
config, authentication on). Each line ``<i>`` read on stdin calls
``gateway.bus.publish("bench.tick", {"i": i, "t0_ns": <CLOCK_MONOTONIC ns>})`` once, so the path
measured is the real one: bus.publish -> per-connection outbound queue -> writer task -> socket.
The timestamp is taken immediately before ``publish``.

Prints ``ready ws://HOST:PORT`` and ``token <owner token>``; SIGTERM/SIGINT stop it (exit 0).

    python benchmarks/serve_gateway.py --data-dir DIR [--host 127.0.0.1] [--port 0]
"""

from __future__ import annotations

import argparse
import signal
import sys

import trio
from _common import BENCH_TOPIC, monotonic_ns, raise_nofile_limit, stdin_triggers

from aleph_trio import Config, open_gateway


async def main(host: str, port: int, data_dir: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_gateway(Config(), data_dir=data_dir) as gateway:
            async with trio.open_nursery() as nursery:
                bound = await nursery.start(gateway.serve, host, port)

                async def publisher() -> None:
                    publish = gateway.bus.publish
                    async for i in stdin_triggers():
                        publish(BENCH_TOPIC, {"i": i, "t0_ns": monotonic_ns()})

                nursery.start_soon(publisher)
                sys.stdout.write(f"ready ws://{host}:{bound}\ntoken {gateway.owner_token}\n")
                sys.stdout.flush()
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    raise_nofile_limit()
    trio.run(main, args.host, args.port, args.data_dir)
