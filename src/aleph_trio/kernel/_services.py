"""The gateway's named background tasks and their states (``health`` shows them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, final

import attrs
import trio

from ._clock import now_ts
from ._events import EventBus
from ._logs import component_logger

__all__ = ["ServiceRegistry", "ServiceState"]

log = component_logger("gateway")

Status = Literal["starting", "running", "stopped", "failed"]


@attrs.define
class ServiceState:
    name: str
    status: Status = "stopped"
    started_at: str | None = None
    restarts: int = 0
    error: str | None = None


@final
class ServiceRegistry:
    """Starts services in the gateway's nursery and keeps their status current."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.states: dict[str, ServiceState] = {}

    async def start(
        self,
        nursery: trio.Nursery,
        name: str,
        serve: Callable[..., Awaitable[None]],
    ) -> None:
        """Start ``serve(task_status=...)`` as service ``name``; returns once it reports started."""
        state = self.states.setdefault(name, ServiceState(name))
        state.status, state.error = "starting", None
        await nursery.start(self._run, state, serve)

    async def _run(
        self,
        state: ServiceState,
        serve: Callable[..., Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        def started(value: None = None) -> None:
            state.status, state.started_at = "running", now_ts()
            self._bus.publish("services.started", {"name": state.name})
            task_status.started()

        reporter = _Reporter(started)
        try:
            await serve(task_status=reporter)
        except Exception as exc:
            state.status, state.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("service %s failed", state.name)
            self._bus.publish("services.failed", {"name": state.name, "error": state.error})
            if not reporter.called:
                task_status.started()
            return
        finally:
            if state.status in ("running", "starting"):
                state.status = "stopped"
        self._bus.publish("services.stopped", {"name": state.name})

    def statuses(self) -> dict[str, str]:
        return {name: state.status for name, state in sorted(self.states.items())}


@final
class _Reporter:
    """A ``task_status`` that records whether the service reported readiness."""

    def __init__(self, started: Callable[[None], None]) -> None:
        self._started = started
        self.called = False

    def started(self, value: None = None) -> None:
        self.called = True
        self._started(value)
