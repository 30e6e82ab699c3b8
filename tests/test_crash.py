"""A gateway process killed with SIGKILL mid-write loses no committed message and leaves no
half-written session (a real subprocess, a real database file)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from aleph_trio import Config, open_gateway

WRITER = r"""
import sys, trio
from pathlib import Path
from aleph_trio import Config, open_gateway

async def main(data_dir):
    async with open_gateway(Config(), data_dir=data_dir) as gateway:
        async def writer(n):
            i = 0
            while True:
                key = f"agent:main:s{n % 3}"
                message = await gateway.sessions.append(key, "user", f"w{n}-{i} " + "x" * (i % 50))
                sys.stdout.write(f"{message.id} {key} w{n}-{i}\n")
                sys.stdout.flush()
                i += 1
        async with trio.open_nursery() as nursery:
            for n in range(6):
                nursery.start_soon(writer, n)

trio.run(main, sys.argv[1])
"""


@pytest.mark.parametrize("kill_after", [25, 400])
async def test_kill_9_mid_write(tmp_path: Path, kill_after: int) -> None:
    data_dir = tmp_path / "data"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", WRITER, str(data_dir)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    committed: list[tuple[int, str, str]] = []
    buffer = b""
    try:
        with trio.fail_after(60):
            while len(committed) < kill_after:
                chunk = await process.stdout.receive_some(65536)
                assert chunk, "the writer exited early"
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message_id, key, tag = line.decode().split(" ")
                    committed.append((int(message_id), key, tag))
        process.send_signal(signal.SIGKILL)  # while the writers are still writing
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert process.returncode == -signal.SIGKILL

    conn = sqlite3.connect(data_dir / "gateway.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = {row[0]: row for row in conn.execute("SELECT id, session_key, content FROM messages")}
    for message_id, key, tag in committed:
        assert message_id in rows, f"committed message {message_id} was lost"
        assert rows[message_id][1] == key
        assert rows[message_id][2].startswith(tag + " ")
    for key, count, tokens in conn.execute(
        "SELECT session_key, message_count, token_count FROM sessions"
    ):
        actual = conn.execute(
            "SELECT count(*), coalesce(sum(tokens), 0) FROM messages WHERE session_key = ?", (key,)
        ).fetchone()
        assert (count, tokens) == actual, f"session {key} counters disagree with its messages"
    conn.close()

    # And the gateway opens it again and serves it.
    async with open_gateway(Config(), data_dir=data_dir) as gateway, gateway.connect() as client:
        listed = await client.call("session.list")
        assert listed["total"] == len({key for _, key, _ in committed})
        total = sum(s["message_count"] for s in listed["sessions"])
        assert total >= len(committed)
