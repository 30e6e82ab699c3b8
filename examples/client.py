"""Talk to a running gateway: python examples/client.py [ws://127.0.0.1:18790] [token]

Without a token argument it uses $ALEPH_TRIO_TOKEN, then the token file in the default data dir.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs
import trio

from aleph_trio import open_client


def find_token() -> str:
    if len(sys.argv) > 2:
        return sys.argv[2]
    if os.environ.get("ALEPH_TRIO_TOKEN"):
        return os.environ["ALEPH_TRIO_TOKEN"]
    path = Path(platformdirs.user_data_dir("aleph_trio", appauthor=False)) / "token"
    return path.read_text().strip()


async def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:18790"
    async with open_client(url, token=find_token()) as client:
        print(await client.call("version"))
        print(await client.call("health"))
        await client.call("logs.tail", {"lines": 5, "follow": True})
        print("following the log; Ctrl-C to stop")
        async for event in client.events():
            print(event.data["ts"], event.data["level"], event.data["message"])


if __name__ == "__main__":
    try:
        trio.run(main)
    except* KeyboardInterrupt:  # Ctrl-C: Trio delivers it inside exception groups
        sys.exit(130)
