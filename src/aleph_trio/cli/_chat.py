"""``aleph-trio chat``: a conversation that answers what the gateway asks, inline.

Each line typed is sent with ``chat.send`` on the chat's own session, so two chats never queue
behind each other; the run's events are shown as they come. When the run wants to execute a
command (``exec.approval_requested``) the command and its directory are shown and the answer
goes back with ``exec.approval.resolve``; a question (``agent.input_requested``) is answered
with ``agent.respondToInput``. A prompt is withdrawn when the gateway moves on without it
(answered elsewhere, timed out, run ended). While a prompt waits, events keep being read, so
the connection never stalls.

A run's events come to the connection that started it; the chat also subscribes to the few
that let it finish a run after a reconnect (``agent.*``, ``stream.end`` with the whole answer,
``exec.approval_*``), which the client replays from the last ``seq`` it saw.
"""

from __future__ import annotations

import collections
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import trio

from ..client import Client, ClientEvent, ConnectionLost
from ..protocol import AlephError, PermissionDenied
from ._chat_view import ChatView, chat_view, question_text
from ._connect import CliError, report_reconnects
from ._input import LineReader
from ._interrupt import EXIT_INTERRUPTED, Interrupt
from ._output import Output

__all__ = ["chat", "session_key_for"]

TERMINAL = frozenset({"agent.completed", "agent.error", "agent.cancelled"})
FINISHED = frozenset({"completed", "failed", "cancelled"})
PATTERNS = ["agent.*", "stream.end", "exec.approval_*"]
DECISIONS = {
    "o": "allow-once",
    "once": "allow-once",
    "y": "allow-once",
    "yes": "allow-once",
    "a": "allow-always",
    "always": "allow-always",
    "d": "deny",
    "deny": "deny",
    "n": "deny",
    "no": "deny",
}
ABORT_GRACE_S = 3.0


def session_key_for(session: str | None, agent: str | None) -> str:
    """``--session`` as given, else a new ``agent:<agent>:cli-<random>`` of the chat's own."""
    if session is None:
        return f"agent:{agent or 'main'}:cli-{secrets.token_hex(3)}"
    parts = session.split(":")
    if agent is not None and parts[:2] != ["agent", agent]:
        raise CliError(f"--session {session} is not a session of --agent {agent}")
    return session


async def chat(
    client: Client,
    out: Output,
    lines: LineReader,
    interrupt: Interrupt,
    *,
    session: str | None,
    agent: str | None,
) -> int:
    key = session_key_for(session, agent)
    conversation = Conversation(client, chat_view(out), lines, key)
    await conversation.prepare(agent, resumed=session is not None)
    with interrupt.scope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(report_reconnects, client, conversation.view.note)
            await conversation.converse()
            nursery.cancel_scope.cancel()
    if scope.cancelled_caught:
        conversation.view.interrupted()
        await conversation.abort()  # do not leave a run waiting for answers nobody will give
        return EXIT_INTERRUPTED
    conversation.view.goodbye(key)
    return 0


