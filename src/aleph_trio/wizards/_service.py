"""The wizard engine (PROTOCOL §11): sessions as gateway child tasks, and the ``wizard.*`` calls.

A flow is an ordinary async function, ``run(ui, initial)``, that asks its questions with
``await ui.ask(...)`` and returns an optional closing note. Each session runs its flow in a
task of the service's nursery (the gateway's ``wizards`` service, not a connection's), inside
the session's own cancel scope: a client that disconnects leaves it waiting for the next
answer, ``wizard.cancel`` cancels the scope, and the scope's deadline, moved on by every call,
cancels a session left idle for :data:`IDLE_S`. A finished session answers ``wizard.status``
for :data:`KEEP_S`, then is forgotten.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, final

import attrs
import trio

from ..kernel import (
    EventBus,
    FieldProblem,
    GatewayError,
    InvalidArgument,
    InvalidState,
    LimitReached,
    NotFound,
    OperationFailed,
    ValidationFailed,
    component_logger,
    convert,
)
from ._session import WizardSession, WizardUI
from ._steps import INTERACTIVE, Step

__all__ = ["IDLE_S", "KEEP_S", "Flow", "WizardService"]

log = component_logger("wizards")

#: A running session nobody has answered for this long is cancelled.
IDLE_S: Final = 30 * 60.0
#: A finished session can be queried for this long.
KEEP_S: Final = 10 * 60.0
#: Sessions running at once, over all clients.
MAX_RUNNING: Final = 64


@attrs.frozen
class Flow:
    """A wizard type: its flow, the ``initial_data`` it takes (an attrs class), and who may
    start it (``owner_only``: its effects are those of owner-only methods)."""

    name: str
    description: str
    run: Callable[[WizardUI, Any], Awaitable[Step | None]]
    initial: type
    owner_only: bool = True
    #: Why the flow cannot run on this gateway right now, or ``None``.
    unavailable: Callable[[], str | None] = lambda: None
    #: Checks the decoded ``initial_data`` further; raises :class:`InvalidArgument`.
    validate: Callable[[Any], None] = lambda initial: None


@final
class WizardService:
    """Owns the wizard sessions. Start :meth:`serve` as the gateway's ``wizards`` service."""

    def __init__(
        self,
        bus: EventBus,
        flows: Sequence[Flow],
        *,
        idle_s: float = IDLE_S,
        keep_s: float = KEEP_S,
        max_running: int = MAX_RUNNING,
    ) -> None:
        self._bus = bus
        self.flows = {flow.name: flow for flow in flows}
        self._idle_s = idle_s
        self._keep_s = keep_s
        self._max_running = max_running
        self._sessions: dict[str, WizardSession] = {}
        self._nursery: trio.Nursery | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run sessions until cancelled (which cancels every flow still running)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._sessions.clear()

    def flow(self, wizard_type: str) -> Flow:
        flow = self.flows.get(wizard_type)
        if flow is None:
            known = ", ".join(sorted(self.flows))
            raise InvalidArgument.field(
                "$.wizard_type", f"unknown wizard type {wizard_type!r} (one of: {known})"
            )
        return flow

    def running(self) -> int:
        return sum(1 for s in self._sessions.values() if s.status == "running")

    # -- methods -----------------------------------------------------------------------------

    async def start(
        self, wizard_type: str, initial_data: Mapping[str, Any] | None, *, principal_id: str | None
    ) -> WizardSession:
        """Start a session; returns once its first step is posted (or the flow has ended)."""
        flow = self.flow(wizard_type)
        try:
            initial: object = convert(dict(initial_data or {}), flow.initial)
        except ValidationFailed as exc:
            errors = exc.errors(root="$.initial_data")
            raise InvalidArgument(
                f"{errors[0]['path']}: {errors[0]['message']}",
                problems=[FieldProblem(e["path"], e["message"]) for e in errors],
            ) from None
        flow.validate(initial)
        why = flow.unavailable()
        if why is not None:
            raise InvalidState(f"the {wizard_type} wizard cannot run: {why}")
        if self.running() >= self._max_running:
            raise LimitReached(f"{self._max_running} wizard sessions are running already")
        nursery = self._nursery
        if nursery is None:
            raise OperationFailed("the wizard service is not running")
        session = WizardSession(
            "wiz_" + uuid.uuid4().hex, wizard_type, principal_id, self._publish_step
        )
        self._sessions[session.session_id] = session
        session.touch(self._idle_s)
        nursery.start_soon(self._run, flow, session, initial)
        log.info("wizard %s (%s) started", session.session_id, wizard_type)
        await session.wait_until(session.settled)
        return session

    def get(self, session_id: str, *, principal_id: str | None) -> WizardSession:
        """The session, if the caller may see it (guests: only those they started)."""
        session = self._sessions.get(session_id)
        if session is None or (principal_id is not None and session.principal_id != principal_id):
            raise NotFound("wizard session", session_id)
        return session

    async def answer(
        self, session_id: str, step_id: str, value: Any, *, principal_id: str | None
    ) -> WizardSession:
        session = self.get(session_id, principal_id=principal_id)
        async with session.lock:
            if session.status != "running":
                raise session.not_running()
            await session.wait_until(session.settled)
            step = session.step
            if step is None or step.id != step_id:
                current = step.id if step is not None else None
                raise InvalidArgument.field(
                    "$.step_id",
                    f"{step_id!r} is not the current step (the current step is {current!r})",
                    current_step_id=current,
                )
            session.touch(self._idle_s)
            await session.propose(value)
        return session

    async def next(self, session_id: str, *, principal_id: str | None) -> WizardSession:
        """Go on past a note; an interactive step (or a finished session) is shown as it is."""
        session = self.get(session_id, principal_id=principal_id)
        async with session.lock:
            if session.status != "running":
                return session
            session.touch(self._idle_s)
            await session.wait_until(session.settled)
            step = session.step
            if step is not None and step.type not in INTERACTIVE and session.status == "running":
                await session.propose(None)
        return session

    async def cancel(self, session_id: str, *, principal_id: str | None) -> bool:
        """Cancel a running session's flow; false when it had finished already."""
        session = self.get(session_id, principal_id=principal_id)
        if session.status != "running":
            return False
        session.cancel_reason = "cancelled by wizard.cancel"
        session.scope.cancel()
        await session.finished.wait()
        return session.error == session.cancel_reason

    # -- the session task --------------------------------------------------------------------

    async def _run(self, flow: Flow, session: WizardSession, initial: object) -> None:
        with session.scope:
            try:
                outro = await flow.run(WizardUI(session), initial)
            except GatewayError as exc:
                log.warning("wizard %s (%s) failed: %s", session.session_id, flow.name, exc)
                session.finish("error", error=exc.message)
            except Exception:
                log.exception("wizard %s (%s) failed", session.session_id, flow.name)
                session.finish("error", error=f"internal error in the {flow.name} wizard")
            else:
                session.finish("done", outro=outro)
                log.info("wizard %s (%s) done", session.session_id, flow.name)
        if session.status == "running":  # the scope was cancelled: by a call, or idle
            reason = session.cancel_reason or (
                f"cancelled after {self._idle_s / 60:g} minutes without an answer"
            )
            session.finish("cancelled", error=reason)
            log.info("wizard %s (%s) %s", session.session_id, flow.name, reason)
        await trio.sleep(self._keep_s)
        self._sessions.pop(session.session_id, None)

    def _publish_step(self, session: WizardSession) -> None:
        data = {"session_id": session.session_id, **session.view()}
        data.setdefault("step", None)
        self._bus.publish("wizard.step", data, principal_id=session.principal_id)
