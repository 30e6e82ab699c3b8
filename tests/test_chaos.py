"""Chaos: the gateway as a real process through a sequence of faults, then a restart.

Slow consumers, pings racing closes, half-open handshakes, protocol violations, batch floods and
``kill -9`` with a command running; afterwards the next gateway on the same data dir finds an
intact database with every acknowledged run recorded, and nothing the first one started is
left running. Neither process logs a traceback. Real sockets, real processes, real signals;
every wait is bounded.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import socket
import sqlite3
from pathlib import Path

import pytest
import trio

from aleph_trio import Client, open_client
from gatewayproc import Server, start_server
from rawws import Closed, RawWebSocket, client_frame
from test_exec_orphans import processes, wait_until, watchers_of

CONFIG = """
[server]
ping_interval_s = 1
ping_timeout_s = 5
send_queue = 16
send_queue_bytes = 65536
max_batch = 50
shutdown_grace_s = 2

[auth]
handshake_timeout_s = 1
"""

#: Runs whose answers flood the slow consumer: about 40 kB of events each.
FLOOD_RUNS = 30


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1].strip("/"))


async def raw_connection(
    port: int, token: str | None, *, rcvbuf: int | None = None
) -> RawWebSocket:
    sock = trio.socket.socket()
    if rcvbuf is not None:  # a small window: the server's queue fills instead of the kernel's
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.connect(("127.0.0.1", port))
    raw = RawWebSocket(trio.SocketStream(sock))
    assert await raw.handshake() == 101
    if token is not None:
        reply = await raw.call("connect", {"token": token})
        assert reply["result"]["authenticated"], reply
    return raw


async def close_code(raw: RawWebSocket) -> int:
    """Read everything the server sends until it closes; the close code (1006: no frame)."""
    try:
        while True:
            await raw.receive()
    except Closed as closed:
        return closed.code


async def slow_consumer_is_closed(port: int, token: str, client: Client) -> None:
    slow = await raw_connection(port, token, rcvbuf=4096)
    await slow.call("events.subscribe", {"patterns": ["**"]})
    text = "x" * 20_000
    run_ids = [
        (await client.call("agent.run", {"message": f"echo: {text}", "session_key": f"agent:main:flood{i}"}))["run_id"]
        for i in range(FLOOD_RUNS)
    ]  # fmt: skip
    pending = set(run_ids)
    with trio.fail_after(60):
        while pending:  # the caller gets its runs' events without subscribing
            event = await client.next_event()
            if event.topic == "agent.completed":
                pending.discard(event.data["run_id"])
            assert event.topic not in ("agent.error", "agent.cancelled"), event
    code = await close_code(slow)
    await slow.stream.aclose()
    assert code == 1008


async def pings_race_closes(port: int, token: str) -> None:
    for offset in (0.9, 1.0, 1.1):
        conns = [await raw_connection(port, token) for _ in range(20)]
        await trio.sleep(offset)  # the server's pings fall due about now
        async with trio.open_nursery() as nursery:
            for raw in conns:
                nursery.start_soon(raw.send_close)
        for raw in conns:
            await raw.stream.aclose()


async def half_open_handshakes_are_closed(port: int) -> None:
    streams = []
    for partial in (b"", b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: web"):
        for _ in range(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            if partial:
                await stream.send_all(partial)
            streams.append(stream)
    for stream in streams:  # handshake_timeout_s is 1 s
        with trio.fail_after(10):
            try:
                while await stream.receive_some(4096):
                    pass
            except trio.BrokenResourceError:
                pass
        await stream.aclose()


async def bad_frames_get_close_codes(port: int, token: str) -> None:
    cases = [
        (client_frame(0x1, b"\xff\xfe not utf-8"), 1007),
        (client_frame(0x1, b"{}", masked=False), 1002),
        (client_frame(0x1, b"{}", rsv=4), 1002),
        (client_frame(0x3, b""), 1002),
    ]
    for frame, code in cases:
        raw = await raw_connection(port, token)
        await raw.send_frame(frame)
        with trio.fail_after(10):
            assert await close_code(raw) == code
        await raw.stream.aclose()


async def floods_are_bounded(url: str, port: int, token: str) -> None:
    """A batch over server.max_batch is refused whole; full batches keep coming while another
    connection's requests are still answered."""
    flooder = await raw_connection(port, token)
    await flooder.send_json(
        [{"jsonrpc": "2.0", "id": i, "method": "session.list"} for i in range(200)]
    )
    refused = await flooder.receive_json()
    assert refused["error"]["code"] == -32600
    assert refused["error"]["data"] == {"max_batch": 50}
    batch = [{"jsonrpc": "2.0", "id": i, "method": "session.list"} for i in range(50)]
    stop = trio.Event()
    sizes: list[int] = []

    async def flood() -> None:
        while not stop.is_set():
            await flooder.send_json(batch)
            sizes.append(len(await flooder.receive_json()))

    async with open_client(url, token=token) as other, trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        for _ in range(20):
            assert (await other.call("health"))["status"] == "ok"
        stop.set()
    assert sizes and set(sizes) == {50}
    await flooder.stream.aclose()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "chaos.toml"
    path.write_text(CONFIG)
    return path


async def test_faults_then_kill_9_then_an_intact_restart(tmp_path: Path, config_file: Path) -> None:
    log_first, log_second = tmp_path / "first.log", tmp_path / "second.log"
    seconds = f"309.{secrets.randbelow(10**9):09d}"
    needle = f"sleep\0{seconds}".encode()
    async for server in start_server(tmp_path, "--config", str(config_file), stderr=log_first):
        token = (tmp_path / "data" / "token").read_text().strip()
        port = port_of(server)
        with trio.fail_after(120):
            async with open_client(server.url, token=token) as client:
                current = await client.call("exec.approvals.get")
                await client.call(
                    "exec.approvals.set", {"config": {"mode": "full"}, "base_hash": current["hash"]}
                )
                await slow_consumer_is_closed(port, token, client)
                await pings_race_closes(port, token)
                await half_open_handshakes_are_closed(port)
                await bad_frames_get_close_codes(port, token)
                await floods_are_bounded(server.url, port, token)
                last = await client.call("agent.run", {"message": f"run sleep {seconds}"})
                await wait_until(lambda: processes(needle))
                await wait_until(functools.partial(watchers_of, server.process.pid))
                server.process.send_signal(signal.SIGKILL)
                await wait_until(lambda: not processes(needle))
                await server.process.wait()

    async for again in start_server(tmp_path, "--config", str(config_file), stderr=log_second):
        with trio.fail_after(60):
            async with open_client(again.url, token=token) as client:
                cut = await client.call("agent.status", {"run_id": last["run_id"]})
                assert cut["status"] == "failed"
                assert cut["error"] == "interrupted by gateway restart"
                listed = await client.call("session.list", {"limit": 100})
                flooded = {s["session_key"] for s in listed["sessions"]}
                assert {f"agent:main:flood{i}" for i in range(FLOOD_RUNS)} <= flooded
            again.process.send_signal(signal.SIGTERM)
            assert await again.process.wait() == 0
        assert not watchers_of(again.process.pid)

    with sqlite3.connect(tmp_path / "data" / "gateway.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        done = db.execute("SELECT count(*) FROM runs WHERE status = 'completed'").fetchone()[0]
    assert done >= FLOOD_RUNS
    assert not processes(needle)
    for log in (log_first, log_second):
        text = log.read_text()
        assert "Traceback" not in text, text[-4000:]
        assert "crashed" not in text, text[-4000:]
    assert os.path.getsize(tmp_path / "data" / "exec-groups") == 0
