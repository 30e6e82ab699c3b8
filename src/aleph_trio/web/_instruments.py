"""What the hot paths record for ``/metrics``: requests, their latency, HTTP answers, slow
consumers. Everything else ``/metrics`` shows is read off the gateway when scraped."""

from __future__ import annotations

from typing import final

from ._metrics import Counter, Histogram

__all__ = ["Instruments"]


@final
class Instruments:
    def __init__(self) -> None:
        self.requests = Counter(
            "aleph_rpc_requests",
            "JSON-RPC requests and notifications handled, by method and error code (0: success)",
            ("method", "code"),
        )
        self.latency = Histogram(
            "aleph_rpc_request_duration_seconds",
            "Time from a request's dispatch to its result or error, by method",
            "method",
        )
        self.slow_consumers = Counter(
            "aleph_slow_consumers_closed",
            "Connections closed because an event found their send queue full",
        )
        self.http_requests = Counter(
            "aleph_http_requests",
            "Plain HTTP requests answered, by path and status",
            ("path", "status"),
        )

    def observe_call(self, method: str, code: int, seconds: float) -> None:
        """One handled call; ``method`` is ``"unknown"`` for names nobody registered, so a
        client cannot grow the label set without bound."""
        self.requests.inc((method, str(code)))
        self.latency.observe(method, seconds)
