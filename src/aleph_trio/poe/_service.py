"""The POE service (PROTOCOL §16): contracts and POE runs, the gateway's ``poe`` service.

A contract holds normalised terms until the owner signs it (which starts a POE run with those
terms) or rejects it. ``poe.prepare`` without criteria asks the agent's model to draft them; a
draft that is not usable (no JSON, an invalid rule, a provider failure) is replaced by one
``judge`` rule built from the objective, and the terms say so (``criteria_source``,
``criteria_note``). POE runs themselves are run by ``_loop.py``, each a child task of this
service's nursery with its own cancel scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final, final

import attrs
import trio

from ..kernel import (
    Config,
    EventBus,
    InvalidArgument,
    InvalidState,
    NotFound,
    component_logger,
    now_ts,
)
from ..providers import ModelCatalog
from ..runs import resolve_agent
from ..store import PoeContract, PoeRun, Store
from ._criteria import Evaluator
from ._loop import AgentRuns, LivePoe, PoeRunner
from ._model import (
    DRAFT_SYSTEM,
    ModelUnavailable,
    ask_model,
    draft_prompt,
    read_criteria,
)
from ._spec import Judge, Spec, parse_criteria, parse_spec
from ._states import CONTRACTS, LIVE

__all__ = ["PoeService", "contract_json", "run_json"]

log = component_logger("poe")

#: The error of POE runs a stopped process left ``running`` (the words agent runs get, §7).
INTERRUPTED: Final = "interrupted by gateway restart"


def run_json(record: PoeRun) -> dict[str, Any]:
    """``poe.status`` (and each entry of ``poe.list``)."""
    spec = record.spec
    evaluated = [entry for entry in record.attempts if "criteria" in entry]
    last = evaluated[-1] if evaluated else {}
    out: dict[str, Any] = {
        "run_id": record.run_id,
        "status": record.status,
        "progress": {
            "attempt": record.attempt,
            "max_attempts": spec.get("max_attempts"),
            "phase": record.phase,
            "last_score": record.last_score,
        },
        "objective": spec.get("objective"),
        "agent_id": record.agent_id,
        "session_key": record.session_key,
        "tokens_used": record.tokens_used,
        "max_tokens": spec.get("max_tokens"),
        "agent_run_ids": [entry["agent_run_id"] for entry in record.attempts],
        "criteria": last.get("criteria", []),
        "attempts": record.attempts,
        "spec": spec,
        "created_at": record.created_at,
    }
    for key in ("finished_at", "error", "contract_id"):
        value = getattr(record, key)
        if value is not None:
            out[key] = value
    return out


def contract_json(contract: PoeContract) -> dict[str, Any]:
    out: dict[str, Any] = {
        "contract_id": contract.contract_id,
        "status": contract.status,
        "terms": contract.terms,
        "created_at": contract.created_at,
    }
    if contract.decided_at is not None:
        out["decided_at"] = contract.decided_at
    if contract.run_id is not None:
        out["run_id"] = contract.run_id
    return out


@final
class PoeService:
    """Owns contracts and POE runs. Start it as the gateway's ``poe`` service."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        runs: AgentRuns,
        models: ModelCatalog,
        evaluator: Evaluator,
        settings: Callable[[], Config],
    ) -> None:
        self._store = store
        self._models = models
        self._settings = settings
        self._runner = PoeRunner(
            store=store,
            bus=bus,
            runs=runs,
            models=models,
            evaluator=evaluator,
            closed=lambda: self._closed,
        )
        self._nursery: trio.Nursery | None = None
        self._live: dict[str, LivePoe] = {}
        self._deciding = trio.Lock()
        self._idle = trio.lowlevel.ParkingLot()
        #: Why no POE run is started any more (the gateway is stopping), or ``None``.
        self._closed: str | None = None

    # -- service -----------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fail the POE runs a stopped process left running, then keep the runs' nursery open
        until cancelled (runs in flight end as cancelled)."""
        for record in await self._store.fail_unfinished_poe_runs(INTERRUPTED, LIVE):
            self._runner.publish(
                "poe.failed",
                record,
                status="failed",
                attempts=record.attempt,
                tokens_used=record.tokens_used,
                last_score=record.last_score,
                duration_ms=0,
                error=INTERRUPTED,
            )
            log.warning("POE run %s was cut short by the last stop; marked failed", record.run_id)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    def close_admission(self, reason: str) -> None:
        """Start no POE run, and no further attempt, from now on."""
        self._closed = reason

    def live_count(self) -> int:
        return len(self._live)

    async def wait_idle(self) -> None:
        """Wait until no POE run is in flight (each has published its outcome)."""
        while self._live:
            await self._idle.park()

    async def cancel_all(self, reason: str) -> None:
        """Cancel every POE run in flight (recorded ``cancelled`` with ``reason``) and wait."""
        for live in list(self._live.values()):
            if live.cancel_reason is None:
                live.cancel_reason = reason
            live.scope.cancel()
        await self.wait_idle()

    # -- runs --------------------------------------------------------------------------------

    async def run(
        self,
        spec_value: object,
        *,
        agent_id: str | None = None,
        principal_id: str | None = None,
        contract_id: str | None = None,
    ) -> PoeRun:
        """Validate ``spec_value`` and start a POE run with it (no signature step)."""
        spec = parse_spec(spec_value)
        return await self._start(spec, agent_id, principal_id, contract_id)

    async def _start(
        self, spec: Spec, agent_id: str | None, principal_id: str | None, contract_id: str | None
    ) -> PoeRun:
        if self._closed is not None:
            raise InvalidState(f"no new POE runs are started: {self._closed}")
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("the POE service is not serving")
        agent = resolve_agent(self._settings(), agent_id or spec.agent_id or "main")
        spec = attrs.evolve(spec, agent_id=agent.id)
        run_id = "poe_" + uuid.uuid4().hex
        record = PoeRun(
            run_id=run_id,
            status="running",
            spec=spec.to_json(),
            agent_id=agent.id,
            session_key=f"agent:{agent.id}:poe:{run_id}",
            created_at=now_ts(),
            attempt=1,
            contract_id=contract_id,
            principal_id=principal_id,
        )
        await self._store.save_poe_run(record)
        live = LivePoe(record, spec, began=trio.current_time())
        self._live[run_id] = live
        self._runner.publish(
            "poe.started",
            record,
            objective=spec.objective,
            agent_id=agent.id,
            max_attempts=spec.max_attempts,
            contract_id=contract_id,
        )
        nursery.start_soon(self._drive, live, name=f"POE run {run_id}")
        log.info("POE run %s started (agent %s): %s", run_id, agent.id, spec.objective)
        return record

    async def _drive(self, live: LivePoe) -> None:
        try:
            await self._runner.drive(live)
        finally:
            self._live.pop(live.run_id, None)
            self._idle.unpark_all()

    async def get(self, run_id: str) -> PoeRun:
        live = self._live.get(run_id)
        if live is not None:
            return live.record
        record = await self._store.get_poe_run(run_id)
        if record is None:
            raise NotFound("POE run", run_id)
        return record

    async def recent(self, *, limit: int) -> list[PoeRun]:
        """The newest ``limit`` POE runs, newest first (live ones as they stand now)."""
        stored = await self._store.list_poe_runs(limit=limit)
        return [self._live[r.run_id].record if r.run_id in self._live else r for r in stored]

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a POE run and its current agent run; returns once both have ended. ``False``
        when it had finished already."""
        live = self._live.get(run_id)
        if live is None:
            await self.get(run_id)  # NotFound for one that never existed
            return False
        if live.cancel_reason is None:
            live.cancel_reason = reason
        live.scope.cancel()
        await live.done.wait()
        return live.record.status == "cancelled"

    # -- contracts ---------------------------------------------------------------------------

    async def prepare(self, spec_value: object, *, principal_id: str | None = None) -> PoeContract:
        """Normalise the spec into terms awaiting a signature, drafting criteria if it has none."""
        spec = parse_spec(spec_value, require_criteria=False)
        agent = resolve_agent(self._settings(), spec.agent_id or "main")
        spec = attrs.evolve(spec, agent_id=agent.id)
        source, note = "spec", None
        if not spec.criteria:
            spec, source, note = await self._draft(spec, agent.model)
        terms = spec.to_json()
        terms["criteria_source"] = source
        if note is not None:
            terms["criteria_note"] = note
        contract = PoeContract(
            contract_id="contract_" + uuid.uuid4().hex,
            status="pending",
            terms=terms,
            created_at=now_ts(),
            principal_id=principal_id,
        )
        await self._store.save_poe_contract(contract)
        log.info("POE contract %s prepared (criteria: %s)", contract.contract_id, source)
        return contract

    async def _draft(self, spec: Spec, agent_model: str | None) -> tuple[Spec, str, str | None]:
        catalog = self._models
        try:
            model = catalog.resolve(agent_model or catalog.default_model)
        except NotFound:
            model = catalog.resolve(catalog.default_model)
        why: str
        try:
            answer = await ask_model(
                catalog, model, DRAFT_SYSTEM, draft_prompt(spec.objective, spec.instruction)
            )
        except ModelUnavailable as exc:
            why = str(exc)
        else:
            drafted = read_criteria(answer.text)
            if drafted is None:
                why = f"model {model.id} answered no JSON list of rules"
            else:
                try:
                    rules = parse_criteria(drafted[:32], "criteria")
                except InvalidArgument as exc:
                    why = f"model {model.id} drafted an invalid rule ({exc.message})"
                else:
                    return attrs.evolve(spec, criteria=rules), "model", None
        fallback = Judge("judge", f"Does the result achieve this objective: {spec.objective}")
        note = f"the drafted criteria were not usable ({why}); a judge criterion stands in"
        log.warning("POE prepare: %s", note)
        return attrs.evolve(spec, criteria=(fallback,)), "fallback", note

    async def pending(self) -> list[PoeContract]:
        return await self._store.list_poe_contracts("pending")

    async def _contract(self, contract_id: str) -> PoeContract:
        contract = await self._store.get_poe_contract(contract_id)
        if contract is None:
            raise NotFound("contract", contract_id)
        return contract

    async def sign(self, contract_id: str) -> PoeRun:
        """Sign a pending contract: its terms start a POE run."""
        async with self._deciding:
            contract = await self._contract(contract_id)
            if contract.status != "pending":
                raise InvalidState(f"contract {contract_id} is already {contract.status}")
            terms = {k: v for k, v in contract.terms.items() if not k.startswith("criteria_")}
            spec = parse_spec(terms, root="$.terms")
            record = await self._start(spec, None, contract.principal_id, contract_id)
            await self._store.save_poe_contract(
                attrs.evolve(
                    contract,
                    status=CONTRACTS.check(contract.status, "signed"),
                    decided_at=now_ts(),
                    run_id=record.run_id,
                )
            )
        return record

    async def reject(self, contract_id: str) -> None:
        async with self._deciding:
            contract = await self._contract(contract_id)
            if contract.status != "pending":
                raise InvalidState(f"contract {contract_id} is already {contract.status}")
            await self._store.save_poe_contract(
                attrs.evolve(
                    contract,
                    status=CONTRACTS.check(contract.status, "rejected"),
                    decided_at=now_ts(),
                )
            )
        log.info("POE contract %s rejected", contract_id)
