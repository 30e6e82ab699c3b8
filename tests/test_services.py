"""The services registry (PROTOCOL §15): supervision, restarts with backoff, and the
``services.*`` methods and events, through a real gateway.

Registry tests drive it with small services written here (what a plugin task looks like to
it) on ``autojump_clock``, so backoffs of seconds take none. The cron tests run on
``patient_clock`` with a wall clock derived from it, as in ``test_cron.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, WallClock, open_gateway
from aleph_trio.auth import Principal
from aleph_trio.kernel import (
    InvalidState,
    NotFound,
    OperationFailed,
    RestartPolicy,
    ServerConfig,
    ServiceRegistry,
)
from aleph_trio.protocol import AlephError
from runhelp import assert_quiet, wait_event

POLICY = RestartPolicy(restart=True, backoff_s=1, max_backoff_s=4, max_failures=5, stable_s=60)


@attrs.define
class Flaky:
    """A service that fails its first ``failures`` starts, then serves until cancelled."""

    failures: int
    starts: list[float] = attrs.Factory(list)
    cancelled: int = 0
    running: trio.Event = attrs.Factory(trio.Event)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        if len(self.starts) <= self.failures:
            raise RuntimeError(f"boom {len(self.starts)}")
        task_status.started()
        self.running.set()
        try:
            await trio.sleep_forever()
        finally:
            self.cancelled += 1


@attrs.define
class Recorder:
    """Stands in for the event bus: records what the registry publishes, in order."""

    published: list[tuple[str, dict[str, Any]]] = attrs.Factory(list)

    def publish(self, topic: str, data: dict[str, Any], **_: Any) -> None:
        self.published.append((topic, dict(data)))


def registry_with(recorder: Recorder) -> ServiceRegistry:
    return ServiceRegistry(recorder)  # type: ignore[arg-type]


async def test_a_failing_service_is_restarted_with_doubling_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Recorder()
    registry = registry_with(bus)
    flaky = Flaky(failures=3)
    async with trio.open_nursery() as nursery:
        await registry.start(nursery, "flaky", flaky.serve, policy=POLICY)
        assert registry.get("flaky").status == "failed"  # start returns after the first failure
        with trio.fail_after(100):
            await flaky.running.wait()
        gaps = [b - a for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)]
        assert gaps == [1, 2, 4]
        state = registry.get("flaky")
        assert state.restarts == 3 and state.error == "RuntimeError: boom 3"
        assert state.to_json()["started_at"] is not None
        seen = [t for t, _ in bus.published]
        assert seen == ["services.failed", "services.restarting"] * 3 + ["services.started"]
        await registry.stop("flaky")
        assert flaky.cancelled == 1 and registry.get("flaky").status == "stopped"
        assert bus.published[-1] == ("services.stopped", {"name": "flaky"})
        nursery.cancel_scope.cancel()


async def test_a_service_that_keeps_failing_is_given_up_then_started_by_hand(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = registry_with(Recorder())
    flaky = Flaky(failures=7)
    async with trio.open_nursery() as nursery:
        await registry.start(nursery, "flaky", flaky.serve, policy=POLICY)
        await trio.sleep(1000)  # long past every backoff: given up
        assert registry.get("flaky").status == "failed"
        assert len(flaky.starts) == 5 and registry.get("flaky").restarts == 4
        with pytest.raises(OperationFailed, match="boom 6"):
            await registry.resume("flaky")  # fails again: counted afresh, so it retries
        with trio.fail_after(100):
            await flaky.running.wait()
        assert len(flaky.starts) == 8
        nursery.cancel_scope.cancel()


async def test_stopping_during_a_backoff_stops_and_starting_retries_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = registry_with(Recorder())
    flaky = Flaky(failures=1)
    async with trio.open_nursery() as nursery:
        await registry.start(nursery, "flaky", flaky.serve, policy=POLICY)
        await registry.stop("flaky")  # while waiting out the first backoff
        assert registry.get("flaky").status == "stopped" and len(flaky.starts) == 1
        await registry.resume("flaky")
        assert registry.get("flaky").status == "running"
        flaky2 = Flaky(failures=2)
        await registry.start(nursery, "other", flaky2.serve, policy=POLICY)
        before = trio.current_time()
        with pytest.raises(OperationFailed, match="boom 2"):
            await registry.resume("other")  # in its backoff: tried now, and fails again
        assert trio.current_time() == before
        nursery.cancel_scope.cancel()


async def test_added_without_waiting_finite_blocked_and_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What a host of short-lived tasks needs (a plugin): ``start_soon``, a finite service that
    leaves when it returns, ``blocked`` refusing ``resume``, and ``forget``."""
    bus = Recorder()
    registry = registry_with(bus)
    release = trio.Event()
    reason: list[str] = []

    async def job(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await release.wait()

    async with trio.open_nursery() as nursery:
        registry.start_soon(nursery, "job", job, finite=True)
        assert registry.get("job").status == "starting"  # listed before it first runs
        with pytest.raises(InvalidState):
            registry.start_soon(nursery, "job", job, finite=True)  # it is active
        with pytest.raises(InvalidState):
            registry.forget("job")  # still active
        await trio.sleep(1)
        assert registry.get("job").status == "running"
        release.set()
        await trio.sleep(1)
        assert "job" not in registry.statuses()  # returned: finished, and gone
        assert bus.published[-1] == ("services.stopped", {"name": "job"})

        release = trio.Event()
        registry.start_soon(
            nursery, "held", job, finite=True, blocked=lambda: reason[0] if reason else None
        )
        await trio.sleep(1)
        await registry.stop("held")  # stopped, not finished: it stays, to be started again
        assert registry.get("held").status == "stopped"
        reason.append("its host is gone")
        with pytest.raises(InvalidState, match="its host is gone"):
            await registry.resume("held")
        reason.clear()
        await registry.resume("held")
        assert registry.get("held").status == "running"
        await registry.stop("held")
        registry.forget("held")
        registry.forget("held")  # a no-op once gone
        with pytest.raises(NotFound):
            registry.get("held")


async def test_services_methods(client: Client, gateway: Gateway) -> None:
    listed = (await client.call("services.list"))["services"]
    assert [s["name"] for s in listed] == ["browser", "cron", "plugins", "poe", "runs", "wizards"]
    assert all(s["status"] == "running" and s["restarts"] == 0 for s in listed)
    assert all(s["started_at"] and "error" not in s for s in listed)
    assert await client.call("services.status", {"name": "cron"}) == listed[1]
    with pytest.raises(AlephError) as err:
        await client.call("services.stop", {"name": "runs"})
    assert err.value.code == -32602 and err.value.data["reason"] == "invalid_state"
    assert (await client.call("services.status", {"name": "runs"}))["status"] == "running"
    for method in ("services.start", "services.stop", "services.status"):
        with pytest.raises(AlephError) as err:
            await client.call(method, {"name": "nope"})
        assert err.value.code == -32004
        with pytest.raises(AlephError) as err:
            await client.call(method, {})
        assert err.value.code == -32602
    # Idempotent both ways.
    assert await client.call("services.start", {"name": "cron"}) == {"started": True}
    await client.subscribe(["services.*"])
    assert await client.call("services.stop", {"name": "cron"}) == {"stopped": True}
    assert (await wait_event(client, "services.stopped")).data == {"name": "cron"}
    assert await client.call("services.stop", {"name": "cron"}) == {"stopped": True}
    assert await client.call("services.start", {"name": "cron"}) == {"started": True}
    assert (await wait_event(client, "services.started")).data == {"name": "cron"}
    assert (await client.call("health"))["services"] == {
        "browser": "running",
        "cron": "running",
        "plugins": "running",
        "poe": "running",
        "runs": "running",
        "wizards": "running",
    }


async def test_services_are_for_the_owner_only(gateway: Gateway) -> None:
    guest = Principal("guest", "g-1", ("services.*", "events.*"), invitation_id="inv_1")
    gateway.auth.guest_resolvers.append(lambda token: guest if token == "guest-token" else None)
    async with gateway.connect(token="guest-token") as g, gateway.connect() as owner:
        for method in ("services.list", "services.status"):
            with pytest.raises(AlephError) as err:
                await g.call(method, {"name": "cron"} if method.endswith("status") else None)
            assert err.value.code == -32002
        await g.subscribe(["services.*"])
        await owner.call("services.stop", {"name": "cron"})
        await assert_quiet(g, gateway.bus, principal_id="g-1")


@attrs.define
class FakeWall:
    base: dt.datetime

    def now(self) -> dt.datetime:
        return self.base + dt.timedelta(seconds=trio.current_time())


async def test_stopping_cron_stops_firings_and_starting_resumes_them(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    wall = FakeWall(dt.datetime(2026, 3, 27, 12, 0, 0, tzinfo=dt.UTC))
    config = Config(server=ServerConfig(ping_interval_s=86_400, ping_timeout_s=86_400))
    clock = WallClock(wall.now, recheck_s=float("inf"))
    async with (
        open_gateway(config, data_dir=data_dir, wall_clock=clock) as gw,
        gw.connect() as c,
    ):
        await c.subscribe(["cron.*"])
        params = {"name": "j", "schedule": "every 1m", "agent_id": "main", "prompt": "echo: hi"}
        job_id = (await c.call("cron.create", params))["job_id"]
        first = await wait_event(c, "cron.completed", timeout=600)
        assert first.data["job_id"] == job_id
        await c.call("services.stop", {"name": "cron"})
        assert (await c.call("cron.status"))["running"] is False
        with pytest.raises(AlephError) as err:
            await c.call("cron.trigger", {"job_id": job_id})
        assert err.value.code == -32602 and "stopped" in err.value.message
        await trio.sleep(300)  # five fire times pass while stopped
        await assert_quiet(c, gw.bus, subscribe=True)
        await c.call("services.start", {"name": "cron"})
        triggered = await wait_event(c, "cron.triggered", timeout=600)
        assert triggered.data["job_id"] == job_id  # the missed time is caught up once
        assert (await c.call("cron.status"))["running"] is True
        scheduled = await wait_event(c, "cron.triggered", timeout=600)
        assert scheduled.data["trigger"] == "schedule"
