"""Commands die with the gateway: after ``kill -9`` of the gateway process, nothing it started
runs on (its watcher kills them at once), and if the watcher was killed too, the next gateway
on the data dir kills them at start-up.

Real processes and real signals throughout; waits are bounded and poll ``/proc``.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
from pathlib import Path

import trio

from aleph_trio import Client, open_client
from gatewayproc import Server, start_server
from runhelp import start


def processes(needle: bytes) -> list[int]:
    """Live (not zombie) processes whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != b"Z":
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def watchers_of(pid: int) -> list[int]:
    found = []
    for child in children_of(pid):
        try:
            if b"_watcher.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


async def wait_until(predicate: object, timeout: float = 10) -> None:
    assert callable(predicate)
    with trio.fail_after(timeout):
        # Other processes' states can only be polled: /proc sends no notifications.
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.02)


async def start_sleep(server: Server, tmp_path: Path, seconds: str) -> None:
    """Allow every command, and have the built-in model run ``sleep <seconds>``."""
    token = (tmp_path / "data" / "token").read_text().strip()
    client: Client
    async with open_client(server.url, token=token) as client:
        current = await client.call("exec.approvals.get")
        await client.call(
            "exec.approvals.set", {"config": {"mode": "full"}, "base_hash": current["hash"]}
        )
        await start(client, f"run sleep {seconds}")
        await wait_until(lambda: processes(f"sleep\0{seconds}".encode()))


def unique_seconds() -> str:
    """A sleep length no other process on the machine uses, to find ours by."""
    return f"308.{secrets.randbelow(10**9):09d}"


async def test_kill_9_of_the_gateway_takes_its_commands(tmp_path: Path) -> None:
    seconds = unique_seconds()
    needle = f"sleep\0{seconds}".encode()
    async for server in start_server(tmp_path):
        await start_sleep(server, tmp_path, seconds)
        assert len(processes(needle)) == 1  # the command, and nothing else by that name
        server.process.send_signal(signal.SIGKILL)
        await wait_until(lambda: not processes(needle))  # fails by deadline if it survives


async def test_survivors_are_killed_by_the_next_gateway(tmp_path: Path) -> None:
    """The gateway and its watcher both killed: the command survives until a gateway starts
    on the data dir again, which kills it before it serves."""
    seconds = unique_seconds()
    needle = f"sleep\0{seconds}".encode()
    async for server in start_server(tmp_path):
        await start_sleep(server, tmp_path, seconds)
        # The command is told to the watcher once it runs: wait for both to be there.
        await wait_until(functools.partial(watchers_of, server.process.pid))
        [watcher] = watchers_of(server.process.pid)
        os.kill(watcher, signal.SIGKILL)
        server.process.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await server.process.wait()
        await trio.sleep(0.5)
        assert processes(needle), "the command should have survived both"
    async for again in start_server(tmp_path):
        assert "listening" in again.lines[0]
        await wait_until(lambda: not processes(needle), timeout=5)
        assert (tmp_path / "data" / "exec-groups").read_text() == ""