class Conversation:
    def __init__(self, client: Client, view: ChatView, lines: LineReader, key: str) -> None:
        self.client = client
        self.view = view
        self.lines = lines
        self.key = key
        self.run_id: str | None = None
        #: Ids of the approvals the current run asked for.
        self.approvals: set[str] = set()
        #: Events read while a prompt waited, in order, for the run to go on with.
        self.pending: collections.deque[ClientEvent] = collections.deque()

    async def prepare(self, agent: str | None, *, resumed: bool) -> None:
        try:
            await self.client.subscribe(PATTERNS)
        except PermissionDenied:
            pass  # a guest without events.subscribe: its own runs' events still come
        if agent is not None:
            await self._check_agent(agent)
        earlier = None
        if resumed:
            history = await self.client.call(
                "chat.history", {"session_key": self.key, "limit": 1000}
            )
            earlier = len(history["messages"])
        self.view.header(self.key, earlier)

    async def _check_agent(self, agent: str) -> None:
        try:
            listed = await self.client.call("agent.list")
        except PermissionDenied:
            return
        known = [a["id"] for a in listed["agents"]]
        if agent not in known:
            raise CliError(f"no agent {agent!r} on this gateway (agents: {', '.join(known)})")

    async def converse(self) -> None:
        while True:
            line = await self._ask("> ")
            if line is None:
                return
            if isinstance(line, str) and line.strip():
                await self._send(line)

    async def abort(self) -> None:
        """Stop the run being followed, within a few seconds."""
        if self.run_id is None:
            return
        with trio.move_on_after(ABORT_GRACE_S):
            try:
                await self.client.call("chat.abort", {"run_id": self.run_id})
            except (AlephError, ConnectionLost):
                pass

    # -- one run -----------------------------------------------------------------------------

    async def _send(self, message: str) -> None:
        params = {"message": message, "session_key": self.key, "idempotency_key": uuid.uuid4().hex}
        while True:
            try:
                result: dict[str, Any] = await self.client.call("chat.send", params)
                break
            except ConnectionLost:
                continue  # the client reconnects; the idempotency key makes the retry safe
            except AlephError as exc:
                self.view.note(f"error {exc.code}: {exc.message}")
                return
        self.run_id = result["run_id"]
        self.view.run_started(result)
        await self._follow()
        self.run_id = None
        self.approvals.clear()
        self.pending.clear()

    async def _follow(self) -> None:
        while True:
            event = self.pending.popleft() if self.pending else await self.client.next_event()
            if event.topic == "client.resync":
                if await self._ended_meanwhile():
                    return
                continue
            if not self._mine(event):
                continue
            self.view.event(event)
            if event.topic == "exec.approval_requested":
                await self._approve(event.data)
            elif event.topic == "agent.input_requested":
                await self._answer(event.data)
            elif event.topic in TERMINAL:
                return

    def _mine(self, event: ClientEvent) -> bool:
        data = event.data
        if self.run_id is None:
            return False
        if event.topic == "exec.approval_resolved":  # its data names the approval, not the run
            return data.get("id") in self.approvals
        if data.get("run_id") != self.run_id:
            return False
        if event.topic == "exec.approval_requested":
            self.approvals.add(str(data.get("id")))
        return True

    async def _ended_meanwhile(self) -> bool:
        """After a gateway restart or lost events: whether the run ended (and say how)."""
        try:
            status = await self.client.call("agent.status", {"run_id": self.run_id})
        except ConnectionLost:
            return False
        except AlephError as exc:
            self.view.note(f"the run cannot be followed any more: {exc.message}")
            return True
        if status["status"] not in FINISHED:
            return False
        error = status.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        self.view.note(f"the run ended {status['status']}" + (f": {error}" if error else ""))
        return True

    async def _approve(self, data: dict[str, Any]) -> None:
        while True:
            answer = await self._ask(self.view.approval_prompt(data), stop=self._mine)
            if isinstance(answer, ClientEvent):
                return  # decided elsewhere, timed out or the run ended: the run's events say so
            decision = "deny" if answer is None else DECISIONS.get(answer.strip().lower())
            if decision is not None:
                break
            self.view.note("answer o (allow once), a (allow always) or d (deny)")
        await self._reply("exec.approval.resolve", {"id": data.get("id"), "decision": decision})

    async def _answer(self, data: dict[str, Any]) -> None:
        options = [str(o) for o in data.get("options") or []]
        while True:
            answer = await self._ask(question_text(data), stop=self._mine)
            if isinstance(answer, ClientEvent):
                return  # answered elsewhere or the run ended
            if answer is None:  # end of input: nobody is left to answer
                await self.abort()
                return
            text = answer.strip()
            if text.isdigit() and 1 <= int(text) <= len(options):
                text = options[int(text) - 1]
            if text:
                break
        await self._reply("agent.respondToInput", {"run_id": self.run_id, "message": text})

    async def _reply(self, method: str, params: dict[str, Any]) -> None:
        while True:
            try:
                await self.client.call(method, params)
                return
            except ConnectionLost:
                continue  # a second answer is refused harmlessly (the first one wins)
            except AlephError as exc:
                self.view.note(f"not answered: {exc.message}")
                return

    # -- prompts -----------------------------------------------------------------------------

    async def _ask(
        self, prompt: str, stop: Callable[[ClientEvent], bool] | None = None
    ) -> str | ClientEvent | None:
        """A line typed after ``prompt`` (``None`` at the end of input), reading events
        meanwhile. The first event for which ``stop`` holds withdraws the prompt and is
        returned (it stays queued for the run to handle)."""
        if stop is not None:
            for event in self.pending:
                if stop(event):
                    return event
        if self.lines.interactive:
            self.view.prompt(prompt)
        typed: list[str | None] = []
        stopped: list[ClientEvent] = []
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                typed.append(await self.lines.readline())
                nursery.cancel_scope.cancel()

            async def watch() -> None:
                while True:
                    event = await self.client.next_event()
                    if stop is not None and stop(event):
                        self.pending.append(event)
                        stopped.append(event)
                        nursery.cancel_scope.cancel()
                        return
                    if self.run_id is not None and (
                        event.topic == "client.resync" or self._mine(event)
                    ):
                        self.pending.append(event)

            nursery.start_soon(read)
            nursery.start_soon(watch)
        if stopped:
            if typed and typed[0] is not None:
                self.lines.unread(typed[0])
            return stopped[0]
        if typed[0] is None:
            pass  # end of input: nothing was echoed
        elif self.lines.interactive:
            self.view.answered()
        else:
            self.view.typed(prompt, typed[0])
        return typed[0]
