"""The run manager (PROTOCOL §7): admission, per-session FIFO, cancellation, the terminal event.

Every accepted run is a task in the manager's nursery with its own cancel scope, registered by
run id. A run waits for its *turn*: first in its session's lane (runs on one session are
serialised, FIFO) and then for one of ``runs.max_concurrent`` slots (FIFO across sessions).
Compaction takes a session's lane too, so no run starts while its history is being rewritten.

Whatever happens to a run (completion, a provider failure, a timeout, ``agent.cancel``, a
deleted session, gateway shutdown), its task ends through :meth:`RunManager._finish`, which
stores the partial assistant text, persists the final record and then publishes
``stream.end`` (if the stream started) and exactly one terminal event. Nothing of the run is
published after that.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, final

import attrs
import trio

from ..kernel import (
    Config,
    Conflict,
    ErrorCode,
    EventBus,
    FieldProblem,
    InvalidArgument,
    InvalidState,
    LimitReached,
    NotFound,
    Subscriber,
    component_logger,
    now_ts,
)
from ..providers import ModelCatalog, ModelInfo
from ..sessions import Compactor, SessionService
from ..store import Run, Store, StoreError
from ._agent_loop import AgentLoop, RunFailure
from ._agents import Agent, resolve_agent
from ._lanes import Lanes
from ._live_run import LiveRun, Outcome, Turn, utf8_size
from ._states import LIVE, check_transition
from ._workspaces import RunWorkspace, WorkspaceLookup

__all__ = ["RunManager", "RunStatistics"]

log = component_logger("runs")

T = TypeVar("T")

#: How long the final bookkeeping of a run may take once it has been cancelled.
FINISH_TIMEOUT_S: Final = 5.0
#: Idempotency keys of ``agent.run`` are kept this long (PROTOCOL §7).
IDEMPOTENCY_TTL_S: Final = 24 * 3600.0
#: ``agent.respondToInput`` messages waiting for a turn boundary, per run: at most this many,
#: and at most this many bytes (UTF-8) of them.
MAX_PENDING_INPUTS: Final = 100
MAX_PENDING_INPUT_BYTES: Final = 4 * 1024 * 1024

THINKING_FOR_TRUE: Final = "medium"


@attrs.frozen
class RunStatistics:
    live: int
    running: int
    queued: int
    max_concurrent: int
    #: Runs finished since the manager started, by final status.
    finished: dict[str, int] = attrs.Factory(dict)


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@final
class RunManager:
    """Owns every live run. Start it as the gateway's ``runs`` service."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        sessions: SessionService,
        models: ModelCatalog,
        loop: AgentLoop,
        compactor: Compactor,
        settings: Callable[[], Config],
        workspaces: WorkspaceLookup,
    ) -> None:
        self._store = store
        self._bus = bus
        self._sessions = sessions
        self._models = models
        self._loop = loop
        self._compactor = compactor
        self._settings = settings
        self._workspaces = workspaces
        self._nursery: trio.Nursery | None = None
        self._runs: dict[str, LiveRun] = {}
        self._finished: collections.Counter[str] = collections.Counter()
        self._lanes = Lanes(lambda: self._max_concurrent, self._admit)
        self._claiming = trio.Lock()
        #: Why no run is accepted any more (the gateway is stopping), or ``None``.
        self._closed: str | None = None
        self._idle = trio.lowlevel.ParkingLot()  #: woken whenever a run ends

    # -- service -----------------------------------------------------------------------------

    async def fail_interrupted(self, reason: str) -> int:
        """At start-up: runs a stopped process left unfinished are failed with ``reason``;
        returns how many there were."""
        return len(await self._store.fail_unfinished_runs(reason, LIVE))

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the runs' nursery open until cancelled; then every run gets its terminal event."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    def close_admission(self, reason: str) -> None:
        """Accept no new run from now on (:meth:`start` raises :class:`InvalidState` naming
        ``reason``); runs already accepted go on."""
        self._closed = reason

    async def wait_idle(self) -> None:
        """Wait until no run is live (each has published its terminal event)."""
        while self._runs:
            await self._idle.park()

    async def cancel_all(self, reason: str) -> None:
        """Cancel every live run (recorded ``cancelled`` with ``reason``) and wait for them."""
        for live in list(self._runs.values()):
            if not live.finishing and live.cancel_reason is None:
                live.cancel_reason = reason
            live.scope.cancel()
        await self.wait_idle()

    def statistics(self) -> RunStatistics:
        running = sum(1 for r in self._runs.values() if r.admitted.is_set())
        return RunStatistics(
            len(self._runs),
            running,
            len(self._runs) - running,
            self._max_concurrent,
            dict(self._finished),
        )

    @property
    def _max_concurrent(self) -> int:
        return self._settings().runs.max_concurrent

    def fill(self) -> None:
        """Admit queued runs into slots that a larger ``runs.max_concurrent`` opened."""
        self._lanes.fill()

    def bus_publish(self, topic: str, data: dict[str, Any], run: LiveRun) -> None:
        self._bus.publish(
            topic, data, run_id=run.record.run_id, principal_id=run.record.principal_id
        )

    async def save(self, record: Run) -> None:
        await self._store.save_run(record)

    # -- queries -----------------------------------------------------------------------------

    def live(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    async def get(self, run_id: str) -> Run:
        """The run's current record, live or stored; ``-32004`` when there is no such run."""
        live = self._runs.get(run_id)
        if live is not None:
            return live.record
        record = await self._store.get_run(run_id)
        if record is None:
            raise NotFound("run", run_id)
        return record

    async def wait_finished(self, run_id: str) -> Run:
        """Wait until the run has ended (its terminal event is out); returns its final record."""
        live = self._runs.get(run_id)
        if live is not None:
            await live.done.wait()
        return await self.get(run_id)

    def active_run(self, session_key: str) -> LiveRun | None:
        """The run holding ``session_key`` now (not one queued behind it)."""
        for turn in self._lanes.turns(session_key):
            if isinstance(turn, LiveRun) and turn.admitted.is_set() and not turn.finishing:
                return turn
        return None

    def session_busy(self, session_key: str) -> bool:
        return self._lanes.busy(session_key)

    # -- starting ----------------------------------------------------------------------------

    async def start(
        self,
        message: str,
        *,
        session_key: str | None = None,
        agent_id: str | None = None,
        model: str | None = None,
        thinking: str | bool | None = None,
        idempotency_key: str | None = None,
        principal_id: str | None = None,
        watcher: Subscriber | None = None,
        workspace_id: str | None = None,
    ) -> Run:
        """Accept a run and return its record (``running`` or ``queued``); its events follow.

        In a workspace, the workspace's agent, model and tools apply where the caller named none,
        and ``exec`` runs in its directory. Raises :class:`NotFound` for an unknown agent or
        workspace, :class:`InvalidState` for an archived workspace, :class:`InvalidArgument` for
        an unknown model and :class:`Conflict` for a reused idempotency key with other
        parameters.
        """
        if self._closed is not None:
            raise InvalidState(f"no new runs are accepted: {self._closed}")
        workspace = await self._workspaces.for_run(workspace_id) if workspace_id else None
        config = self._settings()
        agent = resolve_agent(
            config, agent_id or (workspace.agent_id if workspace else None) or "main"
        )
        key = session_key or f"agent:{agent.id}:main"
        info = self._resolve_model(model, agent, workspace)
        level = agent.thinking if thinking is None else thinking
        if isinstance(level, bool):
            level = THINKING_FOR_TRUE if level else "off"
        run_id = "run_" + uuid.uuid4().hex
        accept = functools.partial(
            self._accept,
            message=message,
            session_key=key,
            agent=agent,
            model=info,
            thinking=level,
            principal_id=principal_id,
            watcher=watcher,
            workspace=workspace,
        )
        if idempotency_key is None:
            live = accept(run_id)
            await self.save(live.record)  # queued before it runs: its task has not started yet
            return live.record
        claim = f"agent.run:{principal_id or ''}:{idempotency_key}"
        fingerprint = _fingerprint(message, key, agent.id, info.id, level)
        if workspace is not None:  # so keys used before workspaces existed still match
            fingerprint = _fingerprint(fingerprint, workspace.workspace_id)
        async with self._claiming:
            existing = await self._store.claim_key(claim, fingerprint, run_id, IDEMPOTENCY_TTL_S)
            if existing is not None:
                old_fingerprint, old_run = existing
                if old_fingerprint != fingerprint:
                    raise Conflict("idempotency_key was already used with other parameters")
                try:
                    record = await self.get(old_run)
                except NotFound:
                    run_id = old_run  # accepted but never stored (the process died): redo it
                else:
                    if watcher is not None and old_run in self._runs:
                        self._watch(self._runs[old_run], watcher)
                    return record
            live = accept(run_id)
            await self.save(live.record)
        return live.record

    def _resolve_model(
        self, model: str | None, agent: Agent, workspace: RunWorkspace | None
    ) -> ModelInfo:
        """The caller's model, else the workspace's, else the agent's, else the default; an
        unknown one is reported as the mistake of whoever chose it."""
        catalog = self._models
        chosen = workspace.model if workspace is not None and model is None else None
        model_id = model or chosen or agent.model or catalog.default_model
        try:
            return catalog.resolve(model_id)
        except NotFound:
            if chosen is not None and workspace is not None:
                raise InvalidArgument(
                    f"workspace {workspace.workspace_id} ({workspace.name!r}) is configured with "
                    f"model {model_id!r}, which no provider offers: change it with "
                    "workspace.update, or pass model (see models.list)"
                ) from None
            if model is None:  # not the caller's mistake: the agent's configuration
                raise InvalidArgument(
                    f"agent {agent.id!r} is configured with model {model_id!r}, which no "
                    f"provider offers: fix agents.{agent.id}.model in the config, or pass "
                    "model (see models.list)"
                ) from None
            raise InvalidArgument(
                f"unknown model {model_id!r} (see models.list)",
                problems=[FieldProblem("$.model", f"unknown model {model_id!r}")],
            ) from None

    def _accept(
        self,
        run_id: str,
        *,
        message: str,
        session_key: str,
        agent: Agent,
        model: ModelInfo,
        thinking: str,
        principal_id: str | None,
        watcher: Subscriber | None,
        workspace: RunWorkspace | None,
    ) -> LiveRun:
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("the run manager is not serving")
        record = Run(
            run_id=run_id,
            session_key=session_key,
            agent_id=agent.id,
            model=model.id,
            status="queued",
            created_at=now_ts(),
            principal_id=principal_id,
            workspace_id=workspace.workspace_id if workspace is not None else None,
        )
        live = LiveRun(
            session_key,
            record=record,
            agent=agent,
            model=model,
            provider=self._models.provider_for(model),
            message=message,
            thinking=thinking,
            manager=self,
            cwd=workspace.path if workspace is not None else None,
            workspace_tools=(
                frozenset(workspace.tools)
                if workspace is not None and workspace.tools is not None
                else None
            ),
        )
        if watcher is not None:
            self._watch(live, watcher)
        self._runs[run_id] = live
        self._lanes.enqueue(live)
        nursery.start_soon(self._drive, live, name=f"run {run_id}")
        log.debug(
            "run %s accepted on %s (agent %s, model %s)", run_id, session_key, agent.id, model.id
        )
        return live

    def _watch(self, live: LiveRun, watcher: Subscriber) -> None:
        self._bus.own_run(watcher, live.run_id)
        live.watchers.append(watcher)

    # -- admission -------------------------------------------------------------------------

    def _admit(self, turn: Turn) -> None:
        if isinstance(turn, LiveRun):
            turn.record = attrs.evolve(
                turn.record,
                status=check_transition(turn.record.status, "running"),
                started_at=now_ts(),
            )
            turn.started_at = trio.current_time()
            log.debug("run %s: queued -> running", turn.run_id)
        turn.admitted.set()

    # -- the run's task ----------------------------------------------------------------------

    async def _drive(self, live: LiveRun) -> None:
        try:
            await self._execute(live)
            if live.compacting:
                await self._compact(live)
        finally:
            self._lanes.release(live)

    async def _execute(self, live: LiveRun) -> Outcome:
        outcome: Outcome | None = None
        try:
            with live.scope:
                await live.admitted.wait()
                timeout = self._settings().runs.timeout_s
                with trio.move_on_after(timeout) as timer:
                    outcome = await self._work(live)
                if timer.cancelled_caught:
                    outcome = Outcome(
                        "failed",
                        f"the run timed out after {timeout:g} s (runs.timeout_s)",
                        ErrorCode.TIMEOUT_ERROR,
                    )
            if outcome is None:
                outcome = Outcome("cancelled", live.cancel_reason or "cancelled")
            return outcome
        finally:
            if outcome is None:  # cancelled from outside: the gateway is stopping
                outcome = Outcome("cancelled", "gateway shutting down")
            with trio.CancelScope(shield=True), trio.move_on_after(FINISH_TIMEOUT_S):
                await self._finish(live, outcome)

    async def _work(self, live: LiveRun) -> Outcome:
        try:
            await self.save(live.record)  # admission made it ``running``; persist that
            live.emit("agent.started", {"agent_id": live.agent.id, "model": live.model.id})
            live.emit("stream.start", {"model": live.model.id})
            live.stream_started = True
            await self._loop.run(live)
        except RunFailure as exc:
            return Outcome("failed", exc.message, exc.code)
        except StoreError as exc:
            log.error("run %s: %s", live.run_id, exc)
            return Outcome("failed", f"storage failed: {exc}", ErrorCode.INTERNAL_ERROR)
        except Exception as exc:
            log.exception("run %s crashed", live.run_id)
            return Outcome(
                "failed", f"internal error: {type(exc).__name__}", ErrorCode.INTERNAL_ERROR
            )
        return Outcome("completed")

    async def _finish(self, live: LiveRun, outcome: Outcome) -> None:
        """Store what is left, persist the final record, then publish the last events."""
        live.finishing = True
        try:
            live.flush_pieces()  # text still held is part of the run's text, stored and shown
            try:
                if live.unsaved:
                    await self._sessions.append(
                        live.session_key, "assistant", "".join(live.unsaved), run_id=live.run_id
                    )
                    live.unsaved.clear()
                for call_id in live.open_calls:
                    await self._sessions.append(
                        live.session_key,
                        "tool",
                        f"Error: the run was {outcome.status} before this tool finished",
                        run_id=live.run_id,
                        tool_call_id=call_id,
                    )
                live.open_calls.clear()
            except StoreError as exc:
                log.error("run %s: could not store its last messages: %s", live.run_id, exc)
            output = "".join(live.text)
            live.text = [output]  # the pieces go: the run's text is held once
            live.record = attrs.evolve(
                live.record,
                status=check_transition(live.record.status, outcome.status),
                finished_at=now_ts(),
                error=outcome.message if outcome.status == "failed" else None,
                error_code=outcome.code,
                output=output,
            )
            self._finished[outcome.status] += 1
            try:
                await self.save(live.record)
            except StoreError as exc:
                log.error("run %s: could not store its final state: %s", live.run_id, exc)
            self._runs.pop(live.run_id, None)
            if live.running_tool is not None:  # it was stopped: say so before the stream ends
                call_id, tool, started = live.running_tool
                live.emit(
                    "stream.tool_end",
                    {
                        "tool_call_id": call_id,
                        "tool": tool,
                        "output": f"stopped: the run was {outcome.status} while {tool} ran",
                        "is_error": True,
                        "duration_ms": round((trio.current_time() - started) * 1000),
                    },
                )
            # The session is free before the terminal event, unless compaction takes it over.
            live.compacting = outcome.status == "completed" and await self._compaction_due(live)
            if not live.compacting:
                self._lanes.release(live)
            if live.stream_started:
                live.emit("stream.end", {"status": outcome.status, "content": output})
            live.emit(*self._terminal_event(live, outcome))
            log.info("run %s %s", live.run_id, outcome.status)
        finally:
            self._runs.pop(live.run_id, None)
            for watcher in live.watchers:
                self._bus.release_run(watcher, live.run_id)
            live.done.set()
            self._idle.unpark_all()

    @staticmethod
    def _terminal_event(live: LiveRun, outcome: Outcome) -> tuple[str, dict[str, Any]]:
        if outcome.status == "completed":
            duration_ms = round((trio.current_time() - live.started_at) * 1000)
            return "agent.completed", {
                "iterations": live.record.iterations,
                "tokens_used": live.record.tokens_used,
                "duration_ms": duration_ms,
            }
        if outcome.status == "failed":
            code = outcome.code or ErrorCode.INTERNAL_ERROR
            return "agent.error", {"error": {"code": int(code), "message": outcome.message}}
        return "agent.cancelled", {"reason": outcome.message}

    async def _compaction_due(self, live: LiveRun) -> bool:
        try:
            session = await self._store.get_session(live.session_key)
        except StoreError:
            return False
        threshold = self._settings().sessions.compact_at_tokens
        return session is not None and session.token_count > threshold

    async def _compact(self, live: LiveRun) -> None:
        """Compact the session the run just finished on, still holding its lane."""
        live.scope = trio.CancelScope()  # so session.delete and shutdown can still stop it
        with live.scope:
            try:
                await self._compactor.compact(live.session_key, model=live.model)
            except Exception as exc:
                log.warning("automatic compaction of %s failed: %s", live.session_key, exc)

    # -- control -----------------------------------------------------------------------------

    async def cancel(self, run_id: str, reason: str) -> bool:
        """Cancel a run and wait until its task has cleaned up; ``False`` if it had finished."""
        live = self._runs.get(run_id)
        if live is None:
            await self.get(run_id)  # NotFound for a run that never existed
            return False
        if live.finishing:
            await live.done.wait()
            return False
        if live.cancel_reason is None:
            live.cancel_reason = reason
        live.scope.cancel()
        await live.done.wait()
        return True

    async def cancel_session(self, session_key: str, reason: str) -> None:
        """Cancel every run on a session, queued ones included, and wait for them all."""
        turns = self._lanes.turns(session_key)
        for turn in turns:
            if isinstance(turn, LiveRun) and turn.cancel_reason is None:
                turn.cancel_reason = reason
            turn.scope.cancel()
        for turn in turns:
            await turn.done.wait()

    def respond(self, run_id: str, message: str) -> bool:
        """Hand ``message`` to a live run: it answers the run's question, or waits for the next
        turn boundary. ``False`` when no live run has that id."""
        live = self._runs.get(run_id)
        if live is None or live.finishing:
            return False
        question = live.question
        if question is not None:
            live.question = None
            question.answer.send_nowait(message)
            return True
        if len(live.inputs) >= MAX_PENDING_INPUTS:
            raise LimitReached(
                f"run {run_id} already has {MAX_PENDING_INPUTS} messages waiting for it"
            )
        if live.input_bytes + utf8_size(message) > MAX_PENDING_INPUT_BYTES:
            raise LimitReached(
                f"run {run_id} already has {live.input_bytes} bytes of messages waiting for it; "
                f"at most {MAX_PENDING_INPUT_BYTES} may wait"
            )
        live.queue_input(message)
        return True

    async def exclusive(
        self, session_key: str, fn: Callable[[], Awaitable[T]], *, busy_message: str
    ) -> T:
        """Run ``fn`` holding ``session_key`` (no run starts meanwhile); refused with
        :class:`InvalidState` (``busy_message``) if it is busy."""
        if self.session_busy(session_key):
            raise InvalidState(busy_message)
        turn = Turn(session_key, needs_slot=False)
        self._lanes.enqueue(turn)
        try:
            with turn.scope:
                return await fn()
            raise InvalidState(f"session {session_key} was deleted meanwhile")
        finally:
            self._lanes.release(turn)
            turn.done.set()
