"""Stopping without dropping work (PROTOCOL §5, ``server.shutdown_grace_s``).

A drain stops accepting and refuses new runs, lets runs, cron firings and approvals in flight
end within the grace period while clients stay connected, then cancels what is left (recorded
``cancelled`` with the reason) before clients are closed with 1001.
"""

from __future__ import annotations

import functools
import signal
from pathlib import Path

import pytest
import trio
import trio.testing

from aleph_trio import AlephError, Config, Gateway, open_client, open_gateway
from aleph_trio.kernel import ServerConfig
from gatewayproc import start_server
from rawws import Closed, RawWebSocket
from runhelp import run_events, start, wait_event

#: The built-in model streams a "long answer" for about 6 s (120 words at 20 a second).
LONG = "give me a long answer"


def grace(seconds: float) -> Config:
    return Config(server=ServerConfig(shutdown_grace_s=seconds))


async def serve(gateway: Gateway, nursery: trio.Nursery) -> int:
    port: int = await nursery.start(gateway.serve, "127.0.0.1", 0)
    return port


async def test_a_run_in_flight_finishes_within_the_grace_period(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    async with open_gateway(grace(30), data_dir=data_dir) as gateway:
        async with trio.open_nursery() as nursery:
            port = await serve(gateway, nursery)
            url = f"ws://127.0.0.1:{port}/"
            async with open_client(url, token=gateway.owner_token) as client:
                run_id = await start(client, LONG)
                await wait_event(client, "stream.chunk", run_id=run_id)
                draining = trio.Event()

                async def drain() -> None:
                    with trio.fail_after(60):
                        await gateway.drain()
                    draining.set()

                nursery.start_soon(drain)
                await trio.sleep(0.5)
                # Still connected: new work is refused with a clear error...
                with pytest.raises(AlephError) as refused:
                    await client.call("agent.run", {"message": "hello"})
                assert refused.value.code == -32602
                assert refused.value.message == (
                    "Invalid params: no new runs are accepted: gateway shutting down"
                )
                # ... and nobody new gets in.
                with pytest.raises(OSError, match="all attempts to connect"):
                    await trio.open_tcp_stream("127.0.0.1", port)
                # The run goes on to its end, seen by its client.
                events = await run_events(client, run_id, timeout=30)
                assert events[-1].topic == "agent.completed"
                assert "word120" in events[-2].data["content"]  # stream.end: the whole answer
                await draining.wait()
            record = await gateway.runs.get(run_id)
            assert record.status == "completed"
            nursery.cancel_scope.cancel()


async def test_what_outlasts_the_grace_period_is_cancelled_with_the_reason(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    async with open_gateway(grace(1), data_dir=data_dir) as gateway:
        async with gateway.connect() as client:
            run_id = await start(client, LONG)
            await wait_event(client, "stream.chunk", run_id=run_id)
            started = trio.current_time()
            with trio.fail_after(30):
                await gateway.drain()
            assert 1 <= trio.current_time() - started < 3
            events = await run_events(client, run_id)
            assert events[-1].topic == "agent.cancelled"
            assert events[-1].data["reason"] == "gateway shutting down"
        record = await gateway.runs.get(run_id)
        assert record.status == "cancelled"


async def test_hurry_skips_the_wait(data_dir: Path, patient_clock: trio.testing.MockClock) -> None:
    async with open_gateway(grace(600), data_dir=data_dir) as gateway:
        async with gateway.connect() as client:
            run_id = await start(client, LONG)
            await wait_event(client, "stream.chunk", run_id=run_id)
            hurry = trio.Event()
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(gateway.drain, hurry=hurry))
                await trio.sleep(1)
                hurry.set()
            assert trio.current_time() - started < 5
            assert (await gateway.runs.get(run_id)).status == "cancelled"


async def test_a_pending_approval_can_still_be_answered(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    """A run waiting for a person keeps the gateway open for its grace period: the owner's
    client is still connected and can approve; the run then completes."""
    async with open_gateway(grace(120), data_dir=data_dir) as gateway:
        async with gateway.connect() as client:
            await client.subscribe(["exec.*"])
            run_id = await start(client, "run echo drained")
            asked = await wait_event(client, "exec.approval_requested")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(gateway.drain)
                await trio.sleep(1)
                await client.call(
                    "exec.approval.resolve", {"id": asked.data["id"], "decision": "allow-once"}
                )
                events = await run_events(client, run_id, timeout=60)
            assert events[-1].topic == "agent.completed"
            ends = [e for e in events if e.topic == "stream.tool_end"]
            assert "drained" in ends[0].data["output"]


async def test_cron_stops_firing_while_draining(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    async with open_gateway(grace(5), data_dir=data_dir) as gateway:
        async with gateway.connect() as client:
            job = await client.call(
                "cron.create",
                {"name": "tick", "schedule": "every 1h", "agent_id": "main", "prompt": "echo: x"},
            )
            with trio.fail_after(30):
                await gateway.drain()
            with pytest.raises(AlephError) as refused:
                await client.call("cron.trigger", {"job_id": job["job_id"]})
            assert refused.value.code == -32602
            assert "gateway shutting down" in refused.value.message
            assert gateway.cron.statistics().active_runs == 0


async def test_sigterm_lets_a_run_finish_then_closes_1001(tmp_path: Path) -> None:
    """The real process: SIGTERM 1 s into a 6 s answer; the client sees the whole answer, then
    close 1001, and the process exits 0."""
    config = tmp_path / "config.toml"
    config.write_text("[server]\nshutdown_grace_s = 30\n")
    async for server in start_server(tmp_path, "--config", str(config)):
        token = (tmp_path / "data" / "token").read_text().strip()
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        with trio.fail_after(45):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                raw = RawWebSocket(stream)
                assert await raw.handshake() == 101
                assert (await raw.call("connect", {"token": token}))["result"]["authenticated"]
                reply = await raw.call("agent.run", {"message": LONG})
                run_id = reply["result"]["run_id"]
                await trio.sleep(1)
                server.process.send_signal(signal.SIGTERM)
                topics, closed = await topics_until_closed(raw, run_id)
                assert topics[-2:] == ["stream.end", "agent.completed"]
                assert closed.code == 1001
            assert await server.process.wait() == 0


async def topics_until_closed(raw: RawWebSocket, run_id: str) -> tuple[list[str], Closed]:
    """The topics of ``run_id``'s events, read until the server closes the connection."""
    topics: list[str] = []
    while True:
        try:
            params = (await raw.receive_json()).get("params", {})
        except Closed as closed:
            return topics, closed
        if params.get("data", {}).get("run_id") == run_id:
            topics.append(params["topic"])


async def test_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[server]\nshutdown_grace_s = 600\n")
    async for server in start_server(tmp_path, "--config", str(config)):
        token = (tmp_path / "data" / "token").read_text().strip()
        with trio.fail_after(30):
            async with open_client(server.url, token=token) as client:
                run_id = await start(client, LONG)
                await wait_event(client, "stream.chunk", run_id=run_id)
                server.process.send_signal(signal.SIGTERM)
                await trio.sleep(0.5)
                server.process.send_signal(signal.SIGTERM)
                events = await run_events(client, run_id, timeout=20)
                assert events[-1].topic == "agent.cancelled"
                assert events[-1].data["reason"] == "gateway shutting down"
            assert await server.process.wait() == 0
