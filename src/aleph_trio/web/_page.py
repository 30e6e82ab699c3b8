"""The ``/metrics`` page: the recorded instruments and a snapshot of the gateway's state."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ._instruments import Instruments
from ._metrics import Family, Sample, counter_family, gauge, histogram_family, render

__all__ = ["Readings", "metrics_text"]


@attrs.frozen
class Readings:
    """What the gateway's state says at scrape time, in plain numbers."""

    uptime_s: float
    connections: Mapping[str, int]  #: by role: owner, guest, unauthenticated
    send_queue_frames: int  #: frames waiting in every connection's outbound queue
    events_published: int
    subscribers: int
    replay_buffer_events: int
    runs_live: Mapping[str, int]  #: running, queued
    runs_finished: Mapping[str, int]  #: since start, by final status
    cron_active: int
    cron_queued: int
    approvals_pending: int
    services: Mapping[str, str]  #: name -> status
    service_restarts: Mapping[str, int]  #: name -> restarts since start


def metrics_text(readings: Readings, instruments: Instruments) -> str:
    families: list[Family] = [
        gauge(
            "aleph_uptime_seconds", "Seconds since the gateway started", [({}, readings.uptime_s)]
        ),
        gauge(
            "aleph_connections",
            "Open WebSocket connections, by role",
            [({"role": role}, float(n)) for role, n in sorted(readings.connections.items())],
        ),
        gauge(
            "aleph_send_queue_frames",
            "Frames waiting in the connections' outbound queues",
            [({}, readings.send_queue_frames)],
        ),
        Family(
            "aleph_events_published",
            "counter",
            "Events published on the bus since start",
            [_sample("aleph_events_published_total", readings.events_published)],
        ),
        gauge(
            "aleph_event_subscribers",
            "Connections subscribed to events",
            [({}, readings.subscribers)],
        ),
        gauge(
            "aleph_replay_buffer_events",
            "Events held for resuming clients",
            [({}, readings.replay_buffer_events)],
        ),
        gauge(
            "aleph_runs",
            "Agent runs in the gateway now, by status",
            [({"status": s}, float(n)) for s, n in sorted(readings.runs_live.items())],
        ),
        Family(
            "aleph_runs_finished",
            "counter",
            "Agent runs finished since start, by final status",
            [
                _sample("aleph_runs_finished_total", n, status=s)
                for s, n in sorted(readings.runs_finished.items())
            ],
        ),
        gauge(
            "aleph_cron_runs",
            "Cron firings in progress and waiting, by state",
            [
                ({"state": "active"}, readings.cron_active),
                ({"state": "queued"}, readings.cron_queued),
            ],
        ),
        gauge(
            "aleph_exec_approvals_pending",
            "Exec approvals waiting for an answer",
            [({}, readings.approvals_pending)],
        ),
        gauge(
            "aleph_service_up",
            "1 when a gateway service is running",
            [
                ({"service": name}, 1.0 if status == "running" else 0.0)
                for name, status in sorted(readings.services.items())
            ],
        ),
        Family(
            "aleph_service_restarts",
            "counter",
            "Times a gateway service was restarted after it failed",
            [
                _sample("aleph_service_restarts_total", n, service=name)
                for name, n in sorted(readings.service_restarts.items())
            ],
        ),
        counter_family(instruments.requests),
        histogram_family(instruments.latency),
        counter_family(instruments.slow_consumers),
        counter_family(instruments.http_requests),
    ]
    return render(families)


def _sample(name: str, value: float, **labels: str) -> Sample:
    return Sample(name, tuple(labels.items()), float(value))
