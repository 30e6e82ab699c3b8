"""The gateway's named background tasks, their states and restarts (PROTOCOL §15).

A service is an ``async serve(*, task_status)`` callable: it reports ``task_status.started()``
once it is ready and then runs until cancelled. The registry runs each one in a cancel scope of
its own, under a supervisor that keeps its :class:`ServiceState` current and publishes
``services.*`` events::

    starting → running → stopped          (cancelled: services.stop, or the gateway closing)
                       → failed           (raised, or returned by itself)
                           → restarting → starting …   (when its RestartPolicy says so)

A failure never reaches the gateway's nursery: the service is marked ``failed`` with its error,
and restarted after a backoff (doubling up to a cap) if its policy restarts it. After
``max_failures`` failures in a row (each one running less than ``stable_s``) it stays failed
until ``services.start``.

A service may be added without waiting for it (:meth:`ServiceRegistry.start_soon`, for a caller
that cannot wait: a plugin's ``api.start_task``), may be *finite* (returning ends it ``stopped``
and removes it, rather than failing it), may be *blocked* from starting again (its host is gone),
and is removed with :meth:`~ServiceRegistry.remove` or, once it has ended,
:meth:`~ServiceRegistry.forget`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, final

import attrs
import trio

from ._clock import now_ts
from ._errors import InvalidState, NotFound, OperationFailed
from ._events import EventBus
from ._logs import component_logger

__all__ = ["ONCE", "RestartPolicy", "ServiceRegistry", "ServiceState"]

log = component_logger("gateway")

Status = Literal["starting", "running", "stopped", "failed"]
Serve = Callable[..., Awaitable[None]]


@attrs.frozen
class RestartPolicy:
    """Whether a failed service is started again, and how soon."""

    restart: bool = False
    backoff_s: float = 1.0  #: the first delay; each failure in a row doubles it
    max_backoff_s: float = 30.0
    #: Failures in a row after which the service stays ``failed``; ``None``: never give up.
    max_failures: int | None = 8
    #: Running this long counts as a success: the next failure starts the backoff afresh.
    stable_s: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s))


#: Not restarted: a failure is left for a person to look at.
ONCE = RestartPolicy()


@attrs.define
class ServiceState:
    name: str
    status: Status = "stopped"
    started_at: str | None = None
    restarts: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "status": self.status,
            "started_at": self.started_at,
            "restarts": self.restarts,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@final
@attrs.define(eq=False)
class _Service:
    state: ServiceState
    serve: Serve
    policy: RestartPolicy
    nursery: trio.Nursery
    #: Why it may not be stopped, or ``None`` when it may.
    required: str | None
    #: Called when it ends stopped (not failed): to withdraw what it offered.
    on_stop: Callable[[], None] | None = None
    #: Returning ends it ``stopped`` and removes it from the registry (instead of failing it).
    finite: bool = False
    #: Why it may not be started again now (``services.start`` refuses), or ``None``.
    blocked: Callable[[], str | None] | None = None
    scope: trio.CancelScope | None = None
    done: trio.Event = attrs.Factory(trio.Event)
    wake: trio.Event = attrs.Factory(trio.Event)
    #: Set (and replaced) each time a try has become ready or failed.
    settled: trio.Event = attrs.Factory(trio.Event)


@final
class ServiceRegistry:
    """Starts services in the gateway's nursery and keeps their status current."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._services: dict[str, _Service] = {}

    @property
    def states(self) -> dict[str, ServiceState]:
        return {name: svc.state for name, svc in self._services.items()}

    async def start(
        self,
        nursery: trio.Nursery,
        name: str,
        serve: Serve,
        *,
        policy: RestartPolicy = ONCE,
        required: str | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        """Add ``serve(task_status=...)`` as service ``name`` and start it in ``nursery``;
        returns once it reports started, or has failed once.

        ``required`` says why the service may not be stopped (``services.stop`` refuses it);
        ``on_stop`` is called each time it ends stopped (stopped in a backoff included).
        A service of that name that is stopped or failed is replaced; one that is active is
        left as it is.
        """
        old = self._services.get(name)
        if old is not None and not old.done.is_set():
            return
        state = old.state if old is not None else ServiceState(name)
        self._services[name] = _Service(state, serve, policy, nursery, required, on_stop)
        await self._launch(self._services[name])

    def start_soon(
        self,
        nursery: trio.Nursery,
        name: str,
        serve: Serve,
        *,
        policy: RestartPolicy = ONCE,
        finite: bool = False,
        blocked: Callable[[], str | None] | None = None,
    ) -> None:
        """Add ``serve`` as service ``name`` (``starting``) and start it in ``nursery`` without
        waiting. ``finite``: returning is finishing, not failing; ``blocked`` says why
        ``services.start`` may not start it again. A stopped or failed service of that name is
        replaced; an active one is :class:`InvalidState`."""
        old = self._services.get(name)
        if old is not None and not old.done.is_set():
            raise InvalidState(f"service {name} is running already")
        state = old.state if old is not None else ServiceState(name)
        svc = _Service(state, serve, policy, nursery, None, finite=finite, blocked=blocked)
        self._services[name] = svc
        state.status, state.error = "starting", None
        svc.scope = trio.CancelScope()
        nursery.start_soon(self._supervise, svc, name=f"service {name}")

    def get(self, name: str) -> ServiceState:
        return self._service(name).state

    def list(self) -> list[ServiceState]:
        return [self._services[name].state for name in sorted(self._services)]

    def statuses(self) -> dict[str, str]:
        return {state.name: state.status for state in self.list()}

    async def resume(self, name: str) -> None:
        """Start a stopped or failed service again (``services.start``): a no-op when it is
        running, and at once when it waits to be restarted. Raises :class:`OperationFailed`
        when it fails before it is ready."""
        svc = self._service(name)
        reason = svc.blocked() if svc.blocked is not None else None
        if reason is not None and svc.done.is_set():
            raise InvalidState(f"service {name} cannot be started: {reason}")
        if not svc.done.is_set():
            if svc.state.status != "failed":
                return  # running, or starting
            settled = svc.settled
            svc.wake.set()  # waiting out a backoff: try now
            await settled.wait()
        else:
            svc.done, svc.wake = trio.Event(), trio.Event()
            svc.state.error = None
            await self._launch(svc)
        if svc.state.status == "failed":
            raise OperationFailed(f"service {name} failed to start: {svc.state.error}")

    async def stop(self, name: str) -> None:
        """Cancel the service and wait until it has cleaned up (``services.stop``); a no-op
        when it is not active. Refused (:class:`InvalidState`) for a required service."""
        svc = self._service(name)
        if svc.required is not None:
            raise InvalidState(f"service {name} cannot be stopped: {svc.required}")
        if svc.scope is not None:
            svc.scope.cancel()
        if not svc.done.is_set():
            await svc.done.wait()

    async def remove(self, name: str) -> None:
        """Stop the service (required or not) and forget it."""
        svc = self._services.get(name)
        if svc is None:
            return
        if svc.scope is not None:
            svc.scope.cancel()
        await svc.done.wait()
        if self._services.get(name) is svc:
            del self._services[name]

    def forget(self, name: str) -> None:
        """Forget a service that has ended (a no-op for an unknown one); one still active is
        :class:`InvalidState`: :meth:`remove` stops it first."""
        svc = self._services.get(name)
        if svc is None:
            return
        if not svc.done.is_set():
            raise InvalidState(f"service {name} is still active")
        del self._services[name]

    def _service(self, name: str) -> _Service:
        svc = self._services.get(name)
        if svc is None:
            raise NotFound("service", name)
        return svc

    async def _launch(self, svc: _Service) -> None:
        svc.state.status = "starting"
        svc.scope = trio.CancelScope()
        await svc.nursery.start(self._supervise, svc)

    async def _supervise(
        self, svc: _Service, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        state, policy = svc.state, svc.policy
        finished = False
        reporter = _Reporter(task_status)
        scope = svc.scope
        assert scope is not None
        try:
            with scope:
                failures = 0
                while True:
                    began = trio.current_time()
                    error = await self._serve_once(svc, reporter)
                    if error is None:  # a finite service finished
                        finished = True
                        break
                    reporter.report()  # failed before it was ready: ``start`` returns
                    if trio.current_time() - began >= policy.stable_s:
                        failures = 0
                    failures += 1
                    if not policy.restart or (
                        policy.max_failures is not None and failures >= policy.max_failures
                    ):
                        if policy.restart:
                            log.error("service %s failed %d times in a row", state.name, failures)
                        break
                    delay = policy.delay(failures)
                    self._bus.publish(
                        "services.restarting",
                        {"name": state.name, "error": error, "delay_s": delay},
                    )
                    with trio.move_on_after(delay):
                        await svc.wake.wait()
                    svc.wake = trio.Event()
                    state.restarts += 1
                    state.status = "starting"
        finally:
            svc.scope = None
            reporter.report()
            if state.status != "failed" or scope.cancel_called:  # stopped, backoff or not
                state.status = "stopped"
                if svc.on_stop is not None:
                    svc.on_stop()
                self._bus.publish("services.stopped", {"name": state.name})
            svc.settled.set()
            svc.done.set()
            # finished by itself, not by a stop it swallowed: nothing is left to start again
            if finished and not scope.cancel_called and self._services.get(state.name) is svc:
                del self._services[state.name]

    async def _serve_once(self, svc: _Service, reporter: _Reporter) -> str | None:
        """Run ``serve`` once until it fails; returns the error, or ``None`` when a finite
        service returned (a cancellation propagates)."""
        state = svc.state

        def started() -> None:
            state.status, state.started_at = "running", now_ts()
            self._bus.publish("services.started", {"name": state.name})
            svc.settled.set()
            svc.settled = trio.Event()

        reporter.on_started = started
        try:
            await svc.serve(task_status=reporter)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("service %s failed", state.name)
        else:
            if svc.finite:
                log.debug("service %s finished", state.name)
                return None
            error = "returned without being stopped"
            log.error("service %s %s", state.name, error)
        state.status, state.error = "failed", error
        self._bus.publish("services.failed", {"name": state.name, "error": error})
        svc.settled.set()
        svc.settled = trio.Event()
        return error


@final
class _Reporter:
    """A ``task_status`` handed to each run of a service: it marks the service running, and
    tells the starter once (the first run that is ready, or the first failure)."""

    def __init__(self, task_status: trio.TaskStatus[None]) -> None:
        self._task_status = task_status
        self._reported = False
        self.on_started: Callable[[], None] = lambda: None

    def started(self, value: None = None) -> None:
        self.on_started()
        self.report()

    def report(self) -> None:
        if not self._reported:
            self._reported = True
            self._task_status.started()
