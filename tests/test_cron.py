"""The cron service through a real gateway, real SQLite and the built-in model, on virtual time.

Every test here runs on ``patient_clock`` with a wall clock derived from it
(:class:`FakeWall`): Trio's virtual time drives both the scheduler's sleeps and the time of day it
reads, so a day of schedule takes milliseconds. ``patient_clock`` (not ``autojump_clock``) lets
the store's worker threads finish before time jumps, as in production where a write takes far
less than a fire interval. Restarts open the gateway twice on one data directory, and the
downtime between them is ``patient_clock.jump``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, WallClock, open_gateway
from aleph_trio.client import ClientEvent
from aleph_trio.cron import LIVE, CronService
from aleph_trio.cron._schedule import MISSED_RECORDS
from aleph_trio.kernel import CronConfig, EventBus, ServerConfig, format_ts
from aleph_trio.protocol import AlephError, encode_event
from aleph_trio.providers import ModelCatalog
from aleph_trio.store import CronJob, CronRun, Run, open_sqlite_store
from runhelp import event_data, wait_event

UTC = dt.UTC
#: Virtual seconds any single wait in these tests may take.
LONG = 10 * 86400
#: Pings once a virtual day: each wake-up costs ``patient_clock`` 50 ms of real time.
QUIET = ServerConfig(ping_interval_s=86_400, ping_timeout_s=86_400)


@attrs.define
class FakeWall:
    """The time of day as ``base`` + Trio's (virtual) time + ``jumped`` (a clock set forward)."""

    base: dt.datetime
    jumped: float = 0.0

    def now(self) -> dt.datetime:
        return self.base + dt.timedelta(seconds=trio.current_time() + self.jumped)


