"""The cron scheduler (PROTOCOL §12): the gateway's ``cron`` service.

One task sleeps until the next job is due, on Trio's clock, and reads the time of day from an
injected wall clock each time it wakes (at least every ``recheck_s``, so a clock that jumps or a
machine that was suspended is noticed). A due job is planned by :func:`plan_due`: run now (as
scheduled, or once as a catch-up after downtime), record missed fire times, or record a skipped
one when its previous firing is still running (``overlap_policy``). Its next fire time is stored
before anything of the firing starts, so a restart at any moment fires it when it should.

Each firing is a child task in the service's nursery with its own cancel scope, registered with
its job (``cron.delete`` cancels it). It waits for the job's previous firing (``queue``), then
for one of ``cron.max_concurrent`` slots, records itself ``running`` and starts a normal agent
run on the job's session. Whatever happens next, it ends by recording its outcome and then
publishing exactly one ``cron.completed`` / ``cron.failed`` (state first, then the event).
"""

from __future__ import annotations

import datetime as _dt
import heapq
import itertools
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, final

import attrs
import trio

from ._agents import resolve_agent
from ._clock import format_ts, parse_ts, utc_now
from ._cron_schedule import Schedule, ScheduleError, parse_schedule, plan_due
from ._cron_states import check_initial, check_transition
from ._logs import component_logger
from .protocol import AlephError, InvalidParams, ResourceNotFound
from .store import CronJob, CronRun, Run, StoreError

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["CronService", "CronStatistics", "Firing", "WallClock"]

log = component_logger("cron")

#: The error of cron runs a stopped process left ``running`` (the words agent runs get, §7).
INTERRUPTED: Final = "interrupted by gateway restart"
#: Cron runs kept per job; older ones are removed as new ones are recorded.
KEEP_RUNS: Final = 1000
#: ``cron.get`` shows this many of a job's newest cron runs.
RECENT_RUNS: Final = 20
#: How long the final bookkeeping of a cancelled firing may take.
FINISH_TIMEOUT_S: Final = 5.0


@attrs.frozen
class WallClock:
    """Where the scheduler reads the time of day (aware, UTC) and how often it looks again
    while it sleeps; tests pass one driven by Trio's virtual clock."""

    now: Callable[[], _dt.datetime] = utc_now
    recheck_s: float = 10.0


@attrs.frozen
class CronStatistics:
    running: bool
    jobs: int
    enabled_jobs: int
    active_runs: int  #: firings whose agent run is under way
    queued_runs: int  #: accepted firings waiting for the previous one or for a slot
    max_concurrent: int
    next_run_at: str | None
    next_job_id: str | None


@attrs.define(eq=False)
class Firing:
    """One accepted firing of a job, from acceptance until its outcome is published."""

    job_id: str
    trigger: str
    scheduled_for: str | None
    cron_run_id: str = attrs.Factory(lambda: "crun_" + uuid.uuid4().hex)
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    started: trio.Event = attrs.Factory(trio.Event)  #: its agent run started, or never will
    done: trio.Event = attrs.Factory(trio.Event)
    record: CronRun | None = None  #: set once it runs (it holds a slot)
    run_id: str | None = None
    run_ended: bool = False  #: its agent run's end has been seen
    began: float | None = None  #: ``trio.current_time()`` when it started running
    start_error: AlephError | None = None
    cancel_reason: str | None = None


@attrs.define(eq=False)
class _Job:
    record: CronJob
    next_at: _dt.datetime | None
    firings: list[Firing] = attrs.Factory(list)
    parsed: Schedule | None = None  #: parsed on first use (a start reads many jobs)
    described: str | None = None

    @property
    def schedule(self) -> Schedule:
        if self.parsed is None:
            self.parsed = parse_schedule(self.record.schedule, self.record.timezone)
        return self.parsed

    def describe(self) -> str:
        if self.described is None:
            try:
                self.described = self.schedule.describe()
            except ScheduleError as exc:
                self.described = f"unusable schedule: {exc}"
        return self.described

    @property
    def anchor(self) -> _dt.datetime:
        return parse_ts(self.record.created_at)

    def overlap(self) -> tuple[str, str] | None:
        """Why a new firing may not be accepted now (message, reason), or ``None``."""
        if not self.firings:
            return None
        current = self.firings[0]
        if self.record.overlap_policy == "skip":
            return f"its previous firing ({current.cron_run_id}) is still running", "invalid_state"
        if len(self.firings) > 1:
            return "a firing is already queued behind the running one", "limit"
        return None


