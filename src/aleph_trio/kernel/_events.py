"""The event bus (PROTOCOL §6): one gateway-wide ``seq``, a replay ring, per-subscriber delivery.

Services call :meth:`EventBus.publish`; it is synchronous, so an event is numbered, stored and
offered to every subscriber in one step and no subscriber can see events out of order. The bus
knows nothing about sockets: a :class:`Subscriber` is handed a ``deliver`` callback that must not
block and answers ``False`` when the subscriber's bounded queue is full. Such a subscriber is
removed and told through ``on_overflow`` (the connection closes as a slow consumer and the client
resumes by ``since_seq``); events are never dropped silently.

The ring keeps the newest events within two bounds, ``events.replay_buffer`` events and
``events.replay_buffer_bytes`` bytes of their encoded frames. Of an event only the frame is
kept, not the data it was made from, so the bytes counted are the bytes held.
"""

from __future__ import annotations

import collections
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, final

import attrs

from ._clock import now_ts
from ._topics import TopicPattern

__all__ = ["Event", "EventBus", "EventBusStatistics", "EventEncoder", "ReplayLost", "Subscriber"]

#: ``encode(topic, seq, ts, data)``: an event as the bytes subscribers are sent.
EventEncoder = Callable[[str, int, str, Mapping[str, Any]], bytes]

#: Topics only owners may see, whatever their patterns say (PROTOCOL §6.2).
OWNER_ONLY_PREFIXES = ("logs.", "exec.", "config.", "mcp.", "services.")


@attrs.frozen(eq=False)
class Event:
    """One published event; ``encoded`` is what the bus's encoder made of its data, built once
    and shared by every subscriber. The data itself is not kept: ``encoded`` is all that is sent,
    so a buffered event costs the bytes of its frame."""

    topic: str
    seq: int
    ts: str
    run_id: str | None
    principal_id: str | None
    encoded: bytes

    @property
    def owner_only(self) -> bool:
        return self.topic.startswith(OWNER_ONLY_PREFIXES)


class ReplayLost(Exception):
    """Events a paused subscriber still needed left the ring before they could be sent."""


@final
@attrs.define(eq=False)
class Subscriber:
    """One consumer's view of the bus: its patterns, its runs, its visibility and its sink."""

    id: int
    deliver: Callable[[Event], bool]
    on_overflow: Callable[[], None]
    may_see: Callable[[Event], bool]
    patterns: dict[str, TopicPattern] = attrs.Factory(dict)
    #: Runs whose events this subscriber gets without patterns: run id → seq when that began.
    owned_runs: dict[str, int] = attrs.Factory(dict)
    #: Runs it owned before, run id → (first, last) seq of the ownership, kept while their
    #: events may still be replayed, so a replay knows they were delivered already.
    past_runs: dict[str, tuple[int, int]] = attrs.Factory(dict)
    follow_logs: bool = False
    considered_upto: int = 0
    paused: bool = False
    closed: bool = False

    def wants(self, event: Event) -> bool:
        """Whether a live event goes to this subscriber."""
        run_id = event.run_id
        owned = run_id is not None and run_id in self.owned_runs
        return self._wants(event, self.patterns.values(), owned=owned)

    def wanted_at(self, event: Event, patterns: Iterable[TopicPattern]) -> bool:
        """Whether ``event`` was for this subscriber when it was published, given ``patterns``."""
        return self._wants(event, patterns, owned=self._owned_at(event.run_id, event.seq))

    def _owned_at(self, run_id: str | None, seq: int) -> bool:
        if run_id is None:
            return False
        began = self.owned_runs.get(run_id)
        if began is not None:
            return seq > began
        span = self.past_runs.get(run_id)
        return span is not None and span[0] < seq <= span[1]

    def _wants(self, event: Event, patterns: Iterable[TopicPattern], *, owned: bool) -> bool:
        if not self.may_see(event):
            return False
        if event.topic == "logs.entry":
            return self.follow_logs
        return owned or any(p.matches(event.topic) for p in patterns)


@attrs.frozen
class EventBusStatistics:
    seq: int
    subscribers: int
    buffered: int
    buffered_bytes: int
    oldest_buffered_seq: int | None
    overflows: int


@attrs.frozen
class ReplayOutcome:
    replayed: int
    gap: bool


