"""One POE run (PROTOCOL §16), from its acceptance to its one published outcome.

Each POE run is a child task in the POE service's nursery with its own cancel scope. An attempt
is a normal agent run through the run manager, on the POE run's own session
(``agent:<agent_id>:poe:<run_id>``, so each attempt sees the ones before it): it streams, shows in
``agent.status`` and waits its turn in the lanes like any run. When it has ended, every criterion
is evaluated; if one failed, the next attempt's prompt lists the failures. The loop stops at
success, after ``max_attempts``, or once the attempts' tokens reach ``max_tokens``.

State first, then the event: each step is stored before ``poe.attempt`` / ``poe.evaluated`` and
the outcome before ``poe.completed`` / ``poe.failed`` / ``poe.cancelled``. Cancelling the scope
cancels the attempt's agent run too, and the run ends as ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, final

import attrs
import trio

from ..kernel import (
    EventBus,
    InvalidArgument,
    NotFound,
    component_logger,
    now_ts,
)
from ..providers import ModelCatalog, ModelInfo
from ..store import PoeRun, Run, Store, StoreError
from ._criteria import Attempt, CriterionResult, Evaluator
from ._spec import Rule, Spec, describe_rule
from ._states import POE_RUNS

__all__ = ["AgentRuns", "LivePoe", "PoeRunner", "first_prompt", "retry_prompt"]

log = component_logger("poe")

#: How long the final bookkeeping of a cancelled POE run may take.
FINISH_TIMEOUT_S: Final = 10.0


class AgentRuns(Protocol):
    """What a POE run needs of the run manager."""

    async def start(
        self,
        message: str,
        *,
        session_key: str | None = None,
        agent_id: str | None = None,
        principal_id: str | None = None,
    ) -> Run: ...

    async def wait_finished(self, run_id: str) -> Run: ...

    def live(self, run_id: str) -> object | None: ...

    async def cancel(self, run_id: str, reason: str) -> bool: ...


@attrs.define(eq=False)
class LivePoe:
    """A POE run in flight."""

    record: PoeRun
    spec: Spec
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    agent_run_id: str | None = None  #: the attempt's agent run while it is live
    cancel_reason: str | None = None
    began: float = 0.0

    @property
    def run_id(self) -> str:
        return self.record.run_id


def first_prompt(spec: Spec) -> str:
    rules = "\n".join(f"{i}. {describe_rule(rule)}" for i, rule in enumerate(spec.criteria, 1))
    return (
        f"{spec.instruction}\n\nObjective: {spec.objective}\n"
        f"When you have finished, your work is checked against these criteria:\n{rules}"
    )


def retry_prompt(
    spec: Spec, attempt: int, failures: Sequence[tuple[Rule, CriterionResult]], error: str | None
) -> str:
    lines = [
        f"Attempt {attempt} of {spec.max_attempts}. Your previous attempt did not meet every "
        "criterion. Failed criteria:"
    ]
    lines += [f"- {describe_rule(rule)}: {result.detail}" for rule, result in failures]
    if error:
        lines.append(f"Your previous attempt ended with an error: {error}")
    lines.append("Fix what failed and complete the task.\n")
    return "\n".join(lines) + "\n" + first_prompt(spec)


@final
class PoeRunner:
    """Runs POE runs, each to one recorded and published outcome."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        runs: AgentRuns,
        models: ModelCatalog,
        evaluator: Evaluator,
        closed: Callable[[], str | None],
    ) -> None:
        self._store = store
        self._bus = bus
        self._runs = runs
        self._models = models
        self._evaluator = evaluator
        self._closed = closed

    def publish(self, topic: str, record: PoeRun, **data: Any) -> None:
        payload = {"run_id": record.run_id, "session_key": record.session_key, **data}
        self._bus.publish(topic, payload, principal_id=record.principal_id)

    async def _save(self, live: LivePoe, **changes: Any) -> None:
        live.record = attrs.evolve(live.record, **changes)
        await self._store.save_poe_run(live.record)

    # -- the task ----------------------------------------------------------------------------

    async def drive(self, live: LivePoe) -> None:
        outcome: tuple[str, str | None] | None = None
        try:
            with live.scope:
                outcome = await self._attempts(live)
            if outcome is None:
                outcome = ("cancelled", live.cancel_reason or "cancelled")
        except StoreError as exc:
            log.error("POE run %s: %s", live.run_id, exc)
            outcome = ("failed", f"storage failed: {exc}")
        except Exception as exc:
            log.exception("POE run %s crashed", live.run_id)
            outcome = ("failed", f"internal error: {type(exc).__name__}")
        finally:
            if outcome is None:  # cancelled from outside: the gateway is stopping
                outcome = ("cancelled", live.cancel_reason or "gateway shutting down")
            with trio.CancelScope(shield=True), trio.move_on_after(FINISH_TIMEOUT_S):
                try:
                    await self._finish(live, *outcome)
                except Exception:
                    log.exception("POE run %s could not be finished", live.run_id)
            live.done.set()

    async def _attempts(self, live: LivePoe) -> tuple[str, str | None]:
        spec = live.spec
        failures: list[tuple[Rule, CriterionResult]] = []
        error: str | None = None
        for number in range(1, spec.max_attempts + 1):
            closed = self._closed()
            if closed is not None:
                return "cancelled", closed
            if number == 1:
                message = first_prompt(spec)
            else:
                message = retry_prompt(spec, number, failures, error)
            record = live.record
            try:
                # Shielded (it is one store write): a run accepted must be known to be cancelled.
                with trio.CancelScope(shield=True):
                    run = await self._runs.start(
                        message,
                        session_key=record.session_key,
                        agent_id=record.agent_id,
                        principal_id=record.principal_id,
                    )
            except (NotFound, InvalidArgument) as exc:
                closed = self._closed()
                if closed is not None:
                    return "cancelled", closed
                return "failed", f"attempt {number} could not start its agent run: {exc.message}"
            live.agent_run_id = run.run_id
            entry: dict[str, Any] = {"attempt": number, "agent_run_id": run.run_id}
            await self._save(
                live, attempt=number, phase="operation", attempts=[*record.attempts, entry]
            )
            self.publish("poe.attempt", live.record, attempt=number, agent_run_id=run.run_id)
            final = await self._runs.wait_finished(run.run_id)
            live.agent_run_id = None
            entry = {**entry, "agent_status": final.status, "tokens_used": final.tokens_used}
            if final.error:
                entry["error"] = final.error
            tokens = live.record.tokens_used + final.tokens_used
            if final.status == "cancelled":
                await self._save(live, tokens_used=tokens, attempts=_replace_last(live, entry))
                return "cancelled", f"its agent run {run.run_id} was cancelled"
            error = final.error if final.status == "failed" else None
            await self._save(
                live, phase="evaluation", tokens_used=tokens, attempts=_replace_last(live, entry)
            )
            results, judged = await self._evaluate(live, final)
            tokens += judged
            score = sum(r.score for r in results) / len(results)
            passed = all(r.passed for r in results)
            entry = {
                **entry,
                "passed": passed,
                "score": score,
                "criteria": [r.to_json() for r in results],
            }
            await self._save(
                live, last_score=score, tokens_used=tokens, attempts=_replace_last(live, entry)
            )
            self.publish(
                "poe.evaluated",
                live.record,
                attempt=number,
                passed=passed,
                score=score,
                criteria=entry["criteria"],
            )
            if passed:
                return "succeeded", None
            if spec.max_tokens is not None and tokens >= spec.max_tokens:
                return "failed", (
                    f"token budget exhausted: {tokens} tokens used after attempt {number}, "
                    f"max_tokens is {spec.max_tokens}"
                )
            failures = [(spec.criteria[r.index], r) for r in results if not r.passed]
        return "failed", f"the criteria still failed after {spec.max_attempts} attempt(s)"

    async def _evaluate(self, live: LivePoe, final: Run) -> tuple[list[CriterionResult], int]:
        attempt = Attempt(
            objective=live.spec.objective,
            output=final.output or "",
            agent_id=live.record.agent_id,
            model=self._model(final.model),
        )
        results: list[CriterionResult] = []
        tokens = 0
        for index, rule in enumerate(live.spec.criteria):
            result, used = await self._evaluator.check(index, rule, attempt)
            results.append(result)
            tokens += used
        return results, tokens

    def _model(self, model_id: str) -> ModelInfo:
        """The attempt's model grades it; the default one if it is gone meanwhile."""
        catalog = self._models
        try:
            return catalog.resolve(model_id)
        except NotFound:
            return catalog.resolve(catalog.default_model)

    async def _finish(self, live: LivePoe, status: str, error: str | None) -> None:
        """Stop the attempt's agent run if it is still live, record the outcome, publish it."""
        agent_run = live.agent_run_id
        if agent_run is not None and self._runs.live(agent_run) is not None:
            await self._runs.cancel(agent_run, error or "the POE run was cancelled")
            final = await self._runs.wait_finished(agent_run)
            attempts = live.record.attempts
            if attempts and attempts[-1]["agent_run_id"] == agent_run:
                entry = {
                    **attempts[-1],
                    "agent_status": final.status,
                    "tokens_used": final.tokens_used,
                }
                live.record = attrs.evolve(
                    live.record,
                    tokens_used=live.record.tokens_used + final.tokens_used,
                    attempts=_replace_last(live, entry),
                )
        live.agent_run_id = None
        try:
            await self._save(
                live,
                status=POE_RUNS.check(live.record.status, status),
                finished_at=now_ts(),
                error=error,
            )
        except StoreError as exc:
            log.error("POE run %s: could not store its outcome: %s", live.run_id, exc)
        record = live.record
        duration_ms = round((trio.current_time() - live.began) * 1000)
        common = {
            "status": status,
            "attempts": record.attempt,
            "tokens_used": record.tokens_used,
            "last_score": record.last_score,
            "duration_ms": duration_ms,
        }
        if status == "succeeded":
            self.publish("poe.completed", record, **common)
        elif status == "failed":
            self.publish("poe.failed", record, **common, error=error)
        else:
            self.publish("poe.cancelled", record, **common, reason=error)
        log.info("POE run %s %s after %d attempt(s)", record.run_id, status, record.attempt)


def _replace_last(live: LivePoe, entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [*live.record.attempts[:-1], entry]