def _invalid(exc: ScheduleError) -> InvalidParams:
    path = f"$.{exc.field}"
    return InvalidParams(
        f"Invalid params: {path}: {exc.message}", errors=[{"path": path, "message": exc.message}]
    )


@final
class CronService:
    """Owns the jobs and their firings. Start it as the gateway's ``cron`` service."""

    def __init__(self, gateway: Gateway, clock: WallClock | None = None) -> None:
        self._gateway = gateway
        self.clock = clock or WallClock()
        self._jobs: dict[str, _Job] = {}
        self._heap: list[tuple[_dt.datetime, int, str]] = []
        self._order = itertools.count()
        self._lot = trio.lowlevel.ParkingLot()
        self._slots = trio.CapacityLimiter(gateway.config.cron.max_concurrent)
        self._nursery: trio.Nursery | None = None

    # -- service -----------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the jobs, then schedule them until cancelled (firings end as cancelled)."""
        store = self._gateway.store
        interrupted = await store.fail_unfinished_cron_runs(INTERRUPTED)
        self._jobs.clear()
        self._heap.clear()
        for record in await store.list_cron_jobs():
            self._add(record)
        for run in interrupted:
            self._publish_end(run, duration_ms=_elapsed_ms(run.started_at, run.finished_at))
        if interrupted:
            log.warning(
                "%d cron run(s) were cut short by the last stop; marked failed", len(interrupted)
            )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._schedule()
        finally:
            self._nursery = None

    async def _schedule(self) -> None:
        while True:
            now = self.clock.now()
            self._fire_due(now)
            head = self._head()
            delay = self.clock.recheck_s
            if head is not None:
                delay = min(delay, (head[0] - now).total_seconds())
            with trio.move_on_after(max(0.0, delay)):
                await self._lot.park()

    def _wake(self) -> None:
        self._lot.unpark_all()

    def statistics(self) -> CronStatistics:
        head = self._head()
        firings = [f for job in self._jobs.values() for f in job.firings]
        active = sum(1 for f in firings if f.record is not None)
        return CronStatistics(
            running=self._nursery is not None,
            jobs=len(self._jobs),
            enabled_jobs=sum(1 for job in self._jobs.values() if job.record.enabled),
            active_runs=active,
            queued_runs=len(firings) - active,
            max_concurrent=self._gateway.config.cron.max_concurrent,
            next_run_at=format_ts(head[0]) if head else None,
            next_job_id=head[2] if head else None,
        )

    # -- the job table -----------------------------------------------------------------------

    def _add(self, record: CronJob, schedule: Schedule | None = None) -> _Job:
        next_at = parse_ts(record.next_run_at) if record.enabled and record.next_run_at else None
        job = _Job(record, next_at, parsed=schedule)
        self._jobs[record.job_id] = job
        self._push(job)
        return job

    def _push(self, job: _Job) -> None:
        if job.next_at is not None:
            heapq.heappush(self._heap, (job.next_at, next(self._order), job.record.job_id))

    def _set_next(self, job: _Job, next_at: _dt.datetime | None) -> None:
        """Set when ``job`` is due next; ``None`` disables it (nothing left to fire)."""
        job.next_at = next_at
        job.record = attrs.evolve(
            job.record,
            next_run_at=format_ts(next_at) if next_at else None,
            enabled=job.record.enabled and next_at is not None,
        )
        self._push(job)

    def _head(self) -> tuple[_dt.datetime, int, str] | None:
        """The earliest live heap entry (stale ones, of changed or deleted jobs, are dropped)."""
        while self._heap:
            at, _, job_id = self._heap[0]
            job = self._jobs.get(job_id)
            if job is not None and job.next_at == at:
                return self._heap[0]
            heapq.heappop(self._heap)
        return None

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ResourceNotFound("job", job_id)
        return job

    async def _save(self, job: _Job, runs: Sequence[CronRun] = ()) -> None:
        await self._gateway.store.save_cron_job(job.record, runs, keep_runs=KEEP_RUNS)

    # -- firing due jobs ---------------------------------------------------------------------

    def _fire_due(self, now: _dt.datetime) -> None:
        while (head := self._head()) is not None and head[0] <= now:
            heapq.heappop(self._heap)
            job = self._jobs[head[2]]
            try:
                self._plan(job, now)
            except Exception:
                # One job's bug must not stop the others: it is parked until the next start.
                log.exception("cron job %s could not be scheduled", job.record.job_id)
                job.next_at = None
                job.record = attrs.evolve(job.record, next_run_at=None)

    def _plan(self, job: _Job, now: _dt.datetime) -> None:
        assert job.next_at is not None
        record = job.record
        plan = plan_due(
            job.schedule,
            anchor=job.anchor,
            due_at=job.next_at,
            now=now,
            misfire_policy=record.misfire_policy,
            grace_s=self._gateway.config.cron.catch_up_grace_s,
        )
        why = ["the scheduler was not running at this time"] * len(plan.missed)
        if plan.more_missed:
            why[0] += " (earlier fire times were missed too)"
        if plan.fire_at is None and plan.missed:
            why[-1] = (
                "misfire_policy is skip"
                if record.misfire_policy == "skip"
                else f"{plan.late_s:.0f} s late, beyond cron.catch_up_grace_s"
            )
            log.warning("cron job %s missed its fire time (%s)", record.job_id, why[-1])
        runs = [
            _not_run(record.job_id, "missed", "schedule", format_ts(at), reason)
            for at, reason in zip(plan.missed, why, strict=True)
        ]
        firing = None
        if plan.fire_at is not None and plan.trigger is not None:
            scheduled_for = format_ts(plan.fire_at)
            refused = job.overlap()
            if refused is None:
                firing = Firing(record.job_id, plan.trigger, scheduled_for)
            else:
                runs.append(
                    _not_run(record.job_id, "skipped", plan.trigger, scheduled_for, refused[0])
                )
                log.info("cron job %s skipped a fire time: %s", record.job_id, refused[0])
        if runs:
            job.record = attrs.evolve(job.record, last_status=runs[-1].status)
        self._set_next(job, plan.next_at)
        self._start(job, firing, runs, save=True)

    def _start(self, job: _Job, firing: Firing | None, runs: list[CronRun], *, save: bool) -> None:
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("the cron service is not serving")
        after = job.firings[-1] if job.firings else None
        if firing is not None:
            job.firings.append(firing)
        nursery.start_soon(self._settle, job, firing, after, runs, save)

    async def _settle(
        self,
        job: _Job,
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
                    await self._save(job, runs)
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

    # -- one firing --------------------------------------------------------------------------

    async def _fire(self, job: _Job, firing: Firing, after: Firing | None) -> None:
        outcome: tuple[str, str | None] | None = None
        try:
            with firing.scope:
                if after is not None:
                    await after.done.wait()
                self._slots.total_tokens = self._gateway.config.cron.max_concurrent
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

    async def _execute(self, job: _Job, firing: Firing) -> tuple[str, str | None]:
        """Record the firing, start its agent run and wait for the run's end."""
        firing.began = trio.current_time()
        started_at = format_ts(self.clock.now())
        firing.record = CronRun(
            firing.cron_run_id,
            job.record.job_id,
            firing.trigger,
            check_initial("running"),
            scheduled_for=firing.scheduled_for,
            started_at=started_at,
        )
        job.record = attrs.evolve(job.record, last_run_at=started_at, last_status="running")
        await self._save(job, [firing.record])
        record = job.record
        try:
            run = await self._gateway.runs.start(
                record.prompt,
                session_key=record.session_key,
                agent_id=record.agent_id,
                model=record.model,
            )
        except (ResourceNotFound, InvalidParams) as exc:
            # The agent or the model is gone: this firing fails, the job keeps its schedule.
            firing.start_error = exc
            self._publish_triggered(firing)
            return "failed", f"could not start the agent run: {exc.message}"
        firing.run_id = run.run_id
        firing.record = attrs.evolve(firing.record, run_id=run.run_id)
        await self._save(job, [firing.record])
        self._publish_triggered(firing)
        firing.started.set()
        final = await self._gateway.runs.wait_finished(run.run_id)
        firing.run_ended = True
        return _run_result(final, None)

    async def _finish(self, job: _Job, firing: Firing, status: str, error: str | None) -> None:
        """Record the outcome, then publish it. A firing ended before it could start (deleted
        job, shutdown) is recorded too, with what stopped it."""
        if firing.record is None:
            firing.record = CronRun(
                firing.cron_run_id,
                job.record.job_id,
                firing.trigger,
                check_initial("running"),
                scheduled_for=firing.scheduled_for,
            )
            error = f"{error}, before it started"
        if firing.run_id is not None and not firing.run_ended:
            status, error = await self._run_outcome(firing.run_id, firing.cancel_reason or error)
        firing.record = attrs.evolve(
            firing.record,
            status=check_transition(firing.record.status, status),
            finished_at=format_ts(self.clock.now()),
            error=None if status == "completed" else error,
        )
        job.record = attrs.evolve(job.record, last_status=status)
        try:
            await self._save(job, [firing.record])
        except StoreError as exc:
            log.error("cron run %s: could not store its outcome: %s", firing.cron_run_id, exc)
        began = firing.began
        duration_ms = 0 if began is None else round((trio.current_time() - began) * 1000)
        self._publish_end(firing.record, duration_ms=duration_ms)
        log.info("cron job %s: firing %s %s", job.record.job_id, firing.cron_run_id, status)

    async def _run_outcome(self, run_id: str, reason: str | None) -> tuple[str, str | None]:
        """How the firing's agent run ended; cancelled (for ``reason``) if it is still live."""
        runs = self._gateway.runs
        cancelled_by_us = runs.live(run_id) is not None
        try:
            if cancelled_by_us:
                await runs.cancel(run_id, reason or "cancelled")
            final = await runs.wait_finished(run_id)
        except ResourceNotFound:  # its own bookkeeping was cut short (a stop, a stuck disk)
            return "failed", "its agent run ended without being recorded"
        return _run_result(final, reason if cancelled_by_us else None)

    def _publish_triggered(self, firing: Firing) -> None:
        self._gateway.bus.publish(
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
        data: dict[str, Any] = {
            "job_id": run.job_id,
            "cron_run_id": run.cron_run_id,
            "run_id": run.run_id,
            "status": run.status,
            "duration_ms": duration_ms,
        }
        if run.status == "completed":
            self._gateway.bus.publish("cron.completed", data)
        else:
            self._gateway.bus.publish("cron.failed", {**data, "error": run.error})

    # -- methods -----------------------------------------------------------------------------

    async def create(
        self,
        *,
        name: str,
        schedule: str,
        agent_id: str,
        prompt: str,
        timezone: str = "UTC",
        session_key: str | None = None,
        enabled: bool = True,
        misfire_policy: str = "run_once",
        overlap_policy: str = "skip",
        model: str | None = None,
    ) -> CronJob:
        """Create a job; ``-32602`` for a bad schedule, zone, model or a taken name, ``-32004``
        for an unknown agent."""
        for field, value in (("name", name), ("prompt", prompt)):
            if not value.strip():
                raise InvalidParams(
                    f"Invalid params: $.{field}: must not be blank",
                    errors=[{"path": f"$.{field}", "message": "must not be blank"}],
                )
        agent = resolve_agent(self._gateway.config, agent_id)
        if model is not None:
            try:
                model = self._gateway.models.resolve(model).id
            except ResourceNotFound:
                message = f"unknown model {model!r} (see models.list)"
                raise InvalidParams(
                    f"Invalid params: $.model: {message}",
                    errors=[{"path": "$.model", "message": message}],
                ) from None
        now = self.clock.now()
        try:
            parsed = parse_schedule(schedule, timezone, now=now)
        except ScheduleError as exc:
            raise _invalid(exc) from None
        job_id = "job_" + uuid.uuid4().hex
        created_at = format_ts(now)
        next_at = parsed.next_after(now, anchor=parse_ts(created_at)) if enabled else None
        record = CronJob(
            job_id=job_id,
            name=name,
            schedule=parsed.text,
            timezone=parsed.timezone,
            agent_id=agent.id,
            prompt=prompt,
            session_key=session_key or f"agent:{agent.id}:cron:{job_id}",
            enabled=enabled,
            misfire_policy=misfire_policy,
            overlap_policy=overlap_policy,
            created_at=created_at,
            next_run_at=format_ts(next_at) if next_at else None,
            model=model,
        )
        if not await self._gateway.store.insert_cron_job(record):
            message = f"a job named {name!r} exists already"
            raise InvalidParams(
                f"Invalid params: $.name: {message}",
                errors=[{"path": "$.name", "message": message}],
                reason="conflict",
            )
        job = self._add(record, parsed)
        self._wake()
        log.info("cron job %s (%s) created: %s", job_id, name, parsed.describe())
        return job.record

    def jobs(self, *, enabled: bool | None = None, agent_id: str | None = None) -> list[CronJob]:
        """Jobs in the order they were created."""
        return [
            job.record
            for job in self._jobs.values()
            if (enabled is None or job.record.enabled == enabled)
            and (agent_id is None or job.record.agent_id == agent_id)
        ]

    def describe(self, job_id: str) -> str:
        """The job's schedule in words."""
        return self._job(job_id).describe()

    async def get(self, job_id: str) -> tuple[CronJob, list[CronRun]]:
        """The job and its newest cron runs (newest first)."""
        job = self._job(job_id)
        runs = await self._gateway.store.recent_cron_runs(job_id, limit=RECENT_RUNS)
        return job.record, runs

    async def delete(self, job_id: str) -> None:
        """Remove the job; a firing in progress is cancelled and has ended when this returns."""
        job = self._job(job_id)
        del self._jobs[job_id]
        self._wake()
        for firing in job.firings:
            firing.cancel_reason = "the job was deleted"
            firing.scope.cancel()
        for firing in list(job.firings):
            await firing.done.wait()
        try:
            await self._gateway.store.delete_cron_job(job_id)
        except BaseException:  # not deleted after all: schedule it again
            if self._jobs.setdefault(job_id, job) is job:
                self._push(job)
                self._wake()
            raise
        log.info("cron job %s deleted", job_id)

    async def trigger(self, job_id: str) -> Firing:
        """Fire the job now (also while it is paused); returns once its agent run has started.

        Follows ``overlap_policy``: ``skip`` refuses while a firing runs (``-32602``
        ``invalid_state``), ``queue`` waits for it (one firing at most may wait).
        """
        job = self._job(job_id)
        refused = job.overlap()
        if refused is not None:
            raise InvalidParams(f"Invalid params: job {job_id}: {refused[0]}", reason=refused[1])
        firing = Firing(job_id, "manual", None)
        self._start(job, firing, [], save=False)
        await firing.started.wait()
        if firing.start_error is not None:
            raise firing.start_error
        if firing.run_id is None:
            raise ResourceNotFound("job", job_id)  # deleted (or stopped) before it could start
        return firing

    async def pause(self, job_id: str) -> CronJob:
        job = self._job(job_id)
        job.record = attrs.evolve(job.record, enabled=False)
        self._set_next(job, None)
        await self._save(job)
        return job.record

    async def resume(self, job_id: str) -> CronJob:
        """Enable the job again; its next fire time is counted from now (nothing is made up
        for the time it was paused). ``-32602`` when it has no fire time left."""
        job = self._job(job_id)
        if not job.record.enabled or job.next_at is None:  # paused, or parked after a fault
            next_at = job.schedule.next_after(self.clock.now(), anchor=job.anchor)
            if next_at is None:
                raise InvalidParams(
                    f"Invalid params: job {job_id} has no fire time left "
                    f"({job.record.schedule} has passed)",
                    reason="invalid_state",
                )
            job.record = attrs.evolve(job.record, enabled=True)
            self._set_next(job, next_at)
            await self._save(job)
            self._wake()
        return job.record


def _run_result(final: Run, reason: str | None) -> tuple[str, str | None]:
    """A firing's outcome from its agent run's final record."""
    if final.status == "cancelled":
        return "cancelled", reason or "its agent run was cancelled"
    if final.status in ("completed", "failed"):
        return final.status, final.error
    return "failed", f"its agent run was left {final.status}"


def _not_run(job_id: str, status: str, trigger: str, scheduled_for: str, why: str) -> CronRun:
    """The record of a fire time that did not run (``skipped`` or ``missed``)."""
    return CronRun(
        "crun_" + uuid.uuid4().hex,
        job_id,
        trigger,
        check_initial(status),
        scheduled_for=scheduled_for,
        error=f"not run: {why}",
    )


def _elapsed_ms(start: str | None, end: str | None) -> int:
    if start is None or end is None:
        return 0
    return max(0, round((parse_ts(end) - parse_ts(start)).total_seconds() * 1000))
