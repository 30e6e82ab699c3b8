"""One wizard session: its lifecycle, the step it shows, and where the flow and the RPC side meet.

::

    running ──▶ done / cancelled / error

The flow runs as its own task and talks to the session through :class:`WizardUI`: ``ask`` posts a
step and waits for a proposal; ``wizard.answer`` and ``wizard.next`` hand one over an unbuffered
memory channel and wait for the flow's verdict (a typed or checked answer that is wrong is sent
back, and the step stays current), then for the session to settle again: a new step posted, or
the flow finished. Every change wakes those waiting through one event, replaced after each use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, final

import attrs
import trio

from ..kernel import InvalidArgument, InvalidState, TransitionTable
from ._steps import Step, check_answer, note

__all__ = ["SESSIONS", "Proposal", "SessionStatus", "WizardSession", "WizardUI"]

SessionStatus = Literal["running", "done", "cancelled", "error"]

SESSIONS: Final = TransitionTable(
    "wizard session",
    {
        "running": frozenset({"done", "cancelled", "error"}),
        "done": frozenset(),
        "cancelled": frozenset(),
        "error": frozenset(),
    },
)


@attrs.define(eq=False)
class Proposal:
    """An answer handed to the flow, and the flow's verdict on it."""

    value: Any
    decided: bool = False
    error: InvalidArgument | None = None


@final
class WizardSession:
    def __init__(
        self,
        session_id: str,
        wizard_type: str,
        principal_id: str | None,
        publish: Callable[[WizardSession], None],
    ) -> None:
        self.session_id = session_id
        self.wizard_type = wizard_type
        #: Who started it (``None``: the owner); guests see only their own sessions.
        self.principal_id = principal_id
        self.status: SessionStatus = "running"
        #: The step waiting for the client; ``None`` while the flow works between steps.
        self.step: Step | None = None
        self.error: str | None = None
        #: The flow's scope: ``wizard.cancel`` cancels it, and its deadline is the idle limit.
        self.scope = trio.CancelScope()
        #: Why the scope was cancelled on purpose (the deadline leaves it ``None``).
        self.cancel_reason: str | None = None
        #: One answer or ``next`` at a time, so a step is answered once.
        self.lock = trio.Lock()
        self.finished = trio.Event()
        self._publish = publish
        self._changed = trio.Event()
        self._posted = 0
        self._send, self._receive = trio.open_memory_channel[Proposal](0)

    # -- waiting -----------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    def settled(self) -> bool:
        """A step waits for the client, or the flow has finished."""
        return self.step is not None or self.status != "running"

    def touch(self, idle_s: float) -> None:
        """The client did something: the idle limit counts from now."""
        self.scope.deadline = trio.current_time() + idle_s

    # -- the flow's side ---------------------------------------------------------------------

    def post(self, step: Step) -> Step:
        self._posted += 1
        posted = attrs.evolve(step, id=f"step-{self._posted}")
        self.step = posted
        self._publish(self)
        self._notify()
        return posted

    async def receive(self) -> Proposal:
        return await self._receive.receive()

    def decide(self, proposal: Proposal, error: InvalidArgument | None) -> None:
        proposal.decided = True
        proposal.error = error
        if error is None:
            self.step = None  # the flow works on until it posts the next step or ends
        self._notify()

    def finish(
        self, status: SessionStatus, *, outro: Step | None = None, error: str | None = None
    ) -> None:
        SESSIONS.check(self.status, status)
        self.status = status
        self.step = None
        if outro is not None:
            self._posted += 1
            self.step = attrs.evolve(outro, id=f"step-{self._posted}")
        self.error = error
        self._receive.close()
        self.finished.set()
        self._publish(self)
        self._notify()

    # -- the client's side -------------------------------------------------------------------

    async def propose(self, value: Any) -> None:
        """Hand ``value`` to the flow for the current step; returns once the session has
        settled on what follows, or raises the flow's verdict on a wrong answer."""
        proposal = Proposal(value)
        try:
            await self._send.send(proposal)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self.not_running() from None
        await self.wait_until(lambda: proposal.decided or self.status != "running")
        if proposal.error is not None:
            raise proposal.error
        await self.wait_until(self.settled)

    def not_running(self) -> InvalidState:
        return InvalidState(f"wizard session {self.session_id} is {self.status}")

    def view(self) -> dict[str, Any]:
        """What ``wizard.status`` shows: never an answer, so never a secret."""
        out: dict[str, Any] = {"status": self.status}
        if self.step is not None:
            out["step"] = self.step.to_json()
        if self.error is not None:
            out["error"] = self.error
        return out


@final
class WizardUI:
    """What a flow sees of its session: ``await ui.ask(step)``, ``await ui.note(...)``."""

    def __init__(self, session: WizardSession) -> None:
        self._session = session

    async def ask(self, step: Step) -> Any:
        """Show ``step`` and return its answer once it is the right type and passes the step's
        check; a wrong one is refused to the client and the step stays current."""
        session = self._session
        posted = session.post(step)
        while True:
            proposal = await session.receive()
            try:
                value = check_answer(posted, proposal.value)
                if posted.check is not None:
                    value = await posted.check(value)
            except InvalidArgument as exc:
                session.decide(proposal, exc)
                continue
            session.decide(proposal, None)
            return value

    async def note(self, title: str, message: str = "") -> None:
        """Show a note; returns once the client has called ``wizard.next``."""
        await self.ask(note(title, message))
