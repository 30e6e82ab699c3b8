"""What the cron scheduler keeps of a job (PROTOCOL §12): :class:`Job` holds its stored record,
its next fire time and its accepted firings; :class:`Firing` is one of those firings;
:func:`not_run` records a fire time that did not run.

Both modules of the service share these: ``_service.py`` schedules jobs and answers the ``cron.*``
methods, ``_firing.py`` runs a firing to its outcome.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import attrs
import trio

from ..kernel import parse_ts
from ..store import CronJob, CronRun
from ._schedule import Schedule, ScheduleError, parse_schedule
from ._states import check_initial

if TYPE_CHECKING:
    from ..kernel import GatewayError
    from ..store import Store

__all__ = ["KEEP_RUNS", "Firing", "Job", "not_run"]

#: Cron runs kept per job; older ones are removed as new ones are recorded.
KEEP_RUNS: Final = 1000


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
    start_error: GatewayError | None = None
    cancel_reason: str | None = None


@attrs.define(eq=False)
class Job:
    """A job as the scheduler keeps it: its stored record, when it is due next and its
    accepted firings, oldest first."""

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

    async def save(self, store: Store, runs: Sequence[CronRun] = ()) -> None:
        """Store the job's record with ``runs`` (new or updated), keeping the newest
        :data:`KEEP_RUNS` of its cron runs."""
        await store.save_cron_job(self.record, runs, keep_runs=KEEP_RUNS)


def not_run(job_id: str, status: str, trigger: str, scheduled_for: str, why: str) -> CronRun:
    """The record of a fire time that did not run (``skipped`` or ``missed``)."""
    return CronRun(
        "crun_" + uuid.uuid4().hex,
        job_id,
        trigger,
        check_initial(status),
        scheduled_for=scheduled_for,
        error=f"not run: {why}",
    )
