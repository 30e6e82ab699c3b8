"""A run in flight: its record, its request, its text so far and how it speaks to clients.

:class:`Turn` is what waits in a session's lane (a run, or a compaction holding the session);
:class:`LiveRun` is a run from acceptance until its terminal event: it collects streamed text into
events (one per provider batch), moves its status through the run state table, asks the user
questions and counts iterations and tokens. The :class:`~._runs.RunManager` owns every live run.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, Literal, final

import attrs
import trio

from ..kernel import component_logger
from ..providers import ModelInfo, Provider
from ..store import Run
from ._agents import Agent
from ._states import check_transition

if TYPE_CHECKING:
    from ..kernel import Subscriber
    from ._manager import RunManager

__all__ = ["LiveRun", "Outcome", "Question", "Turn", "utf8_size"]

log = component_logger("runs")


def utf8_size(text: str) -> int:
    """The bytes of ``text`` in UTF-8 (without encoding it when it is ASCII, the usual case)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@attrs.define(eq=False)
class Turn:
    """A session's lane entry: a run, or a compaction holding the session."""

    session_key: str
    needs_slot: bool = True
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    admitted: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)
    #: Being finished: never admitted again; its own release offers the session's next turn.
    finishing: bool = attrs.field(default=False, kw_only=True)


@attrs.define(eq=False)
class Question:
    request_id: str
    answer: trio.MemorySendChannel[str]


@attrs.frozen
class Outcome:
    status: Literal["completed", "failed", "cancelled"]
    message: str | None = None
    code: int | None = None


@final
@attrs.define(eq=False)
class LiveRun(Turn):
    """A run that has not finished: its record, its request and what it has produced so far."""

    record: Run = attrs.field(kw_only=True)
    agent: Agent = attrs.field(kw_only=True)
    model: ModelInfo = attrs.field(kw_only=True)
    provider: Provider = attrs.field(kw_only=True)
    message: str = attrs.field(kw_only=True)
    thinking: str = attrs.field(kw_only=True)
    manager: RunManager = attrs.field(kw_only=True)
    watchers: list[Subscriber] = attrs.field(kw_only=True, factory=list)
    #: The run's workspace directory (``exec``'s default ``cwd``), ``None`` outside a workspace.
    cwd: str | None = attrs.field(kw_only=True, default=None)
    #: The only tools the run's workspace lets it use (of its agent's); ``None``: no such limit.
    workspace_tools: frozenset[str] | None = attrs.field(kw_only=True, default=None)
    cancel_reason: str | None = None
    compacting: bool = False  #: finished, and holding its session for automatic compaction
    stream_started: bool = False
    #: The run's text, one string per published ``stream.chunk`` (the event's own content, so
    #: the text is held once while the run lasts), and its size in UTF-8.
    text: list[str] = attrs.Factory(list)
    text_bytes: int = 0
    unsaved: list[str] = attrs.Factory(list)  #: the part of ``text`` not yet stored
    open_calls: list[str] = attrs.Factory(list)  #: stored tool calls without a stored result
    chunk_index: int = 0
    thinking_index: int = 0
    received: int = 0  #: text and thinking pieces the model sent (published or not)
    _pieces: list[str] = attrs.Factory(list)  #: received, not yet published
    _piece_topic: str = "stream.chunk"
    #: ``agent.respondToInput`` messages waiting for the next turn, and their size in UTF-8.
    inputs: collections.deque[str] = attrs.Factory(collections.deque)
    input_bytes: int = 0
    question: Question | None = None
    #: The tool call under way: (tool_call_id, tool, trio time it started).
    running_tool: tuple[str, str, float] | None = None
    started_at: float = 0.0  #: ``trio.current_time()`` when admitted

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def agent_id(self) -> str:
        return self.agent.id

    def may_use(self, tool: str, opt_in: Collection[str] = ()) -> bool:
        """Whether the run may call ``tool``: its agent may (``opt_in`` tools only when the
        agent names them), and its workspace allows it."""
        allowed = self.workspace_tools
        return self.agent.may_use(tool, opt_in) and (allowed is None or tool in allowed)

    def allowed(self, tools: Iterable[str], opt_in: Collection[str] = ()) -> list[str]:
        return [name for name in tools if self.may_use(name, opt_in)]

    def emit(self, topic: str, data: dict[str, Any]) -> None:
        """Publish an event of this run (it carries ``run_id`` and ``session_key``); text still
        waiting to be published goes out first, so the order of events is kept."""
        if self._pieces:
            self.flush_pieces()
        self._publish(topic, data)

    def _publish(self, topic: str, data: dict[str, Any]) -> None:
        payload = {"run_id": self.record.run_id, "session_key": self.session_key, **data}
        self.manager.bus_publish(topic, payload, self)

    def add_piece(self, topic: str, text: str) -> None:
        """Text (``stream.chunk``) or thinking (``stream.thinking``) from the model.

        Pieces are held until :meth:`flush_pieces`, which the agent loop calls after each batch
        a provider yields: what one read from the provider decoded becomes one event, so a fast
        provider cannot flood a client with tiny events, and a slow one still gets each piece
        out at once.
        """
        if self._pieces and topic != self._piece_topic:
            self.flush_pieces()
        self._piece_topic = topic
        self._pieces.append(text)
        self.received += 1
        if topic == "stream.chunk":
            self.text_bytes += utf8_size(text)

    def flush_pieces(self) -> None:
        """Publish the pieces held as one event; text joins the run's ``text`` as that event's
        content."""
        if not self._pieces:
            return
        content = "".join(self._pieces)
        self._pieces.clear()
        if self._piece_topic == "stream.chunk":
            self.text.append(content)
            self.unsaved.append(content)
            index, self.chunk_index = self.chunk_index, self.chunk_index + 1
        else:
            index, self.thinking_index = self.thinking_index, self.thinking_index + 1
        self._publish(self._piece_topic, {"content": content, "index": index})

    async def set_status(self, status: str) -> None:
        """Move to ``status`` and persist it (state first: callers publish afterwards)."""
        log.debug("run %s: %s -> %s", self.run_id, self.record.status, status)
        self.record = attrs.evolve(self.record, status=check_transition(self.record.status, status))
        await self.manager.save(self.record)

    async def ask_user(self, question: str, options: list[str] | None) -> str:
        """Put the run in ``waiting_input`` until ``agent.respondToInput`` answers."""
        send, receive = trio.open_memory_channel[str](1)
        request = Question("input_" + uuid.uuid4().hex[:16], send)
        self.question = request
        try:
            await self.set_status("waiting_input")
            data: dict[str, Any] = {"request_id": request.request_id, "question": question}
            if options:
                data["options"] = options
            self.emit("agent.input_requested", data)
            async with receive:
                answer = await receive.receive()
        finally:
            if self.question is request:
                self.question = None
        await self.set_status("running")
        return answer

    def queue_input(self, message: str) -> None:
        self.inputs.append(message)
        self.input_bytes += utf8_size(message)

    def next_input(self) -> str:
        message = self.inputs.popleft()
        self.input_bytes -= utf8_size(message)
        return message

    def count_call(self) -> None:
        self.record = attrs.evolve(self.record, iterations=self.record.iterations + 1)

    def count_tokens(self, tokens: int) -> None:
        self.record = attrs.evolve(self.record, tokens_used=self.record.tokens_used + tokens)