@final
@attrs.define(eq=False)
class EventBus:
    """Numbering, storing and fanning out events. Create one per gateway."""

    #: Turns an event (topic, seq, ts, data) into the bytes every subscriber is sent. The bus
    #: does not know the wire format: the composition root passes the server's encoder.
    encode: EventEncoder = attrs.field(kw_only=True)
    #: The ring keeps at most this many events (``events.replay_buffer``) ...
    replay_buffer: int = 10_000
    #: ... and at most this many bytes of encoded events (``events.replay_buffer_bytes``).
    replay_buffer_bytes: int = 64 * 1024 * 1024
    boot_id: str = attrs.Factory(lambda: uuid.uuid4().hex)
    _seq: int = 0
    #: The newest seq that left the ring (a replay from before it has a gap).
    _evicted_upto: int = 0
    _ring: collections.deque[Event] = attrs.Factory(collections.deque)
    _ring_bytes: int = 0
    _subscribers: dict[int, Subscriber] = attrs.Factory(dict)
    _ids: Iterator[int] = attrs.Factory(lambda: itertools.count(1))
    _overflows: int = 0
    #: topic → subscribers whose patterns match it; cleared whenever any pattern changes.
    _matchers: dict[str, list[Subscriber]] = attrs.Factory(dict)
    #: run id → subscribers that get the run's events without patterns.
    _owners: dict[str, list[Subscriber]] = attrs.Factory(dict)

    @property
    def seq(self) -> int:
        """The sequence number of the newest event (0 before the first)."""
        return self._seq

    def resize(self, replay_buffer: int, replay_buffer_bytes: int | None = None) -> None:
        """Apply new ``events.replay_buffer`` (and ``replay_buffer_bytes``), keeping the newest
        events."""
        self.replay_buffer = replay_buffer
        if replay_buffer_bytes is not None:
            self.replay_buffer_bytes = replay_buffer_bytes
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest events until the ring is within both bounds. An event larger than
        the byte bound on its own is delivered live but never kept."""
        ring = self._ring
        count, size = max(1, self.replay_buffer), self.replay_buffer_bytes
        while ring and (len(ring) > count or self._ring_bytes > size):
            old = ring.popleft()
            self._ring_bytes -= len(old.encoded)
            self._evicted_upto = old.seq

    def publish(
        self,
        topic: str,
        data: Mapping[str, Any],
        *,
        run_id: str | None = None,
        principal_id: str | None = None,
    ) -> Event:
        """Number, store and offer an event; returns it. Never blocks."""
        self._seq += 1
        seq = self._seq
        ts = now_ts()
        event = Event(topic, seq, ts, run_id, principal_id, self.encode(topic, seq, ts, data))
        self._ring.append(event)
        self._ring_bytes += len(event.encoded)
        if len(self._ring) > self.replay_buffer or self._ring_bytes > self.replay_buffer_bytes:
            self._trim()
        overflowed: list[Subscriber] = []
        for sub in self._targets(topic, run_id):
            if not sub.paused and sub.may_see(event) and not sub.deliver(event):
                overflowed.append(sub)
        for sub in overflowed:
            self._overflow(sub)
        return event

    def _targets(self, topic: str, run_id: str | None) -> list[Subscriber]:
        """Who wants an event of ``topic`` (of ``run_id``), before visibility is checked."""
        if topic == "logs.entry":
            return [sub for sub in self._subscribers.values() if sub.follow_logs]
        targets = self._matchers.get(topic)
        if targets is None:
            targets = [
                sub
                for sub in self._subscribers.values()
                if any(p.matches(topic) for p in sub.patterns.values())
            ]
            if len(self._matchers) >= 4096:
                self._matchers.clear()
            self._matchers[topic] = targets
        owners = self._owners.get(run_id) if run_id is not None else None
        if owners:
            targets = targets + [sub for sub in owners if sub not in targets]
        return targets

    def remove_patterns(self, sub: Subscriber, texts: Iterable[str]) -> list[str]:
        """Drop patterns from ``sub``; returns those it had."""
        removed = [t for t in dict.fromkeys(texts) if sub.patterns.pop(t, None) is not None]
        if removed:
            self._matchers.clear()
        return removed

    def subscribe(
        self,
        deliver: Callable[[Event], bool],
        *,
        on_overflow: Callable[[], None],
        may_see: Callable[[Event], bool] = lambda event: True,
        patterns: Iterable[TopicPattern] = (),
    ) -> Subscriber:
        """A new subscriber; ``patterns`` apply at once (no replay), as a synchronous step."""
        sub = Subscriber(next(self._ids), deliver, on_overflow, may_see)
        sub.considered_upto = self._seq
        sub.patterns.update({p.text: p for p in patterns})
        if sub.patterns:
            self._matchers.clear()
        self._subscribers[sub.id] = sub
        return sub

    def own_run(self, sub: Subscriber, run_id: str) -> None:
        """Send ``sub`` every event of ``run_id`` from now on, whatever its patterns."""
        if run_id not in sub.owned_runs:
            sub.owned_runs[run_id] = self._seq
            self._owners.setdefault(run_id, []).append(sub)

    def _disown(self, sub: Subscriber, run_id: str) -> int | None:
        owners = self._owners.get(run_id)
        if owners is not None and sub in owners:
            owners.remove(sub)
            if not owners:
                del self._owners[run_id]
        return sub.owned_runs.pop(run_id, None)

    def release_run(self, sub: Subscriber, run_id: str) -> None:
        """Stop sending ``sub`` the run's events (after its last one), remembering that it had
        them while they can still be replayed."""
        began = self._disown(sub, run_id)
        if began is not None:
            sub.past_runs[run_id] = (began, self._seq)
        for old in [r for r, (_, end) in sub.past_runs.items() if end <= self._evicted_upto]:
            del sub.past_runs[old]

    def subscribers(self) -> Iterable[Subscriber]:
        return self._subscribers.values()

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.closed = True
        self._subscribers.pop(sub.id, None)
        self._matchers.clear()
        for run_id in list(sub.owned_runs):
            self._disown(sub, run_id)

    def _overflow(self, sub: Subscriber) -> None:
        self._overflows += 1
        self.unsubscribe(sub)
        sub.on_overflow()

    async def add_patterns(
        self,
        sub: Subscriber,
        patterns: Iterable[TopicPattern],
        *,
        since_seq: int | None = None,
        send: Callable[[Event], Awaitable[None]] | None = None,
    ) -> ReplayOutcome:
        """Add patterns to ``sub``; with ``since_seq``, first replay buffered events via ``send``.

        While replaying, live delivery to ``sub`` is paused and everything it needs is taken from
        the ring instead, so the subscriber sees one strictly increasing sequence with nothing
        missing or doubled. Raises :class:`ReplayLost` when the ring moved on faster than
        ``send`` could go (the caller treats the subscriber as a slow consumer).
        """
        added = [p for p in patterns if p.text not in sub.patterns]
        if added:
            self._matchers.clear()
        if since_seq is None or send is None:
            for p in added:
                sub.patterns[p.text] = p
            return ReplayOutcome(0, gap=False)
        if since_seq > self._seq:
            raise ValueError(f"since_seq {since_seq} is ahead of the event head {self._seq}")
        old_patterns = list(sub.patterns.values())
        for p in added:
            sub.patterns[p.text] = p
        gap = since_seq < self._evicted_upto
        # Events after ``live_from`` were never offered to ``sub``: it is paused from here on
        # (or was already, by a replay still going on).
        live_from = sub.considered_upto if sub.paused else self._seq
        sub.considered_upto = live_from
        last = since_seq
        replayed = 0
        sub.paused = True
        try:
            while True:
                if self._evicted_upto > max(last, live_from):
                    raise ReplayLost("the replay could not keep up with new events")
                patterns = list(sub.patterns.values())
                batch = [
                    e
                    for e in self._ring
                    if e.seq > last
                    and sub.wanted_at(e, patterns)
                    and (e.seq > live_from or not sub.wanted_at(e, old_patterns))
                ]
                scanned_to = self._seq
                if not batch:
                    sub.considered_upto = scanned_to
                    return ReplayOutcome(replayed, gap)
                for event in batch:
                    if sub.closed:
                        return ReplayOutcome(replayed, gap)
                    await send(event)
                    replayed += 1
                last = scanned_to
        finally:
            sub.paused = False

    def statistics(self) -> EventBusStatistics:
        oldest = self._ring[0].seq if self._ring else None
        head = self._seq
        return EventBusStatistics(
            head, len(self._subscribers), len(self._ring), self._ring_bytes, oldest, self._overflows
        )
