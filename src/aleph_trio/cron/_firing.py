"""One firing of a cron job (PROTOCOL §12), from its acceptance to its one published outcome.

Each firing is a child task in the service's nursery with its own cancel scope, registered with
its job (``cron.delete`` cancels it). It waits for the job's previous firing (``queue``), then
for one of ``cron.max_concurrent`` slots, records itself ``running`` and starts a normal agent
run on the job's session. Whatever happens next, it ends by recording its outcome and then
publishing exactly one ``cron.completed`` / ``cron.failed`` (state first, then the event).

:class:`FiringRunner` is that task's body (:meth:`FiringRunner.settle`); the scheduler in
``_service.py`` decides when a firing is accepted and starts it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, final

import attrs
import trio

from ..kernel import (
    CronConfig,
    EventBus,
    InvalidArgument,
    NotFound,
    component_logger,
    format_ts,
    parse_ts,
)
from ..runs import LiveRun
from ..store import CronRun, Run, Store, StoreError
from ._jobs import Firing, Job
from ._states import check_initial, check_transition

__all__ = ["AgentRuns", "FiringRunner"]

log = component_logger("cron")


class AgentRuns(Protocol):
    """What a firing needs of the run manager."""

    async def start(
        self,
        message: str,
        *,
        session_key: str | None = None,
        agent_id: str | None = None,
        model: str | None = None,
    ) -> Run: ...

    async def wait_finished(self, run_id: str) -> Run: ...

    def live(self, run_id: str) -> LiveRun | None: ...

    async def cancel(self, run_id: str, reason: str) -> bool: ...


#: How long the final bookkeeping of a cancelled firing may take.
FINISH_TIMEOUT_S: Final = 5.0


@final
class FiringRunner:
    """Runs the firings the scheduler accepted, each to one recorded and published outcome.

    ``now`` reads the time of day for the records (the scheduler's wall clock); the slots of
    ``cron.max_concurrent`` are this runner's, shared by all jobs.
    """

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        runs: AgentRuns,
        settings: Callable[[], CronConfig],
        now: Callable[[], _dt.datetime],
    ) -> None:
        self._store = store
        self._bus = bus
        self._runs = runs
        self._settings = settings
        self._now = now
        self._slots = trio.CapacityLimiter(settings().max_concurrent)

    async def settle(
        self,
        job: Job,
        firing: Firing | None,
        after: Firing | None,
        runs: list[CronRun],
        save: bool,
    ) -> None:
        """Store what the scheduler decided (next fire time, skipped and missed runs), then run
        the firing, if any."""
        try:
            if save:
                try:
                    await job.save(self._store, runs)
                except StoreError as exc:
                    log.error(
                        "cron job %s: could not store its schedule: %s", job.record.job_id, exc
                    )
            if firing is not None:
                await self._fire(job, firing, after)
        finally:
            if firing is not None:
                if firing in job.firings:
                    job.firings.remove(firing)
                firing.started.set()
                firing.done.set()

    def publish_interrupted(self, runs: Sequence[CronRun]) -> None:
        """Publish the end of each cron run a stopped process left ``running`` (the store has
        just failed them), as a firing's end is published."""
        for run in runs:
            self._publish_end(run, duration_ms=_elapsed_ms(run.started_at, run.finished_at))

    # -- one firing --------------------------------------------------------------------------

    async def _fire(self, job: Job, firing: Firing, after: Firing | None) -> None:
        outcome: tuple[str, str | None] | None = None
        try:
            with firing.scope:
                if after is not None:
                    await after.done.wait()
                self._slots.total_tokens = self._settings().max_concurrent
                async with self._slots:
                    outcome = await self._execute(job, firing)
            if outcome is None:
                outcome = ("cancelled", firing.cancel_reason or "cancelled")
        except StoreError as exc:
            log.error("cron firing %s: %s", firing.cron_run_id, exc)
            outcome = ("failed", f"storage failed: {exc}")
        except Exception as exc:
            log.exception("cron firing %s crashed", firing.cron_run_id)
            outcome = ("failed", f"internal error: {type(exc).__name__}")
        finally:
            if outcome is None:  # cancelled from outside: the gateway is stopping
                outcome = ("cancelled", "gateway shutting down")
            with trio.CancelScope(shield=True), trio.move_on_after(FINISH_TIMEOUT_S):
                try:
                    await self._finish(job, firing, *outcome)
                except Exception:  # one firing's bookkeeping must not take the scheduler down
                    log.exception("cron firing %s could not be finished", firing.cron_run_id)

    async def _execute(self, job: Job, firing: Firing) -> tuple[str, str | None]:
        """Record the firing, start its agent run and wait for the run's end."""
        firing.began = trio.current_time()
        started_at = format_ts(self._now())
        firing.record = _running_record(job, firing, started_at)
        job.record = attrs.evolve(job.record, last_run_at=started_at, last_status="running")
        await job.save(self._store, [firing.record])
        record = job.record
        try:
            run = await self._runs.start(
                record.prompt,
                session_key=record.session_key,
                agent_id=record.agent_id,
                model=record.model,
            )
        except (NotFound, InvalidArgument) as exc:
            # The agent or the model is gone: this firing fails, the job keeps its schedule.
            firing.start_error = exc
            self._publish_triggered(firing)
            return "failed", f"could not start the agent run: {exc.message}"
        firing.run_id = run.run_id
        firing.record = attrs.evolve(firing.record, run_id=run.run_id)
        await job.save(self._store, [firing.record])
        self._publish_triggered(firing)
        firing.started.set()
        final = await self._runs.wait_finished(run.run_id)
        firing.run_ended = True
        return _run_result(final, None)

    async def _finish(self, job: Job, firing: Firing, status: str, error: str | None) -> None:
        """Record the outcome, then publish it. A firing ended before it could start (deleted
        job, shutdown) is recorded too, with what stopped it."""
        if firing.record is None:
            firing.record = _running_record(job, firing, None)
            error = f"{error}, before it started"
        if firing.run_id is not None and not firing.run_ended:
            status, error = await self._run_outcome(firing.run_id, firing.cancel_reason or error)
        firing.record = attrs.evolve(
            firing.record,
            status=check_transition(firing.record.status, status),
            finished_at=format_ts(self._now()),
            error=None if status == "completed" else error,
        )
        job.record = attrs.evolve(job.record, last_status=status)
        try:
            await job.save(self._store, [firing.record])
        except StoreError as exc:
            log.error("cron run %s: could not store its outcome: %s", firing.cron_run_id, exc)
        began = firing.began
        duration_ms = 0 if began is None else round((trio.current_time() - began) * 1000)
        self._publish_end(firing.record, duration_ms=duration_ms)
        log.info("cron job %s: firing %s %s", job.record.job_id, firing.cron_run_id, status)

    async def _run_outcome(self, run_id: str, reason: str | None) -> tuple[str, str | None]:
        """How the firing's agent run ended; cancelled (for ``reason``) if it is still live."""
        runs = self._runs
        cancelled_by_us = runs.live(run_id) is not None
        try:
            if cancelled_by_us:
                await runs.cancel(run_id, reason or "cancelled")
            final = await runs.wait_finished(run_id)
        except NotFound:  # its own bookkeeping was cut short (a stop, a stuck disk)
            return "failed", "its agent run ended without being recorded"
        return _run_result(final, reason if cancelled_by_us else None)

    def _publish_triggered(self, firing: Firing) -> None:
        self._bus.publish(
            "cron.triggered",
            {
                "job_id": firing.job_id,
                "cron_run_id": firing.cron_run_id,
                "run_id": firing.run_id,
                "trigger": firing.trigger,
                "scheduled_for": firing.scheduled_for,
            },
        )

    def _publish_end(self, run: CronRun, *, duration_ms: int) -> None:
        """Publish how a cron run ended: ``cron.completed``, else ``cron.failed`` with its error."""
        data: dict[str, Any] = {
            "job_id": run.job_id,
            "cron_run_id": run.cron_run_id,
            "run_id": run.run_id,
            "status": run.status,
            "duration_ms": duration_ms,
        }
        if run.status == "completed":
            self._bus.publish("cron.completed", data)
        else:
            self._bus.publish("cron.failed", {**data, "error": run.error})


def _run_result(final: Run, reason: str | None) -> tuple[str, str | None]:
    """A firing's outcome from its agent run's final record."""
    if final.status == "cancelled":
        return "cancelled", reason or "its agent run was cancelled"
    if final.status in ("completed", "failed"):
        return final.status, final.error
    return "failed", f"its agent run was left {final.status}"


def _elapsed_ms(start: str | None, end: str | None) -> int:
    if start is None or end is None:
        return 0
    return max(0, round((parse_ts(end) - parse_ts(start)).total_seconds() * 1000))


def _running_record(job: Job, firing: Firing, started_at: str | None) -> CronRun:
    """The firing's record as it starts (``started_at`` is unknown for one that never did)."""
    return CronRun(
        firing.cron_run_id,
        job.record.job_id,
        firing.trigger,
        check_initial("running"),
        scheduled_for=firing.scheduled_for,
        started_at=started_at,
    )
