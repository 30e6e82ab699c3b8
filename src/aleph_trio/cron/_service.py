"""The cron scheduler (PROTOCOL §12): the gateway's ``cron`` service.

One task sleeps until the next job is due, on Trio's clock, and reads the time of day from an
injected wall clock each time it wakes (at least every ``recheck_s``, so a clock that jumps or a
machine that was suspended is noticed). A due job is planned by :func:`plan_due`: run now (as
scheduled, or once as a catch-up after downtime), record missed fire times, or record a skipped
one when its previous firing is still running (``overlap_policy``). Its next fire time is stored
before anything of the firing starts, so a restart at any moment fires it when it should.

Each accepted firing is a child task in the service's nursery, registered with its job
(``cron.delete`` cancels it); ``_firing.py`` runs it to its outcome, and ``_jobs.py``
holds what is kept of a job and its firings. This module holds the scheduling and the ``cron.*``
methods.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import itertools
import uuid
from collections.abc import Callable
from typing import Final, final

import attrs
import trio

from ..kernel import (
    Config,
    Conflict,
    EventBus,
    InvalidArgument,
    InvalidState,
    LimitReached,
    NotFound,
    component_logger,
    format_ts,
    parse_ts,
    utc_now,
)
from ..providers import ModelCatalog
from ..runs import resolve_agent
from ..store import CronJob, CronRun, Store
from ._firing import AgentRuns, FiringRunner
from ._jobs import Firing, Job, not_run
from ._schedule import Schedule, ScheduleError, parse_schedule, plan_due
from ._states import LIVE

__all__ = ["CronService", "CronStatistics", "Firing", "WallClock"]

log = component_logger("cron")

#: The error of cron runs a stopped process left ``running`` (the words agent runs get, §7).
INTERRUPTED: Final = "interrupted by gateway restart"
#: ``cron.get`` shows this many of a job's newest cron runs.
RECENT_RUNS: Final = 20


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


def _invalid(exc: ScheduleError) -> InvalidArgument:
    return InvalidArgument.field(f"$.{exc.field}", exc.message)


@final
class CronService:
    """Owns the jobs and their firings. Start it as the gateway's ``cron`` service."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        runs: AgentRuns,
        models: ModelCatalog,
        settings: Callable[[], Config],
        clock: WallClock | None = None,
    ) -> None:
        self._store = store
        self._models = models
        self._settings = settings
        self.clock = clock or WallClock()
        self._jobs: dict[str, Job] = {}
        self._heap: list[tuple[_dt.datetime, int, str]] = []
        self._order = itertools.count()
        self._lot = trio.lowlevel.ParkingLot()
        self._firings = FiringRunner(
            store=store,
            bus=bus,
            runs=runs,
            settings=lambda: settings().cron,
            now=self.clock.now,
        )
        self._nursery: trio.Nursery | None = None
        self._scheduling = trio.CancelScope()
        #: Why no firing is started any more (the gateway is stopping), or ``None``.
        self._closed: str | None = None

    # -- service -----------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the jobs, then schedule them until cancelled (firings end as cancelled)."""
        store = self._store
        interrupted = await store.fail_unfinished_cron_runs(INTERRUPTED, LIVE)
        self._jobs.clear()
        self._heap.clear()
        for record in await store.list_cron_jobs():
            self._add(record)
        self._firings.publish_interrupted(interrupted)
        if interrupted:
            log.warning(
                "%d cron run(s) were cut short by the last stop; marked failed", len(interrupted)
            )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._closed is None:  # a scope runs once: a new one for each start
                    self._scheduling = trio.CancelScope()
                task_status.started()
                with self._scheduling:
                    await self._schedule()
                await trio.sleep_forever()  # stopped scheduling: firings in flight go on
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
                log.debug("cron: next due %s (job %s), sleeping %.1f s", head[0], head[2], delay)
            with trio.move_on_after(max(0.0, delay)):
                await self._lot.park()

    def stop_firing(self, reason: str) -> None:
        """Start no firing from now on: the schedule stops, ``cron.trigger`` is refused, and
        firings still waiting for their turn are cancelled (recorded with ``reason``). Firings
        already running go on to their end."""
        self._closed = reason
        self._scheduling.cancel()
        for firing in self._all_firings():
            if firing.record is None:  # not running yet: waiting for a slot or its predecessor
                firing.cancel_reason = reason
                firing.scope.cancel()

    async def wait_idle(self) -> None:
        """Wait until no firing is in flight (each has published its outcome)."""
        while firings := self._all_firings():
            for firing in firings:
                await firing.done.wait()

    async def cancel_firings(self, reason: str) -> None:
        """Cancel every firing still in flight (recorded with ``reason``) and wait for them."""
        for firing in self._all_firings():
            if firing.cancel_reason is None:
                firing.cancel_reason = reason
            firing.scope.cancel()
        await self.wait_idle()

    def _all_firings(self) -> list[Firing]:
        return [firing for job in self._jobs.values() for firing in job.firings]

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
            max_concurrent=self._settings().cron.max_concurrent,
            next_run_at=format_ts(head[0]) if head else None,
            next_job_id=head[2] if head else None,
        )

    # -- the job table -----------------------------------------------------------------------

    def _add(self, record: CronJob, schedule: Schedule | None = None) -> Job:
        next_at = parse_ts(record.next_run_at) if record.enabled and record.next_run_at else None
        job = Job(record, next_at, parsed=schedule)
        self._jobs[record.job_id] = job
        self._push(job)
        return job

    def _push(self, job: Job) -> None:
        if job.next_at is not None:
            heapq.heappush(self._heap, (job.next_at, next(self._order), job.record.job_id))

    def _set_next(self, job: Job, next_at: _dt.datetime | None) -> None:
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

    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound("job", job_id)
        return job

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

    def _plan(self, job: Job, now: _dt.datetime) -> None:
        assert job.next_at is not None
        record = job.record
        plan = plan_due(
            job.schedule,
            anchor=job.anchor,
            due_at=job.next_at,
            now=now,
            misfire_policy=record.misfire_policy,
            grace_s=self._settings().cron.catch_up_grace_s,
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
            not_run(record.job_id, "missed", "schedule", format_ts(at), reason)
            for at, reason in zip(plan.missed, why, strict=True)
        ]
        firing = None
        if plan.fire_at is not None and plan.trigger is not None:
            scheduled_for = format_ts(plan.fire_at)
            refused = job.overlap()
            if refused is None:
                firing = Firing(record.job_id, plan.trigger, scheduled_for)
                log.debug(
                    "cron job %s fires (%s, due %s, %.1f s late)",
                    record.job_id,
                    plan.trigger,
                    scheduled_for,
                    plan.late_s,
                )
            else:
                runs.append(
                    not_run(record.job_id, "skipped", plan.trigger, scheduled_for, refused[0])
                )
                log.info("cron job %s skipped a fire time: %s", record.job_id, refused[0])
        if runs:
            job.record = attrs.evolve(job.record, last_status=runs[-1].status)
        self._set_next(job, plan.next_at)
        log.debug(
            "cron job %s: next fire time %s",
            record.job_id,
            format_ts(plan.next_at) if plan.next_at else "none",
        )
        self._start(job, firing, runs, save=True)

    def _start(self, job: Job, firing: Firing | None, runs: list[CronRun], *, save: bool) -> None:
        nursery = self._nursery
        if nursery is None:
            raise InvalidState("the cron service is stopped (services.start cron resumes it)")
        after = job.firings[-1] if job.firings else None
        if firing is not None:
            job.firings.append(firing)
        nursery.start_soon(self._firings.settle, job, firing, after, runs, save)

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
        """Create a job; :class:`InvalidArgument` for a bad schedule, zone or model,
        :class:`Conflict` for a taken name, :class:`NotFound` for an unknown agent."""
        for field, value in (("name", name), ("prompt", prompt)):
            if not value.strip():
                raise InvalidArgument.field(f"$.{field}", "must not be blank")
        agent = resolve_agent(self._settings(), agent_id)
        if model is not None:
            try:
                model = self._models.resolve(model).id
            except NotFound:
                message = f"unknown model {model!r} (see models.list)"
                raise InvalidArgument.field("$.model", message) from None
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
        if not await self._store.insert_cron_job(record):
            raise Conflict.field("$.name", f"a job named {name!r} exists already")
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
        runs = await self._store.recent_cron_runs(job_id, limit=RECENT_RUNS)
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
            await self._store.delete_cron_job(job_id)
        except BaseException:  # not deleted after all: schedule it again
            if self._jobs.setdefault(job_id, job) is job:
                self._push(job)
                self._wake()
            raise
        log.info("cron job %s deleted", job_id)

    async def trigger(self, job_id: str) -> Firing:
        """Fire the job now (also while it is paused); returns once its agent run has started.

        Follows ``overlap_policy``: ``skip`` refuses while a firing runs (:class:`InvalidState`),
        ``queue`` waits for it (one firing at most may wait; :class:`LimitReached`).
        """
        if self._closed is not None:
            raise InvalidState(f"no new firings are started: {self._closed}")
        job = self._job(job_id)
        refused = job.overlap()
        if refused is not None:
            error = InvalidState if refused[1] == "invalid_state" else LimitReached
            raise error(f"job {job_id}: {refused[0]}")
        firing = Firing(job_id, "manual", None)
        self._start(job, firing, [], save=False)
        await firing.started.wait()
        if firing.start_error is not None:
            raise firing.start_error
        if firing.run_id is None:
            raise NotFound("job", job_id)  # deleted (or stopped) before it could start
        return firing

    async def pause(self, job_id: str) -> CronJob:
        job = self._job(job_id)
        job.record = attrs.evolve(job.record, enabled=False)
        self._set_next(job, None)
        await job.save(self._store)
        return job.record

    async def resume(self, job_id: str) -> CronJob:
        """Enable the job again; its next fire time is counted from now (nothing is made up
        for the time it was paused). :class:`InvalidState` when it has no fire time left."""
        job = self._job(job_id)
        if not job.record.enabled or job.next_at is None:  # paused, or parked after a fault
            next_at = job.schedule.next_after(self.clock.now(), anchor=job.anchor)
            if next_at is None:
                raise InvalidState(
                    f"job {job_id} has no fire time left ({job.record.schedule} has passed)"
                )
            job.record = attrs.evolve(job.record, enabled=True)
            self._set_next(job, next_at)
            await job.save(self._store)
            self._wake()
        return job.record
