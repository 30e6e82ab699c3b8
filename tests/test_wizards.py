"""The wizard engine (PROTOCOL §11) through the real gateway: the ``cron_job`` and ``identity``
flows end to end, typed answers, ``next``, ``cancel``, retention and idle cancellation on a
virtual clock, sessions that outlive their connection, and guests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, WallClock, open_gateway
from aleph_trio.auth import Principal
from aleph_trio.kernel import ServerConfig
from aleph_trio.protocol import AlephError, ErrorCode
from aleph_trio.wizards import (
    Flow,
    Option,
    Step,
    WizardUI,
    confirm,
    multiselect,
    note,
    select,
    text,
)
from runhelp import wait_event


async def call_error(client: Client, method: str, params: dict[str, Any]) -> AlephError:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    return err.value


async def answer(client: Client, session: str, step: dict[str, Any], value: Any) -> dict[str, Any]:
    result: dict[str, Any] = await client.call(
        "wizard.answer", {"session_id": session, "step_id": step["id"], "value": value}
    )
    return result


@attrs.frozen
class DemoInitial:
    pass


async def demo_flow(ui: WizardUI, initial: DemoInitial) -> Step | None:
    """Every step type: a note, a multiselect, a select, a text with a check, a confirm."""
    await ui.note("Welcome", "This is a demonstration.")
    colours = await ui.ask(
        multiselect(
            "Colours",
            [Option("red", "Red"), Option("blue", "Blue", "calm")],
            required=True,
        )
    )
    size = await ui.ask(select("Size", [Option("s", "Small"), Option("l", "Large")], default="s"))

    async def even(value: str) -> int:
        if not value.isdigit() or int(value) % 2:
            from aleph_trio.kernel import InvalidArgument

            raise InvalidArgument.field("$.value", "expected an even number")
        return int(value)

    count = await ui.ask(text("Count", "An even number.", check=even))
    if await ui.ask(confirm("Finish?")):
        return note("Done", f"{colours} {size} {count}")
    return None


@pytest.fixture
def with_demo(gateway: Gateway) -> Gateway:
    gateway.wizards.flows["demo"] = Flow("demo", "every step type", demo_flow, DemoInitial)
    return gateway


# -- the engine ----------------------------------------------------------------------------------


async def test_every_step_type_with_typed_answers(with_demo: Gateway, client: Client) -> None:
    started = await client.call("wizard.start", {"wizard_type": "demo"})
    assert started["status"] == "running"
    session = started["session_id"]
    welcome = started["step"]
    assert welcome == {
        "id": "step-1",
        "type": "note",
        "title": "Welcome",
        "message": "This is a demonstration.",
    }
    # A note is not answered with a value; next goes on past it.
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": "step-1", "value": "x"}
    )
    assert err.code == ErrorCode.INVALID_PARAMS
    moved = await client.call("wizard.next", {"session_id": session})
    colours = moved["step"]
    assert moved["done"] is False
    assert colours["type"] == "multiselect"
    assert colours["options"] == [
        {"value": "red", "label": "Red"},
        {"value": "blue", "label": "Blue", "hint": "calm"},
    ]
    # next on an interactive step shows it again, at once, however often.
    for _ in range(3):
        with trio.fail_after(5):
            again = await client.call("wizard.next", {"session_id": session})
        assert again == {"done": False, "status": "running", "step": colours}
    for wrong, words in [
        ("red", "list of option values"),
        (["green"], "not an option: green"),
        (["red", "red"], "more than once"),
        ([], "at least one"),
    ]:
        err = await call_error(
            client,
            "wizard.answer",
            {"session_id": session, "step_id": colours["id"], "value": wrong},
        )
        assert err.code == ErrorCode.INVALID_PARAMS
        assert words in err.message
        assert err.data is not None and err.data["errors"][0]["path"] == "$.value"
        status = await client.call("wizard.status", {"session_id": session})
        assert status == {"status": "running", "step": colours}
    size = (await answer(client, session, colours, ["blue", "red"]))["step"]
    assert size["type"] == "select" and size["default"] == "s"
    for wrong in [True, 3, "m", None]:
        err = await call_error(
            client, "wizard.answer", {"session_id": session, "step_id": size["id"], "value": wrong}
        )
        assert "expected one of: s, l" in err.message
    count = (await answer(client, session, size, "l"))["step"]
    assert count["type"] == "text" and count["required"] is True
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": count["id"], "value": 4}
    )
    assert "expected a string" in err.message
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": count["id"], "value": "3"}
    )
    assert "expected an even number" in err.message  # the step's own check, run by the flow
    assert (await client.call("wizard.status", {"session_id": session}))["step"] == count
    finish = (await answer(client, session, count, "4"))["step"]
    # A stale step id is refused and names the current one.
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": count["id"], "value": "4"}
    )
    assert err.code == ErrorCode.INVALID_PARAMS
    assert err.data is not None and err.data["current_step_id"] == finish["id"]
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": finish["id"], "value": "yes"}
    )
    assert "true or false" in err.message
    done = await answer(client, session, finish, True)
    assert done["done"] is True and done["status"] == "done"
    assert done["step"]["type"] == "note"
    assert done["step"]["message"] == "['blue', 'red'] l 4"
    assert await client.call("wizard.status", {"session_id": session}) == {
        "status": "done",
        "step": done["step"],
    }
    # A finished session takes no more answers, and says why.
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": finish["id"], "value": True}
    )
    assert err.code == ErrorCode.INVALID_PARAMS
    assert err.data is not None and err.data["reason"] == "invalid_state"
    assert (await client.call("wizard.next", {"session_id": session}))["done"] is True


async def test_unknown_type_session_and_bad_initial_data(client: Client) -> None:
    err = await call_error(client, "wizard.start", {"wizard_type": "onboarding"})
    assert err.code == ErrorCode.INVALID_PARAMS
    assert "unknown wizard type 'onboarding'" in err.message
    assert "cron_job, identity, setup" in err.message
    err = await call_error(
        client, "wizard.start", {"wizard_type": "identity", "initial_data": {"colour": "red"}}
    )
    assert err.code == ErrorCode.INVALID_PARAMS
    assert err.data is not None and err.data["errors"][0]["path"] == "$.initial_data.colour"
    err = await call_error(
        client,
        "wizard.start",
        {"wizard_type": "cron_job", "initial_data": {"timezone": "Mars/Olympus"}},
    )
    assert "$.initial_data.timezone" in err.message
    for method in ("wizard.status", "wizard.next", "wizard.cancel"):
        err = await call_error(client, method, {"session_id": "wiz_nope"})
        assert err.code == ErrorCode.RESOURCE_NOT_FOUND
        assert err.data == {"resource": "wizard session", "id": "wiz_nope"}
    err = await call_error(
        client, "wizard.answer", {"session_id": "wiz_nope", "step_id": "step-1", "value": 1}
    )
    assert err.code == ErrorCode.RESOURCE_NOT_FOUND
    # setup writes the config file; a gateway given its config directly has none.
    err = await call_error(client, "wizard.start", {"wizard_type": "setup"})
    assert err.data is not None and err.data["reason"] == "invalid_state"
    assert "no config file" in err.message


async def test_cancel_ends_the_flow_and_its_session(gateway: Gateway, client: Client) -> None:
    started = await client.call("wizard.start", {"wizard_type": "identity"})
    session = started["session_id"]
    assert await client.call("wizard.cancel", {"session_id": session}) == {"cancelled": True}
    status = await client.call("wizard.status", {"session_id": session})
    assert status == {"status": "cancelled", "error": "cancelled by wizard.cancel"}
    err = await call_error(
        client,
        "wizard.answer",
        {"session_id": session, "step_id": started["step"]["id"], "value": "Ada"},
    )
    assert err.data is not None and err.data["reason"] == "invalid_state"
    assert await client.call("wizard.cancel", {"session_id": session}) == {"cancelled": False}
    assert gateway.wizards.running() == 0


async def test_a_session_outlives_its_connection(gateway: Gateway) -> None:
    async with gateway.connect() as first:
        started = await first.call("wizard.start", {"wizard_type": "identity"})
        session = started["session_id"]
    async with gateway.connect() as second:
        persona = await answer(second, session, started["step"], "Ada")
        assert persona["step"]["title"] == "Persona"
        status = await second.call("wizard.status", {"session_id": session})
        assert status == {"status": "running", "step": persona["step"]}


# -- the flows -----------------------------------------------------------------------------------


async def test_identity_flow_creates_and_activates_an_identity(client: Client) -> None:
    await client.call("events.subscribe", {"patterns": ["wizard.*"]})
    started = await client.call(
        "wizard.start", {"wizard_type": "identity", "initial_data": {"name": "Ada"}}
    )
    session = started["session_id"]
    name = started["step"]
    assert name["type"] == "text" and name["default"] == "Ada"
    event = await wait_event(client, "wizard.step", timeout=5)
    assert event.data == {"session_id": session, "status": "running", "step": name}
    persona = (await answer(client, session, name, "Ship's Log"))["step"]
    assert persona["title"] == "Persona"
    assert (await wait_event(client, "wizard.step", timeout=5)).data["step"] == persona
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": persona["id"], "value": "  "}
    )
    assert "must not be blank" in err.message
    check = (await answer(client, session, persona, "Terse, in nautical terms."))["step"]
    assert check["type"] == "confirm" and "Terse, in nautical terms." in check["message"]
    done = await answer(client, session, check, True)
    assert done["status"] == "done"
    assert "ship-s-log" in done["step"]["message"]
    last = await wait_event(client, "wizard.step", timeout=5)
    last = (
        await wait_event(client, "wizard.step", timeout=5) if last.data["step"] == check else last
    )
    assert last.data["status"] == "done"
    active = await client.call("identity.get")
    assert active["id"] == "ship-s-log"
    assert active["name"] == "Ship's Log"
    assert active["persona"] == "Terse, in nautical terms."
    # The same name again makes a new identity rather than changing that one.
    again = await client.call("wizard.start", {"wizard_type": "identity"})
    step = again["step"]
    for value in ["Ship's Log", "Another voice.", True]:
        step = (await answer(client, again["session_id"], step, value))["step"]
    assert (await client.call("identity.get"))["id"] == "ship-s-log-2"
    ids = [i["id"] for i in (await client.call("identity.list"))["identities"]]
    assert "ship-s-log" in ids and "ship-s-log-2" in ids


async def test_identity_flow_declined_changes_nothing(client: Client) -> None:
    before = await client.call("identity.get")
    started = await client.call("wizard.start", {"wizard_type": "identity"})
    step = started["step"]
    for value in ["Bob", "Plain."]:
        step = (await answer(client, started["session_id"], step, value))["step"]
    done = await answer(client, started["session_id"], step, False)
    assert done["status"] == "done" and done["step"]["title"] == "No identity was created"
    assert await client.call("identity.get") == before


@pytest.fixture
def config() -> Config:
    from aleph_trio.kernel import AgentConfig

    return Config(agents={"main": AgentConfig(), "scribe": AgentConfig(name="Scribe")})


async def test_cron_job_flow_checks_the_schedule_live_and_creates_the_job(
    client: Client,
) -> None:
    await client.call(
        "cron.create",
        {"name": "taken", "schedule": "@daily", "agent_id": "main", "prompt": "hi"},
    )
    started = await client.call("wizard.start", {"wizard_type": "cron_job"})
    session = started["session_id"]
    name = started["step"]
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": name["id"], "value": "taken"}
    )
    assert "a job named 'taken' exists already" in err.message
    schedule = (await answer(client, session, name, "nightly report"))["step"]
    assert schedule["title"] == "Schedule"
    for bad in ["61 * * * *", "every 0m", "at 2001-01-01T00:00:00Z", "whenever"]:
        err = await call_error(
            client,
            "wizard.answer",
            {"session_id": session, "step_id": schedule["id"], "value": bad},
        )
        assert err.code == ErrorCode.INVALID_PARAMS
        status = await client.call("wizard.status", {"session_id": session})
        assert status["step"] == schedule
    agent = (await answer(client, session, schedule, "30 2 * * *"))["step"]
    assert agent["type"] == "select"
    assert "Runs: At 02:30" in agent["message"]  # the schedule in words, shown live
    assert [o["value"] for o in agent["options"]] == ["main", "scribe"]
    assert agent["default"] == "main"
    prompt = (await answer(client, session, agent, "scribe"))["step"]
    check = (await answer(client, session, prompt, "Summarise the day."))["step"]
    assert check["type"] == "confirm" and "Summarise the day." in check["message"]
    done = await answer(client, session, check, True)
    assert done["status"] == "done" and done["step"]["title"] == "Job created"
    jobs = (await client.call("cron.list"))["jobs"]
    job = next(j for j in jobs if j["name"] == "nightly report")
    assert job["schedule"] == "30 2 * * *"
    assert job["agent_id"] == "scribe"
    assert job["prompt"] == "Summarise the day."
    assert job["job_id"] in done["step"]["message"]


# -- time ----------------------------------------------------------------------------------------


async def test_idle_sessions_are_cancelled_and_finished_ones_forgotten(
    data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    # The scheduler and the pinger wake hourly only: each wake-up costs the clock 50 ms.
    wall = WallClock(recheck_s=3600)
    quiet = Config(server=ServerConfig(ping_interval_s=3600, ping_timeout_s=3600))
    async with (
        open_gateway(quiet, data_dir=data_dir, wall_clock=wall) as gw,
        gw.connect() as client,
    ):
        started = await client.call("wizard.start", {"wizard_type": "identity"})
        session = started["session_id"]
        await trio.sleep(29 * 60)
        # Answering moves the idle limit on: 29 more minutes are fine.
        step = (await answer(client, session, started["step"], "Ada"))["step"]
        await trio.sleep(29 * 60)
        assert (await client.call("wizard.status", {"session_id": session}))["step"] == step
        await trio.sleep(2 * 60)  # 31 minutes since the answer: cancelled a minute ago
        status = await client.call("wizard.status", {"session_id": session})
        assert status == {
            "status": "cancelled",
            "error": "cancelled after 30 minutes without an answer",
        }
        await trio.sleep(8 * 60)
        assert (await client.call("wizard.status", {"session_id": session}))["status"] == (
            "cancelled"
        )
        await trio.sleep(2 * 60)
        err = await call_error(client, "wizard.status", {"session_id": session})
        assert err.code == ErrorCode.RESOURCE_NOT_FOUND

        # A finished session is kept 10 minutes from the moment it finished.
        other = await client.call("wizard.start", {"wizard_type": "identity"})
        step = other["step"]
        for value in ["Bo", "Plain.", False]:
            step = (await answer(client, other["session_id"], step, value))["step"]
        await trio.sleep(9 * 60)
        status = await client.call("wizard.status", {"session_id": other["session_id"]})
        assert status["status"] == "done"
        await trio.sleep(2 * 60)
        err = await call_error(client, "wizard.status", {"session_id": other["session_id"]})
        assert err.code == ErrorCode.RESOURCE_NOT_FOUND


# -- guests --------------------------------------------------------------------------------------

GUEST = Principal("guest", "guest-1", ("wizard.*", "events.*"), invitation_id="inv_1")


@pytest.fixture
def guest_gateway(with_demo: Gateway) -> Gateway:
    with_demo.auth.guest_resolvers.append(lambda token: GUEST if token == "guest-token" else None)
    with_demo.wizards.flows["open"] = Flow(
        "open", "a flow for anyone", demo_flow, DemoInitial, owner_only=False
    )
    return with_demo


async def test_guests_may_not_start_owner_flows_nor_see_other_sessions(
    guest_gateway: Gateway, client: Client
) -> None:
    owned = await client.call("wizard.start", {"wizard_type": "demo"})
    async with guest_gateway.connect(token="guest-token") as guest:
        await guest.call("events.subscribe", {"patterns": ["wizard.*"]})
        for wizard_type in ("setup", "cron_job", "identity", "demo"):
            err = await call_error(guest, "wizard.start", {"wizard_type": wizard_type})
            assert err.code == ErrorCode.PERMISSION_DENIED
        err = await call_error(guest, "wizard.status", {"session_id": owned["session_id"]})
        assert err.code == ErrorCode.RESOURCE_NOT_FOUND
        err = await call_error(guest, "wizard.cancel", {"session_id": owned["session_id"]})
        assert err.code == ErrorCode.RESOURCE_NOT_FOUND
        mine = await guest.call("wizard.start", {"wizard_type": "open"})
        event = await wait_event(guest, "wizard.step", timeout=5)
        # The owner's session announced its steps before; the guest sees only its own.
        assert event.data["session_id"] == mine["session_id"]
        owner_view = await client.call("wizard.status", {"session_id": mine["session_id"]})
        assert owner_view["status"] == "running"
        assert await guest.call("wizard.cancel", {"session_id": mine["session_id"]}) == {
            "cancelled": True
        }


async def test_running_sessions_are_bounded(nursery: trio.Nursery) -> None:
    """The service on its own (a bus without a gateway): past ``max_running`` sessions a start
    is refused with reason ``limit``; a finished session makes room."""
    from aleph_trio.kernel import EventBus, LimitReached, NotFound
    from aleph_trio.protocol import encode_event
    from aleph_trio.wizards import WizardService

    flow = Flow("demo", "every step type", demo_flow, DemoInitial)
    service = WizardService(EventBus(encode=encode_event), [flow], max_running=2)
    await nursery.start(service.serve)
    first = await service.start("demo", None, principal_id=None)
    await service.start("demo", None, principal_id=None)
    with pytest.raises(LimitReached):
        await service.start("demo", None, principal_id=None)
    assert await service.cancel(first.session_id, principal_id=None) is True
    third = await service.start("demo", None, principal_id="guest-1")
    assert third.status == "running" and service.running() == 2
    with pytest.raises(NotFound):
        service.get(third.session_id, principal_id="guest-2")
    nursery.cancel_scope.cancel()
