"""Embed the gateway in a Trio program: serve it on a free port and call it two ways.

Run: python examples/embed.py
"""

from __future__ import annotations

import tempfile

import trio

from aleph_trio import Config, open_client, open_gateway


async def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        async with open_gateway(Config(), data_dir=data_dir) as gateway:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(gateway.serve, "127.0.0.1", 0)

                # 1. In process: same connection code as a socket, no network.
                async with gateway.connect() as local:
                    health = await local.call("health")
                    print(
                        "in-process health:",
                        health["status"],
                        "connections:",
                        health["connections"],
                    )

                # 2. Over a real WebSocket, with events.
                url = f"ws://127.0.0.1:{port}/"
                async with open_client(url, token=gateway.owner_token) as client:
                    await client.subscribe(["demo.*"])
                    gateway.bus.publish("demo.hello", {"greeting": "hi from the host program"})
                    event = await client.next_event(timeout=5)
                    print(f"event #{event.seq} {event.topic}: {event.data}")
                    print("echo:", await client.call("echo", {"n": 2**70}))

                nursery.cancel_scope.cancel()  # a graceful stop: clients get close 1001


if __name__ == "__main__":
    trio.run(main)