def ts(*args: int) -> str:
    return dt.datetime(*args, tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextlib.asynccontextmanager
async def cron_gateway(
    data_dir: Path, wall: FakeWall, config: Config | None = None, *, recheck_s: float = math.inf
) -> AsyncIterator[tuple[Gateway, Client]]:
    clock = WallClock(wall.now, recheck_s=recheck_s)
    config = attrs.evolve(config or Config(), server=QUIET)
    async with (
        open_gateway(config, data_dir=data_dir, wall_clock=clock) as gw,
        gw.connect() as client,
    ):
        # Replayed from the start: firings due at start-up may already have been announced.
        await client.subscribe(["cron.*"], since_seq=0)
        yield gw, client


async def create(client: Client, schedule: str, **params: Any) -> str:
    params = {"name": schedule, "agent_id": "main", "prompt": "echo: hi", **params}
    result = await client.call("cron.create", {"schedule": schedule, **params})
    job_id: str = result["job_id"]
    return job_id


async def cron_events(client: Client, count: int) -> list[ClientEvent]:
    got: list[ClientEvent] = []
    with trio.fail_after(LONG):
        while len(got) < count:
            event = await client.next_event()
            if event.topic.startswith("cron."):
                got.append(event)
    return got


async def firing(client: Client) -> tuple[ClientEvent, ClientEvent]:
    """The next firing's ``cron.triggered`` and its end."""
    triggered = await wait_event(client, "cron.triggered", timeout=LONG)
    with trio.fail_after(LONG):
        while True:
            end = await client.next_event()
            if (
                end.topic in ("cron.completed", "cron.failed")
                and end.data["cron_run_id"] == (triggered.data["cron_run_id"])
            ):
                return triggered, end


async def job(client: Client, job_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await client.call("cron.get", {"job_id": job_id})
    return result


async def call_error(client: Client, method: str, params: dict[str, Any]) -> AlephError:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    return err.value


# -- methods and errors --------------------------------------------------------------------------


async def test_create_list_get_status(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, 0, 250000, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (gw, client):
        result = await client.call(
            "cron.create",
            {
                "name": "standup",
                "schedule": "*/15 9-17 * * mon-fri",
                "timezone": "Europe/Berlin",
                "agent_id": "main",
                "prompt": "echo: standup",
            },
        )
        assert result["next_run_at"] == ts(2026, 3, 27, 12, 15)
        paused = await create(client, "every 1h", name="hourly", enabled=False)
        job_id = result["job_id"]
        got = await job(client, job_id)
        assert got == {
            "job_id": job_id,
            "name": "standup",
            "schedule": "*/15 9-17 * * mon-fri",
            "schedule_description": "Every 15th minute from 09:00 through 17:59 on Monday "
            "through Friday (Europe/Berlin)",
            "timezone": "Europe/Berlin",
            "agent_id": "main",
            "prompt": "echo: standup",
            "session_key": f"agent:main:cron:{job_id}",
            "enabled": True,
            "misfire_policy": "run_once",
            "overlap_policy": "skip",
            "created_at": "2026-03-27T12:00:00.250Z",
            "next_run_at": ts(2026, 3, 27, 12, 15),
            "last_run_at": None,
            "last_status": None,
            "recent_runs": [],
        }
        listed = await client.call("cron.list")
        assert listed["total"] == 2
        assert [j["job_id"] for j in listed["jobs"]] == [job_id, paused]
        assert {k: v for k, v in listed["jobs"][0].items()} == {
            k: v for k, v in got.items() if k != "recent_runs"
        }
        assert listed["jobs"][1]["next_run_at"] is None
        only_paused = await client.call("cron.list", {"filter": {"enabled": False}})
        assert [j["job_id"] for j in only_paused["jobs"]] == [paused]
        assert (await client.call("cron.list", {"filter": {"agent_id": "other"}}))["total"] == 0
        assert await client.call("cron.status") == {
            "running": True,
            "jobs": 2,
            "enabled_jobs": 1,
            "active_runs": 0,
            "queued_runs": 0,
            "max_concurrent": 4,
            "next_run_at": ts(2026, 3, 27, 12, 15),
            "next_job_id": job_id,
        }
        assert (await client.call("health"))["services"] == {
            "browser": "running",
            "cron": "running",
            "plugins": "running",
            "poe": "running",
            "runs": "running",
            "wizards": "running",
        }
        assert gw.cron.statistics().jobs == 2


@pytest.mark.parametrize(
    ("params", "code", "path", "message"),
    [
        ({"schedule": "61 * * * *"}, -32602, "$.schedule", "minute field: 61 is out of range 0-59"),
        ({"schedule": "every 2 fortnights"}, -32602, "$.schedule", "unit s, m, h or d"),
        ({"schedule": "at 2020-01-01T00:00:00Z"}, -32602, "$.schedule", "is in the past"),
        ({"timezone": "Europe/Nowhere"}, -32602, "$.timezone", "unknown time zone"),
        ({"model": "nowhere/nothing"}, -32602, "$.model", "unknown model"),
        ({"prompt": "   "}, -32602, "$.prompt", "must not be blank"),
        ({"misfire_policy": "later"}, -32602, "$.misfire_policy", None),
        ({"agent_id": "ghost"}, -32004, None, "agent not found: ghost"),
    ],
)
async def test_create_refuses_bad_params(
    client: Client,
    gateway: Gateway,
    params: dict[str, Any],
    code: int,
    path: str | None,
    message: str | None,
) -> None:
    base = {"name": "x", "schedule": "@daily", "agent_id": "main", "prompt": "echo: hi"}
    err = await call_error(client, "cron.create", {**base, **params})
    assert err.code == code
    if path is not None:
        assert err.data is not None
        assert path in [e["path"] for e in err.data["errors"]]
        assert path in err.message
    if message is not None:
        assert message in err.message
    assert gateway.cron.statistics().jobs == 0
    assert (await client.call("cron.list"))["total"] == 0


async def test_names_are_unique_and_unknown_jobs_are_not_found(client: Client) -> None:
    await create(client, "@daily", name="report")
    err = await call_error(
        client,
        "cron.create",
        {"name": "report", "schedule": "@hourly", "agent_id": "main", "prompt": "echo: again"},
    )
    assert err.code == -32602 and err.data is not None and err.data["reason"] == "conflict"
    assert (await client.call("cron.list"))["total"] == 1
    for method in ("cron.get", "cron.delete", "cron.trigger", "cron.pause", "cron.resume"):
        err = await call_error(client, method, {"job_id": "job_nope"})
        assert err.code == -32004 and err.data == {"resource": "job", "id": "job_nope"}


async def test_guests_may_not_change_jobs(client: Client) -> None:
    commands = {c["method"]: c for c in (await client.call("commands.list"))["commands"]}
    for name in ("cron.create", "cron.delete", "cron.pause", "cron.resume", "cron.trigger"):
        assert commands[name]["owner_only"] is True
    for name in ("cron.list", "cron.get", "cron.status"):
        assert commands[name]["owner_only"] is False


# -- firing on time ------------------------------------------------------------------------------


async def test_every_minute_fires_on_time_and_runs_the_agent(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (_, client):
        job_id = await create(client, "every 1m")
        for minute in (1, 2, 3):
            triggered, end = await firing(client)
            assert wall.now() == dt.datetime(2026, 3, 27, 12, minute, tzinfo=UTC)
            assert triggered.data["trigger"] == "schedule"
            assert triggered.data["scheduled_for"] == ts(2026, 3, 27, 12, minute)
            assert end.topic == "cron.completed" and end.data["status"] == "completed"
            assert end.data["run_id"] == triggered.data["run_id"]
            run = await client.call("agent.status", {"run_id": end.data["run_id"]})
            assert run["status"] == "completed" and run["output"] == "hi"
            assert run["session_key"] == f"agent:main:cron:{job_id}"
        got = await job(client, job_id)
        assert [r["scheduled_for"] for r in got["recent_runs"]] == [
            ts(2026, 3, 27, 12, 3),
            ts(2026, 3, 27, 12, 2),
            ts(2026, 3, 27, 12, 1),
        ]
        assert all(
            r["status"] == "completed" and r["trigger"] == "schedule" for r in got["recent_runs"]
        )
        assert got["recent_runs"][0]["started_at"] == ts(2026, 3, 27, 12, 3)
        assert got["last_run_at"] == ts(2026, 3, 27, 12, 3) and got["last_status"] == "completed"
        assert got["next_run_at"] == ts(2026, 3, 27, 12, 4)
        history = await client.call("session.history", {"session_key": got["session_key"]})
        assert [m["content"] for m in history["messages"]] == ["echo: hi", "hi"] * 3


@pytest.mark.parametrize(
    ("zone", "start", "schedule", "expected"),
    [
        # spring forward: 02:30 does not exist on the 29th, it fires at 03:00 CEST
        (
            "Europe/Berlin",
            (2026, 3, 27, 12),
            "30 2 * * *",
            [ts(2026, 3, 28, 1, 30), ts(2026, 3, 29, 1), ts(2026, 3, 30, 0, 30)],
        ),
        # fall back: 02:30 happens twice on the 25th, it fires once (the first)
        (
            "Europe/Berlin",
            (2026, 10, 24, 12),
            "30 2 * * *",
            [ts(2026, 10, 25, 0, 30), ts(2026, 10, 26, 1, 30), ts(2026, 10, 27, 1, 30)],
        ),
        (
            "America/New_York",
            (2026, 3, 7, 12),
            "30 2 * * *",
            [ts(2026, 3, 8, 7), ts(2026, 3, 9, 6, 30), ts(2026, 3, 10, 6, 30)],
        ),
        (
            "America/New_York",
            (2026, 10, 31, 12),
            "30 1 * * *",
            [ts(2026, 11, 1, 5, 30), ts(2026, 11, 2, 6, 30), ts(2026, 11, 3, 6, 30)],
        ),
    ],
)
async def test_daily_jobs_across_dst_changes(
    data_dir: Path,
    patient_clock: trio.testing.MockClock,
    zone: str,
    start: tuple[int, ...],
    schedule: str,
    expected: list[str],
) -> None:
    wall = FakeWall(dt.datetime(*start, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (_, client):
        await create(client, schedule, timezone=zone)
        seen = []
        for _ in expected:
            triggered, end = await firing(client)
            assert end.topic == "cron.completed"
            seen.append(triggered.data["scheduled_for"])
            assert wall.now() == dt.datetime.fromisoformat(seen[-1])
        assert seen == expected


async def test_a_clock_set_forward_is_noticed_within_recheck(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    """The scheduler sleeps on Trio's clock but looks at the wall clock every ``recheck_s``:
    a wall clock set forward (or a machine waking from suspend) is seen within that time."""
    wall = FakeWall(dt.datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall, recheck_s=10) as (_, client):
        job_id = await create(client, "0 13 * * *")
        wall.jumped = 3600 - 30  # now 12:59:30 on the wall, nothing passed on Trio's clock
        before = trio.current_time()
        triggered, _ = await firing(client)
        assert triggered.data["scheduled_for"] == ts(2026, 5, 1, 13)
        assert trio.current_time() - before <= 40  # not the 3600 s it had planned to sleep
        assert (await job(client, job_id))["next_run_at"] == ts(2026, 5, 2, 13)


# -- restarts and downtime -----------------------------------------------------------------------


async def test_every_minute_keeps_its_cadence_through_a_restart(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (_, client):
        job_id = await create(client, "every 1m")
        await firing(client)
        await trio.sleep(30)
    patient_clock.jump(20)  # down from 12:01:30 to 12:01:50
    async with cron_gateway(data_dir, wall) as (_, client):
        assert (await job(client, job_id))["next_run_at"] == ts(2026, 3, 27, 12, 2)
        triggered, end = await firing(client)
        assert triggered.data["scheduled_for"] == ts(2026, 3, 27, 12, 2)
        assert triggered.data["trigger"] == "schedule" and end.topic == "cron.completed"
        assert wall.now() == dt.datetime(2026, 3, 27, 12, 2, tzinfo=UTC)
        runs = (await job(client, job_id))["recent_runs"]
        assert [r["status"] for r in runs] == ["completed", "completed"]


async def test_a_firing_cut_short_by_a_crash_is_failed_at_the_next_start(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    """What a process killed mid-firing leaves behind: a ``running`` cron run and a job whose
    next fire time was already stored. The next start fails that run and keeps the schedule."""
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, 30, tzinfo=UTC))
    data_dir.mkdir(parents=True)
    async with open_sqlite_store(data_dir / "gateway.db") as store:
        stored = CronJob(
            "job_crashed",
            "crashed",
            "every 1m",
            "UTC",
            "main",
            "echo: again",
            "agent:main:cron:job_crashed",
            True,
            "run_once",
            "skip",
            "2026-03-27T11:00:00.000Z",
            next_run_at=ts(2026, 3, 27, 12, 1),
            last_run_at=ts(2026, 3, 27, 12, 0),
            last_status="running",
        )
        assert await store.insert_cron_job(stored)
        cut = CronRun(
            "crun_cut",
            "job_crashed",
            "schedule",
            "running",
            scheduled_for=ts(2026, 3, 27, 12),
            run_id="run_cut",
            started_at=ts(2026, 3, 27, 12),
        )
        assert await store.save_cron_job(stored, [cut], keep_runs=10)
    async with cron_gateway(data_dir, wall) as (gw, client):
        ended = [e for e in gw.bus._ring if e.topic == "cron.failed"]
        assert [(event_data(e)["cron_run_id"], event_data(e)["error"]) for e in ended] == [
            ("crun_cut", "interrupted by gateway restart")
        ]
        got = await job(client, "job_crashed")
        assert got["last_status"] == "failed"
        assert got["next_run_at"] == ts(2026, 3, 27, 12, 1)
        assert got["recent_runs"][0]["status"] == "failed"
        assert got["recent_runs"][0]["error"] == "interrupted by gateway restart"
        triggered, end = await firing(client)
        assert triggered.data["scheduled_for"] == ts(2026, 3, 27, 12, 1)
        assert end.topic == "cron.completed"


KILLED_MID_FIRING = r"""
import datetime as dt, sys, time, trio
from aleph_trio import Config, WallClock, open_gateway

START = time.monotonic()

def fast_wall():  # a minute of wall time per real second
    return dt.datetime(2026, 3, 27, 12, tzinfo=dt.UTC) + dt.timedelta(
        seconds=60 * (time.monotonic() - START))

async def main(data_dir):
    clock = WallClock(fast_wall, recheck_s=0.02)
    async with open_gateway(Config(), data_dir=data_dir, wall_clock=clock) as gw:
        async with gw.connect() as client:
            await client.subscribe(["cron.triggered"])
            params = {"name": "n", "schedule": "every 1m", "agent_id": "main",
                      "prompt": "ask me what?"}
            await client.call("cron.create", params)
            event = await client.next_event()
            print(event.data["job_id"], event.data["cron_run_id"], event.data["run_id"], flush=True)
            await trio.sleep_forever()

trio.run(main, sys.argv[1])
"""


async def test_a_process_killed_mid_firing(data_dir: Path) -> None:
    """SIGKILL while a firing's agent run waits for input. The next start fails that firing
    (and its run) as interrupted, and the job fires at its next time on the minute grid.
    Real time: the killed process runs a wall clock sixty times faster than real."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", KILLED_MID_FIRING, str(data_dir)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = b""
    try:
        with trio.fail_after(60):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1024)
                assert chunk, "the gateway process exited early"
                line += chunk
        process.send_signal(signal.SIGKILL)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    job_id, cron_run_id, run_id = line.decode().split()

    async with open_sqlite_store(data_dir / "gateway.db") as store:
        [stored] = await store.list_cron_jobs()
    assert stored.next_run_at is not None
    next_at = dt.datetime.fromisoformat(stored.next_run_at)
    since_created = next_at - dt.datetime.fromisoformat(stored.created_at)
    assert since_created.total_seconds() % 60 == 0 and since_created.total_seconds() >= 120
    # Back half a second before that time, on the real clock.
    wall = FakeWall(next_at - dt.timedelta(seconds=0.5 + trio.current_time()))
    async with cron_gateway(data_dir, wall) as (_, client):
        got = await job(client, job_id)
        killed = next(r for r in got["recent_runs"] if r["cron_run_id"] == cron_run_id)
        assert killed["status"] == "failed" and killed["run_id"] == run_id
        assert killed["error"] == "interrupted by gateway restart"
        run = await client.call("agent.status", {"run_id": run_id})
        assert run["status"] == "failed" and run["error"] == "interrupted by gateway restart"
        assert got["next_run_at"] == stored.next_run_at
        with trio.fail_after(10):
            triggered = await wait_event(client, "cron.triggered")
        assert triggered.data["scheduled_for"] == stored.next_run_at
        assert triggered.data["trigger"] == "schedule"


async def test_a_week_down_runs_each_job_at_most_once(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (_, client):
        hourly = await create(client, "@hourly")
        daily = await create(client, "0 0 * * *")
        skipping = await create(client, "30 * * * *", misfire_policy="skip")
        minutely = await create(client, "every 1m")
    patient_clock.jump(7 * 86400 - 20 * 60)  # back at 08:10 a week later
    async with cron_gateway(data_dir, wall) as (gw, client):
        assert wall.now() == dt.datetime(2026, 3, 9, 8, 10, tzinfo=UTC)
        events = await cron_events(client, 4)  # two firings: triggered + completed each
        fired = {e.data["job_id"]: e.data for e in events if e.topic == "cron.triggered"}
        assert fired[hourly]["trigger"] == "catch_up"
        assert fired[hourly]["scheduled_for"] == ts(2026, 3, 9, 8)
        assert fired[minutely]["trigger"] == "schedule"  # its newest time was 0 s ago
        assert fired[minutely]["scheduled_for"] == ts(2026, 3, 9, 8, 10)
        assert set(fired) == {hourly, minutely}

        runs = (await job(client, hourly))["recent_runs"]
        assert runs[0]["trigger"] == "catch_up" and runs[0]["status"] == "completed"
        assert {r["status"] for r in runs[1:]} == {"missed"}
        assert runs[1]["scheduled_for"] == ts(2026, 3, 9, 7)
        got = await job(client, hourly)
        assert got["next_run_at"] == ts(2026, 3, 9, 9) and got["enabled"] is True

        got = await job(client, daily)  # its newest time (00:00) is 8 h old: beyond the grace
        assert [r["status"] for r in got["recent_runs"]] == ["missed"] * 7
        assert got["recent_runs"][0]["scheduled_for"] == ts(2026, 3, 9)
        assert "beyond cron.catch_up_grace_s" in got["recent_runs"][0]["error"]
        assert got["last_status"] == "missed" and got["next_run_at"] == ts(2026, 3, 10)

        got = await job(client, skipping)
        assert got["recent_runs"][0]["error"] == "not run: misfire_policy is skip"
        assert {r["status"] for r in got["recent_runs"]} == {"missed"}

        got = await job(client, minutely)
        assert got["next_run_at"] == ts(2026, 3, 9, 8, 11)
        assert gw.cron.statistics().active_runs == 0
        # Nothing else fires until the next scheduled minute.
        triggered, _ = await firing(client)
        assert triggered.data["job_id"] == minutely
        assert triggered.data["scheduled_for"] == ts(2026, 3, 9, 8, 11)
        assert wall.now() == dt.datetime(2026, 3, 9, 8, 11, tzinfo=UTC)
    async with open_sqlite_store(data_dir / "gateway.db") as store:
        missed = [
            r for r in await store.recent_cron_runs(minutely, limit=1000) if r.status == "missed"
        ]
        assert len(missed) == MISSED_RECORDS  # the newest ones of 10,079
        assert "earlier fire times were missed too" in (missed[-1].error or "")


# -- policies ------------------------------------------------------------------------------------


async def test_overlap_skip_records_skipped_while_the_previous_firing_runs(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (gw, client):
        job_id = await create(client, "every 1m", prompt="ask me which colour?")
        first = await wait_event(client, "cron.triggered", timeout=LONG)
        await trio.sleep(150)  # 12:02 and 12:03 come while the first waits for its answer
        got = await job(client, job_id)
        assert [(r["status"], r["scheduled_for"]) for r in got["recent_runs"]] == [
            ("skipped", ts(2026, 3, 27, 12, 3)),
            ("skipped", ts(2026, 3, 27, 12, 2)),
            ("running", ts(2026, 3, 27, 12, 1)),
        ]
        assert first.data["cron_run_id"] in got["recent_runs"][0]["error"]
        err = await call_error(client, "cron.trigger", {"job_id": job_id})
        assert err.code == -32602 and err.data == {"reason": "invalid_state"}
        await client.call(
            "agent.respondToInput", {"run_id": first.data["run_id"], "message": "red"}
        )
        end = await wait_event(client, "cron.completed", timeout=LONG)
        assert end.data["cron_run_id"] == first.data["cron_run_id"]
        assert gw.cron.statistics().active_runs == 0


async def test_overlap_queue_runs_the_next_firing_after_the_previous(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (gw, client):
        job_id = await create(
            client, "every 1m", prompt="ask me which colour?", overlap_policy="queue"
        )
        first = await wait_event(client, "cron.triggered", timeout=LONG)
        await trio.sleep(150)
        stats = gw.cron.statistics()
        assert (stats.active_runs, stats.queued_runs) == (1, 1)
        got = await job(client, job_id)
        # 12:02 waits behind the first; 12:03 finds one waiting already.
        assert [(r["status"], r["scheduled_for"]) for r in got["recent_runs"]] == [
            ("skipped", ts(2026, 3, 27, 12, 3)),
            ("running", ts(2026, 3, 27, 12, 1)),
        ]
        assert "already queued" in got["recent_runs"][0]["error"]
        await client.call(
            "agent.respondToInput", {"run_id": first.data["run_id"], "message": "red"}
        )
        events = await cron_events(client, 2)
        assert [e.topic for e in events] == ["cron.completed", "cron.triggered"]
        assert events[1].data["scheduled_for"] == ts(2026, 3, 27, 12, 2)
        await client.call("cron.delete", {"job_id": job_id})


async def test_max_concurrent_holds_firings_back(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    config = Config(cron=CronConfig(max_concurrent=1))
    async with cron_gateway(data_dir, wall, config) as (gw, client):
        await create(client, "0 13 * * *", name="a", prompt="ask me a?")
        await create(client, "0 13 * * *", name="b", prompt="ask me b?")
        first = await wait_event(client, "cron.triggered", timeout=LONG)
        await trio.sleep(60)
        stats = gw.cron.statistics()
        assert (stats.active_runs, stats.queued_runs) == (1, 1)
        await client.call("agent.respondToInput", {"run_id": first.data["run_id"], "message": "x"})
        events = await cron_events(client, 2)
        assert [e.topic for e in events] == ["cron.completed", "cron.triggered"]
        assert events[1].data["job_id"] != first.data["job_id"]
        assert events[1].data["scheduled_for"] == ts(2026, 3, 27, 13)


async def test_a_firing_ended_while_it_waits_still_ends_with_cron_failed(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    """Accepted but never started (it waited for a slot): still one record, one cron.failed."""
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    config = Config(cron=CronConfig(max_concurrent=1))
    async with cron_gateway(data_dir, wall, config) as (gw, client):
        jobs = {
            await create(client, "0 13 * * *", name="a", prompt="ask me a?"),
            await create(client, "0 13 * * *", name="b", prompt="ask me b?"),
        }
        first = await wait_event(client, "cron.triggered", timeout=LONG)
        # Both are due at once; whichever took the one slot runs, the other waits.
        running = first.data["job_id"]
        (waiting,) = jobs - {running}
        await trio.sleep(60)
        got = await job(client, waiting)
        assert got["recent_runs"] == [] and gw.cron.statistics().queued_runs == 1
        await client.call("cron.delete", {"job_id": waiting})
        end = await wait_event(client, "cron.failed", timeout=5)
        assert end.data == {
            "job_id": waiting,
            "cron_run_id": end.data["cron_run_id"],
            "run_id": None,
            "status": "cancelled",
            "duration_ms": 0,
            "error": "the job was deleted, before it started",
        }
    async with cron_gateway(data_dir, wall, config) as (_, client):
        runs = (await job(client, running))["recent_runs"]
        assert [(r["status"], r["error"]) for r in runs] == [("cancelled", "gateway shutting down")]


async def test_deleting_a_job_cancels_its_firing(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (gw, client):
        job_id = await create(client, "every 1m", prompt="ask me anything?")
        triggered = await wait_event(client, "cron.triggered", timeout=LONG)
        assert await client.call("cron.delete", {"job_id": job_id}) == {"deleted": True}
        # It has ended when the answer comes: state, then the event.
        run = await client.call("agent.status", {"run_id": triggered.data["run_id"]})
        assert run["status"] == "cancelled"
        end = await wait_event(client, "cron.failed", timeout=5)
        assert end.data["status"] == "cancelled" and end.data["error"] == "the job was deleted"
        assert (await call_error(client, "cron.get", {"job_id": job_id})).code == -32004
        assert gw.cron.statistics() == attrs.evolve(gw.cron.statistics(), jobs=0, active_runs=0)
        with trio.move_on_after(600):
            event = await client.next_event()
            pytest.fail(f"a deleted job went on: {event.topic} {event.data}")
    async with open_sqlite_store(data_dir / "gateway.db") as store:
        assert await store.recent_cron_runs(job_id, limit=10) == []


async def test_stopping_the_gateway_ends_a_firing_as_cancelled(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (gw, client):
        job_id = await create(client, "every 1h", prompt="ask me later?")
        triggered = await wait_event(client, "cron.triggered", timeout=LONG)
        bus = gw.bus
    ends = [event_data(e) for e in bus._ring if e.topic in ("cron.completed", "cron.failed")]
    assert [end.pop("duration_ms") >= 0 for end in ends] == [True]
    assert ends == [
        {
            "job_id": job_id,
            "cron_run_id": triggered.data["cron_run_id"],
            "run_id": triggered.data["run_id"],
            "status": "cancelled",
            "error": "gateway shutting down",
        }
    ]
    async with cron_gateway(data_dir, wall) as (_, client):
        got = await job(client, job_id)
        assert got["recent_runs"][0]["status"] == "cancelled"
        assert got["last_status"] == "cancelled" and got["next_run_at"] == ts(2026, 3, 27, 14)


async def test_one_shot_fires_once_and_disables_itself(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (_, client):
        job_id = await create(client, "at 2026-03-27T13:30:00+01:00")
        assert (await job(client, job_id))["next_run_at"] == ts(2026, 3, 27, 12, 30)
        triggered, end = await firing(client)
        assert triggered.data["scheduled_for"] == ts(2026, 3, 27, 12, 30)
        assert end.topic == "cron.completed"
        got = await job(client, job_id)
        assert got["enabled"] is False and got["next_run_at"] is None
        assert got["last_status"] == "completed"
        err = await call_error(client, "cron.resume", {"job_id": job_id})
        assert err.code == -32602 and err.data == {"reason": "invalid_state"}
        # It can still be run by hand.
        assert (await client.call("cron.trigger", {"job_id": job_id}))["triggered"] is True
        await firing(client)
        assert (await job(client, job_id))["enabled"] is False


async def test_pause_resume_and_trigger(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (_, client):
        job_id = await create(client, "every 10m")
        assert await client.call("cron.pause", {"job_id": job_id}) == {"paused": True}
        got = await job(client, job_id)
        assert got["enabled"] is False and got["next_run_at"] is None
        with trio.move_on_after(3600):
            event = await client.next_event()
            pytest.fail(f"a paused job fired: {event.topic}")
        result = await client.call("cron.trigger", {"job_id": job_id})
        triggered, end = await firing(client)
        assert triggered.data["trigger"] == "manual" and triggered.data["scheduled_for"] is None
        assert result == {
            "triggered": True,
            "run_id": triggered.data["run_id"],
            "cron_run_id": triggered.data["cron_run_id"],
        }
        assert end.topic == "cron.completed"
        resumed = await client.call("cron.resume", {"job_id": job_id})
        # From 13:00:00 on the grid of its creation time (12:00), not ten minutes from now.
        assert resumed == {"resumed": True, "next_run_at": ts(2026, 3, 27, 13, 10)}
        triggered, _ = await firing(client)
        assert triggered.data["scheduled_for"] == ts(2026, 3, 27, 13, 10)
        runs = (await job(client, job_id))["recent_runs"]
        assert [r["trigger"] for r in runs] == ["schedule", "manual"]


# -- faults --------------------------------------------------------------------------------------


QUIET_TOML = """
[server]
ping_interval_s = 86400
ping_timeout_s = 86400
"""
AGENTS = """
[providers.remote]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
models = ["m1"]

[agents.helper]
description = "goes away"
"""


async def test_a_vanished_agent_or_model_fails_the_firing_and_keeps_the_schedule(
    data_dir: Path, tmp_path: Path, patient_clock: trio.testing.MockClock
) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(QUIET_TOML + AGENTS)
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    clock = WallClock(wall.now, recheck_s=math.inf)
    async with (
        open_gateway(
            config_path=config_file, data_dir=data_dir, watch_config=False, wall_clock=clock
        ) as gw,
        gw.connect() as client,
    ):
        await client.subscribe(["cron.*"])
        helper = await create(client, "0 13 * * *", name="helper", agent_id="helper")
        remote = await create(client, "0 13 * * *", name="remote", model="remote/m1")
        config_file.write_text(QUIET_TOML)
        assert (await client.call("config.reload"))["reloaded"] is True
        events = await cron_events(client, 4)
        assert [e.topic for e in events].count("cron.failed") == 2
        failed = {e.data["job_id"]: e.data for e in events if e.topic == "cron.failed"}
        assert "agent not found: helper" in failed[helper]["error"]
        assert "unknown model 'remote/m1'" in failed[remote]["error"]
        assert all(e["run_id"] is None for e in failed.values())
        for job_id in (helper, remote):
            got = await job(client, job_id)
            assert got["enabled"] is True and got["next_run_at"] == ts(2026, 3, 28, 13)
            assert got["recent_runs"][0]["status"] == "failed"
        err = await call_error(client, "cron.trigger", {"job_id": helper})
        assert err.code == -32004
        assert (await client.call("health"))["services"]["cron"] == "running"


async def test_one_broken_job_does_not_stop_the_scheduler(
    data_dir: Path, patient_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aleph_trio.cron import _service as _cron

    real = _cron.plan_due

    def plan_due(schedule: Any, **kwargs: Any) -> Any:
        if schedule.text == "every 2m":
            raise RuntimeError("boom")
        return real(schedule, **kwargs)

    monkeypatch.setattr(_cron, "plan_due", plan_due)
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    async with cron_gateway(data_dir, wall) as (gw, client):
        broken = await create(client, "every 2m")
        healthy = await create(client, "every 3m")
        triggered, end = await firing(client)
        assert triggered.data["job_id"] == healthy and end.topic == "cron.completed"
        assert (await client.call("health"))["services"]["cron"] == "running"
        assert (await job(client, broken))["next_run_at"] is None
        errors = [e for e in gw.logs.tail(100) if e["level"] == "error"]
        assert any(broken in e["message"] for e in errors)
        monkeypatch.undo()  # the fault is gone: resume schedules the parked job again
        resumed = await client.call("cron.resume", {"job_id": broken})
        assert resumed["next_run_at"] == ts(2026, 3, 27, 12, 4)
        triggered, end = await firing(client)
        assert triggered.data["job_id"] == broken and end.topic == "cron.completed"


# -- the store -----------------------------------------------------------------------------------


async def test_the_store_keeps_jobs_and_a_bounded_history(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "gateway.db") as store:
        stored = CronJob(
            "job_a", "a", "@daily", "UTC", "main", "echo: a", "agent:main:cron:job_a", True,
            "run_once", "skip", "2026-01-01T00:00:00.000Z", next_run_at=ts(2026, 1, 2),
        )  # fmt: skip
        assert await store.insert_cron_job(stored)
        assert not await store.insert_cron_job(attrs.evolve(stored, job_id="job_b"))  # name
        runs = [CronRun(f"crun_{i}", "job_a", "schedule", "missed") for i in range(5)]
        assert await store.save_cron_job(stored, runs[:3], keep_runs=3)
        assert await store.save_cron_job(stored, runs[3:], keep_runs=3)
        newest = await store.recent_cron_runs("job_a", limit=10)
        assert [r.cron_run_id for r in newest] == ["crun_4", "crun_3", "crun_2"]
        running = CronRun("crun_r", "job_a", "manual", "running", started_at=ts(2026, 1, 1))
        assert await store.save_cron_job(attrs.evolve(stored, last_status="running"), [running],
                                         keep_runs=3)  # fmt: skip
        [failed] = await store.fail_unfinished_cron_runs("interrupted by gateway restart", LIVE)
        assert failed.cron_run_id == "crun_r" and failed.status == "failed"
        assert failed.finished_at is not None
        [loaded] = await store.list_cron_jobs()
        assert loaded == attrs.evolve(stored, last_status="failed")
        assert await store.delete_cron_job("job_a")
        assert not await store.delete_cron_job("job_a")
        assert await store.recent_cron_runs("job_a", limit=10) == []
        # A job that is gone records nothing.
        assert not await store.save_cron_job(stored, [running], keep_runs=3)
        assert await store.recent_cron_runs("job_a", limit=10) == []


# -- long stretches of virtual time --------------------------------------------------------------


@attrs.define
class MemoryCronStore:
    """The six store calls the scheduler makes, in memory (no worker threads)."""

    jobs: dict[str, CronJob] = attrs.Factory(dict)
    runs: dict[str, CronRun] = attrs.Factory(dict)  #: in the order first recorded

    async def fail_unfinished_cron_runs(self, error: str, statuses: object) -> list[CronRun]:
        await trio.lowlevel.checkpoint()
        return []

    async def list_cron_jobs(self) -> list[CronJob]:
        await trio.lowlevel.checkpoint()
        return list(self.jobs.values())

    async def insert_cron_job(self, job: CronJob) -> bool:
        await trio.lowlevel.checkpoint()
        return self.jobs.setdefault(job.job_id, job) is job

    async def save_cron_job(self, job: CronJob, runs: Any = (), *, keep_runs: int) -> bool:
        await trio.lowlevel.checkpoint()
        self.jobs[job.job_id] = job
        self.runs.update((run.cron_run_id, run) for run in runs)
        return True


@attrs.define
class InstantRuns:
    """Agent runs that take ``seconds`` of virtual time and complete; notes when each started."""

    wall: FakeWall
    seconds: float
    started: list[dt.datetime] = attrs.Factory(list)

    async def start(self, message: str, **params: Any) -> Run:
        self.started.append(self.wall.now())
        return Run(f"run_{len(self.started)}", params["session_key"], "main", "m", "running", "")

    def live(self, run_id: str) -> None:
        return None

    async def wait_finished(self, run_id: str) -> Run:
        await trio.sleep(self.seconds)
        return Run(run_id, "", "main", "m", "completed", "")


async def test_every_90s_for_24_hours_without_drift(autojump_clock: trio.testing.MockClock) -> None:
    """The scheduler alone over 24 virtual hours: 960 firings, each started exactly on the
    anchor's 90 s grid, none late, none twice, however long the previous one took.

    The store and the agent runs are in-memory stand-ins here. With the real store, Trio's
    virtual clock jumps while a worker thread writes (``autojump_clock``), so every write looks
    90 s long and the firings pile up; ``patient_clock`` avoids that at 50 ms of real time per
    firing (48 s for this test). The real store's part is covered by the tests above."""
    wall = FakeWall(dt.datetime(2026, 6, 1, 8, 0, 0, 123000, tzinfo=UTC))
    runs = InstantRuns(wall, seconds=37.5)
    store = MemoryCronStore()
    config = Config()
    service = CronService(
        store=store,  # type: ignore[arg-type]
        bus=EventBus(encode=encode_event),
        runs=runs,  # type: ignore[arg-type]
        models=ModelCatalog(config, httpx.AsyncClient()),
        settings=lambda: config,
        clock=WallClock(wall.now, recheck_s=math.inf),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        created = await service.create(
            name="tick", schedule="every 90s", agent_id="main", prompt="echo: tick"
        )
        await trio.sleep(24 * 3600 + 60)  # the 960th has ended, the 961st is not due
        nursery.cancel_scope.cancel()
    grid = [wall.base + k * dt.timedelta(seconds=90) for k in range(1, 961)]
    assert runs.started == grid
    recorded = [r for r in store.runs.values() if r.job_id == created.job_id]
    assert [r.scheduled_for for r in recorded] == [format_ts(t) for t in grid]
    assert {(r.status, r.trigger) for r in recorded} == {("completed", "schedule")}
    assert store.jobs[created.job_id].next_run_at == format_ts(grid[-1] + dt.timedelta(seconds=90))


async def test_month_ends_and_a_leap_day_through_the_scheduler(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2028, 1, 30, tzinfo=UTC))
    clock = WallClock(wall.now, recheck_s=math.inf)
    async with open_gateway(Config(), data_dir=data_dir, wall_clock=clock) as gw:
        last = await gw.cron.create(
            name="last", schedule="0 12 L * *", agent_id="main", prompt="echo: month end"
        )
        leap = await gw.cron.create(
            name="leap", schedule="0 0 29 2 *", agent_id="main", prompt="echo: leap day"
        )
        await trio.sleep(61 * 86400 + 1)  # to 2028-03-31T00:00:01Z ... and past the last noon
        await trio.sleep(12 * 3600)
        fired = [(event_data(e)["job_id"], event_data(e)["scheduled_for"])
                 for e in gw.bus._ring if e.topic == "cron.triggered"]  # fmt: skip
        ends = [e.topic for e in gw.bus._ring if e.topic.startswith("cron.") and e.topic != (
            "cron.triggered")]  # fmt: skip
    assert fired == [
        (last.job_id, ts(2028, 1, 31, 12)),
        (leap.job_id, ts(2028, 2, 29)),
        (last.job_id, ts(2028, 2, 29, 12)),
        (last.job_id, ts(2028, 3, 31, 12)),
    ]
    assert ends == ["cron.completed"] * 4
