"""The floor for ``health.py``: a bare Trio server answering every request head on a socket
with one fixed response, parsing nothing. Prints ``ready http://HOST:PORT``.

    python benchmarks/baseline_http.py [--port 0]
"""

from __future__ import annotations

import argparse
import sys

import trio

BODY = b'{"status":"ok","uptime_s":1.0}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


async def handle(stream: trio.SocketStream) -> None:
    pending = b""
    async with stream:
        while data := await stream.receive_some(65536):
            pending += data
            count = pending.count(b"\r\n\r\n")
            if count:
                pending = pending[pending.rfind(b"\r\n\r\n") + 4 :]
                await stream.send_all(RESPONSE * count)


async def main(port: int) -> None:
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]
    sys.stdout.write(f"ready http://127.0.0.1:{bound}\n")
    sys.stdout.flush()
    await trio.serve_listeners(handle, listeners)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    trio.run(main, parser.parse_args().port)
