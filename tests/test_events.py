"""The event bus and the events.* methods (PROTOCOL §6)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.lowlevel

from aleph_trio import Client, Gateway, open_gateway
from aleph_trio.kernel import Event, EventBus, TopicPattern
from aleph_trio.protocol import AlephError, encode_event
from runhelp import assert_quiet


def collector(bus: EventBus, *, capacity: int = 1000) -> tuple[list[Event], list[bool]]:
    got: list[Event] = []
    overflowed: list[bool] = []

    def deliver(event: Event) -> bool:
        if len(got) >= capacity:
            return False
        got.append(event)
        return True

    sub = bus.subscribe(deliver, on_overflow=lambda: overflowed.append(True))
    collector.sub = sub  # type: ignore[attr-defined]
    return got, overflowed


async def test_seq_is_gateway_wide_and_increasing() -> None:
    bus = EventBus(encode=encode_event)
    got, _ = collector(bus)
    await bus.add_patterns(collector.sub, [TopicPattern("a.*")])  # type: ignore[attr-defined]
    for topic in ["a.x", "b.y", "a.z"]:
        bus.publish(topic, {})
    assert [(e.topic, e.seq) for e in got] == [("a.x", 1), ("a.z", 3)]


async def test_slow_subscriber_is_dropped_and_told() -> None:
    bus = EventBus(encode=encode_event)
    got, overflowed = collector(bus, capacity=2)
    await bus.add_patterns(collector.sub, [TopicPattern("**")])  # type: ignore[attr-defined]
    for _ in range(3):
        bus.publish("t", {})
    assert len(got) == 2
    assert overflowed == [True]
    bus.publish("t", {})
    assert len(got) == 2
    assert bus.statistics().subscribers == 0


async def test_replay_then_live_without_gap_or_duplicate() -> None:
    bus = EventBus(encode=encode_event)
    for i in range(5):
        bus.publish("a.x", {"i": i})
    got, _ = collector(bus)
    sub = collector.sub  # type: ignore[attr-defined]

    async def slow_send(event: Event) -> None:
        got.append(event)
        if len(got) <= 3:
            bus.publish("a.x", {"during": event.seq})  # live events arrive while replaying
        await trio.lowlevel.checkpoint()

    outcome = await bus.add_patterns(sub, [TopicPattern("a.*")], since_seq=2, send=slow_send)
    bus.publish("a.x", {"after": True})
    seqs = [e.seq for e in got]
    assert seqs == sorted(set(seqs))
    assert seqs == list(range(3, bus.seq + 1))
    assert outcome.gap is False
    assert outcome.replayed >= 3


async def test_replay_reports_gap_when_buffer_moved_on() -> None:
    bus = EventBus(encode=encode_event, replay_buffer=3)
    for _ in range(10):
        bus.publish("a.x", {})
    got, _ = collector(bus)

    async def send(event: Event) -> None:
        got.append(event)

    outcome = await bus.add_patterns(collector.sub, [TopicPattern("a.*")], since_seq=2, send=send)  # type: ignore[attr-defined]
    assert outcome.gap is True
    assert [e.seq for e in got] == [8, 9, 10]


async def test_replay_does_not_repeat_what_old_patterns_delivered() -> None:
    bus = EventBus(encode=encode_event)
    got, _ = collector(bus)
    sub = collector.sub  # type: ignore[attr-defined]
    await bus.add_patterns(sub, [TopicPattern("a.*")])
    bus.publish("a.x", {})  # 1, delivered live
    bus.publish("b.x", {})  # 2, not matched then
    replayed: list[Event] = []

    async def send(event: Event) -> None:
        replayed.append(event)
        got.append(event)

    await bus.add_patterns(sub, [TopicPattern("b.*"), TopicPattern("a.*")], since_seq=0, send=send)
    assert [e.seq for e in replayed] == [2]
    assert [e.seq for e in got] == [1, 2]


async def test_replay_does_not_repeat_the_events_of_runs_it_owned() -> None:
    """A run's caller got its events without patterns; a later replay must not send them again,
    also once the run has ended, and must still send what the new patterns add."""
    bus = EventBus(encode=encode_event)
    got, _ = collector(bus)
    sub = collector.sub  # type: ignore[attr-defined]
    bus.publish("agent.started", {}, run_id="before")  # before ownership: not delivered
    bus.own_run(sub, "r1")
    bus.publish("agent.started", {}, run_id="r1")
    bus.publish("agent.started", {}, run_id="other")
    bus.publish("agent.completed", {}, run_id="r1")
    bus.release_run(sub, "r1")
    bus.publish("agent.started", {}, run_id="r1")  # after ownership: not delivered
    assert [e.seq for e in got] == [2, 4]
    sent: list[Event] = []

    async def send(event: Event) -> None:
        sent.append(event)

    outcome = await bus.add_patterns(sub, [TopicPattern("agent.*")], since_seq=0, send=send)
    assert [e.seq for e in sent] == [1, 3, 5]
    assert outcome.replayed == 3
    assert sub.past_runs == {"r1": (1, 4)}


async def test_past_runs_are_forgotten_once_their_events_left_the_ring() -> None:
    bus = EventBus(encode=encode_event, replay_buffer=2)
    collector(bus)
    sub = collector.sub  # type: ignore[attr-defined]
    for run in ("a", "b", "c"):
        bus.own_run(sub, run)
        bus.publish("agent.completed", {}, run_id=run)
        bus.release_run(sub, run)
    assert set(sub.past_runs) == {"b", "c"}


async def test_who_gets_what_follows_every_change_of_patterns_and_owners() -> None:
    """The bus remembers which subscribers a topic goes to; every change must be seen."""
    bus = EventBus(encode=encode_event)
    got_a, _ = collector(bus)
    a = collector.sub  # type: ignore[attr-defined]
    got_b, _ = collector(bus)
    b = collector.sub  # type: ignore[attr-defined]
    await bus.add_patterns(a, [TopicPattern("t.*")])
    bus.publish("t.x", {})  # 1: a
    await bus.add_patterns(b, [TopicPattern("t.x")])
    bus.publish("t.x", {})  # 2: a, b
    bus.remove_patterns(a, ["t.*"])
    bus.publish("t.x", {})  # 3: b
    bus.own_run(a, "r")
    bus.publish("t.x", {}, run_id="r")  # 4: a (owner), b (pattern), once each
    bus.publish("u.y", {}, run_id="r")  # 5: a only
    bus.release_run(a, "r")
    bus.publish("u.y", {}, run_id="r")  # 6: nobody
    bus.unsubscribe(b)
    bus.publish("t.x", {})  # 7: nobody
    assert [e.seq for e in got_a] == [1, 2, 4, 5]
    assert [e.seq for e in got_b] == [2, 3, 4]


async def test_subscribe_rpc_shapes(client: Client) -> None:
    result = await client.call(
        "events.subscribe", {"patterns": ["agent.*", "stream.**", "agent.*"]}
    )
    assert result["subscribed"] == ["agent.*", "stream.**"]
    assert result["active_patterns"] == ["agent.*", "stream.**"]
    assert result["replayed"] == 0 and result["gap"] is False
    again = await client.call("events.subscribe", {"patterns": ["agent.*"]})
    assert again["subscribed"] == []
    assert await client.call("events.list") == {"patterns": ["agent.*", "stream.**"], "total": 2}
    removed = await client.call("events.unsubscribe", {"patterns": ["agent.*", "nope.*"]})
    assert removed == {"unsubscribed": ["agent.*"], "active_patterns": ["stream.**"]}


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"patterns": ["a b"]}, None),
        ({"patterns": []}, None),
        ({"patterns": ["x" * 129]}, None),
        ({"patterns": "a.*"}, None),
        ({"patterns": ["a.*"], "since_seq": -1}, None),
        ({"patterns": ["a.*"], "since_seq": "1"}, None),
        ({"patterns": ["a.*"], "since_seq": 10**6}, None),
    ],
)
async def test_subscribe_rejects_bad_params(
    client: Client, params: dict[str, object], reason: str | None
) -> None:
    with pytest.raises(AlephError) as info:
        await client.call("events.subscribe", params)
    assert info.value.code == -32602
    assert info.value.data is not None and "errors" in info.value.data


async def test_pattern_limit(client: Client) -> None:
    await client.call("events.subscribe", {"patterns": [f"t{i}.*" for i in range(64)]})
    with pytest.raises(AlephError) as info:
        await client.call("events.subscribe", {"patterns": ["one.more"]})
    assert info.value.code == -32602
    assert info.value.data == {"reason": "limit"}


async def test_events_reach_subscribers_in_order_and_resume_by_seq(gateway: Gateway) -> None:
    async with gateway.connect() as first:
        await first.call("events.subscribe", {"patterns": ["demo.*"]})
        for i in range(3):
            gateway.bus.publish("demo.tick", {"i": i})
        seen = [await first.next_event(timeout=5) for _ in range(3)]
        assert [e.data["i"] for e in seen] == [0, 1, 2]
        last = seen[1].seq
    for i in range(3, 5):
        gateway.bus.publish("demo.tick", {"i": i})
    gateway.bus.publish("other.topic", {})
    async with gateway.connect() as second:
        result = await second.call("events.subscribe", {"patterns": ["demo.*"], "since_seq": last})
        assert result["replayed"] == 3 and result["gap"] is False
        gateway.bus.publish("demo.tick", {"i": 5})
        got = [await second.next_event(timeout=5) for _ in range(4)]
        assert [e.data["i"] for e in got] == [2, 3, 4, 5]


async def test_unsubscribed_connection_gets_nothing(gateway: Gateway) -> None:
    async with gateway.connect() as watcher, gateway.connect() as idle:
        await watcher.call("events.subscribe", {"patterns": ["x.*"]})
        gateway.bus.publish("x.y", {})
        assert (await watcher.next_event(timeout=5)).topic == "x.y"
        await assert_quiet(idle, gateway.bus)


async def test_resizing_the_ring_keeps_the_newest_and_reports_the_gap() -> None:
    bus = EventBus(encode=encode_event, replay_buffer=10)
    for _ in range(10):
        bus.publish("a.x", {})
    bus.resize(4)
    assert bus.statistics().buffered == 4
    assert bus.statistics().oldest_buffered_seq == 7
    got, _ = collector(bus)

    async def send(event: Event) -> None:
        got.append(event)

    outcome = await bus.add_patterns(collector.sub, [TopicPattern("a.*")], since_seq=3, send=send)  # type: ignore[attr-defined]
    assert outcome.gap is True
    assert [e.seq for e in got] == [7, 8, 9, 10]


def _padded_events(bus: EventBus, count: int, pad: int) -> list[Event]:
    return [bus.publish("a.x", {"i": i, "pad": "x" * pad}) for i in range(count)]


async def test_the_ring_is_bounded_by_the_bytes_of_its_frames() -> None:
    bus = EventBus(encode=encode_event, replay_buffer=10_000, replay_buffer_bytes=20_000)
    published = _padded_events(bus, 50, 1000)
    stats = bus.statistics()
    # Each frame is a little over 1,000 bytes: far fewer than 50 fit in 20,000 bytes.
    assert stats.buffered == 20_000 // len(published[-1].encoded)
    assert stats.buffered_bytes == sum(len(e.encoded) for e in published[-stats.buffered :])
    assert stats.buffered_bytes <= 20_000
    assert stats.oldest_buffered_seq == published[-stats.buffered].seq


async def test_a_resume_across_events_evicted_by_bytes_reports_the_gap() -> None:
    """Events evicted by bytes: a resume from before them reports a gap and starts at the oldest
    buffered event; a resume from after them replays exactly what followed, with no gap."""
    bus = EventBus(encode=encode_event, replay_buffer=10_000, replay_buffer_bytes=20_000)
    published = _padded_events(bus, 50, 1000)
    oldest = bus.statistics().oldest_buffered_seq
    assert oldest is not None and oldest > 1

    async def resume(since_seq: int) -> tuple[bool, list[int]]:
        collector(bus)
        sent: list[int] = []

        async def send(event: Event) -> None:
            sent.append(event.seq)

        sub = collector.sub  # type: ignore[attr-defined]
        outcome = await bus.add_patterns(sub, [TopicPattern("a.*")], since_seq=since_seq, send=send)
        bus.unsubscribe(sub)
        assert outcome.replayed == len(sent)
        return outcome.gap, sent

    assert await resume(oldest - 2) == (True, list(range(oldest, 51)))
    assert await resume(oldest - 1) == (False, list(range(oldest, 51)))
    assert await resume(45) == (False, [46, 47, 48, 49, 50])
    assert published[-1].seq == 50


async def test_an_event_larger_than_the_byte_bound_is_delivered_but_not_kept() -> None:
    bus = EventBus(encode=encode_event, replay_buffer_bytes=10_000)
    got, overflowed = collector(bus)
    await bus.add_patterns(collector.sub, [TopicPattern("a.*")])  # type: ignore[attr-defined]
    bus.publish("a.x", {"small": 1})
    bus.publish("a.x", {"pad": "x" * 20_000})
    assert [e.seq for e in got] == [1, 2] and not overflowed
    assert bus.statistics().buffered == 0 and bus.statistics().buffered_bytes == 0
    sent: list[Event] = []

    async def send(event: Event) -> None:
        sent.append(event)

    outcome = await bus.add_patterns(
        collector.sub,  # type: ignore[attr-defined]
        [TopicPattern("b.*")],
        since_seq=1,
        send=send,
    )
    assert outcome.gap is True and sent == []


async def test_shrinking_the_byte_bound_evicts_the_oldest() -> None:
    bus = EventBus(encode=encode_event)
    published = _padded_events(bus, 20, 1000)
    bus.resize(10_000, 5_000)
    stats = bus.statistics()
    assert stats.buffered == 5_000 // len(published[-1].encoded)
    assert stats.buffered_bytes <= 5_000
    assert stats.oldest_buffered_seq == 21 - stats.buffered


async def test_a_reload_applies_the_byte_bound(tmp_path: Path, data_dir: Path) -> None:
    config_file = tmp_path / "gateway.toml"
    config_file.write_text("[events]\nreplay_buffer_bytes = 1048576\n")
    async with open_gateway(
        config_path=config_file, data_dir=data_dir, watch_config=False
    ) as gateway:
        assert gateway.bus.replay_buffer_bytes == 1024 * 1024
        for i in range(40):
            gateway.bus.publish("a.x", {"i": i, "pad": "x" * 1000})
        assert gateway.bus.statistics().buffered >= 40
        config_file.write_text("[events]\nreplay_buffer_bytes = 65536\n")
        async with gateway.connect() as client:
            result = await client.call("config.reload")
        assert result["changed_keys"] == ["events.replay_buffer_bytes"]
        assert gateway.bus.replay_buffer_bytes == 65536
        assert gateway.bus.statistics().buffered_bytes <= 65536
