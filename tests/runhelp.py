"""Helpers for tests that follow agent runs through their events."""

from __future__ import annotations

import json
from typing import Any

import trio

from aleph_trio import Client
from aleph_trio.client import ClientEvent
from aleph_trio.kernel import Event, EventBus

TERMINAL = frozenset({"agent.completed", "agent.error", "agent.cancelled"})


async def run_events(client: Client, run_id: str, *, timeout: float = 10) -> list[ClientEvent]:
    """The events of ``run_id`` up to and including its terminal one (others are skipped)."""
    got: list[ClientEvent] = []
    with trio.fail_after(timeout):
        while True:
            event = await client.next_event()
            if event.data.get("run_id") != run_id:
                continue
            got.append(event)
            if event.topic in TERMINAL:
                return got


async def wait_event(
    client: Client, topic: str, *, run_id: str | None = None, timeout: float = 10
) -> ClientEvent:
    """The next event with ``topic`` (of ``run_id`` when given); earlier ones are skipped."""
    with trio.fail_after(timeout):
        while True:
            event = await client.next_event()
            if event.topic == topic and (run_id is None or event.data.get("run_id") == run_id):
                return event


BARRIER = "test.barrier"


async def assert_quiet(
    client: Client,
    bus: EventBus,
    *,
    of_run: str | None = None,
    subscribe: bool = True,
    **publish: Any,
) -> None:
    """Fail if an event (of run ``of_run`` when given) was delivered to ``client`` before a barrier
    event published now: the bus numbers events in one order and every connection receives its
    share in that order, so whatever came before the barrier was published before it. No
    real-time window is involved. ``publish`` (``run_id``, ``principal_id``) makes the barrier
    visible to a guest."""
    if subscribe:
        await client.subscribe([BARRIER])
    bus.publish(BARRIER, {}, **publish)
    with trio.fail_after(10):
        while True:
            event = await client.next_event()
            if event.topic == BARRIER:
                return
            if of_run is None or event.data.get("run_id") == of_run:
                raise AssertionError(f"unexpected event {event.topic}: {event.data}")


def topics(events: list[ClientEvent]) -> list[str]:
    return [e.topic for e in events]


def chunks(events: list[ClientEvent]) -> str:
    return "".join(e.data["content"] for e in events if e.topic == "stream.chunk")


async def start(client: Client, message: str, **params: Any) -> str:
    result = await client.call("agent.run", {"message": message, **params})
    run_id: str = result["run_id"]
    return run_id


def event_data(event: Event) -> dict[str, Any]:
    """The data of an event the bus keeps (it keeps the frame it sent, not the data)."""
    data: dict[str, Any] = json.loads(event.encoded)["params"]["data"]
    return data
