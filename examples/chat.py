"""Chat with the gateway's agent, streamed: python examples/chat.py [ws://127.0.0.1:18790] [token]

Each line you type is sent with ``chat.send``; the answer is printed as it streams. Questions the
agent asks (``ask_user``) are shown and your next line answers them. Ctrl-D quits. Without a
token argument it uses $ALEPH_TRIO_TOKEN, then the token file in the default data dir.

This is the smallest chat client; ``aleph-trio chat`` is the one to use: it also answers exec
approvals inline and gives each chat a session of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs
import trio

from aleph_trio import Client, open_client

TERMINAL = {"agent.completed", "agent.error", "agent.cancelled"}


def find_token() -> str:
    if len(sys.argv) > 2:
        return sys.argv[2]
    if os.environ.get("ALEPH_TRIO_TOKEN"):
        return os.environ["ALEPH_TRIO_TOKEN"]
    path = Path(platformdirs.user_data_dir("aleph_trio", appauthor=False)) / "token"
    return path.read_text().strip()


async def read_line(prompt: str) -> str | None:
    print(prompt, end="", flush=True)
    # abandon_on_cancel: Ctrl-C must not wait for the line being typed
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return line.rstrip("\n") if line else None


async def follow(client: Client, run_id: str) -> bool:
    """Print the run's stream until it ends; ``False`` if the user quit meanwhile."""
    async for event in client.events():
        data = event.data
        if data.get("run_id") != run_id:
            continue
        if event.topic == "stream.chunk":
            print(data["content"], end="", flush=True)
        elif event.topic == "stream.tool_start":
            print(f"\n[{data['tool']} {data['input']}]", flush=True)
        elif event.topic == "agent.input_requested":
            options = f" {data['options']}" if data.get("options") else ""
            answer = await read_line(f"\n? {data['question']}{options} ")
            if answer is None:
                return False
            await client.call("agent.respondToInput", {"run_id": run_id, "message": answer})
        elif event.topic == "agent.error":
            print(f"\n[error: {data['error']['message']}]")
        elif event.topic == "agent.cancelled":
            print(f"\n[cancelled: {data['reason']}]")
        if event.topic in TERMINAL:
            print()
            return True
    return False


async def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:18790"
    async with open_client(url, token=find_token()) as client:
        models = (await client.call("models.list"))["models"]
        print(f"connected; models: {', '.join(m['id'] for m in models)}")
        while (line := await read_line("> ")) is not None:
            if not line.strip():
                continue
            run = await client.call("chat.send", {"message": line})
            if not await follow(client, run["run_id"]):
                break


if __name__ == "__main__":
    try:
        trio.run(main)
    except* KeyboardInterrupt:  # Ctrl-C: Trio delivers it inside exception groups
        sys.exit(130)
