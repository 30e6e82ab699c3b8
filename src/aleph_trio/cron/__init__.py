"""Cron (PROTOCOL §12): schedules, the scheduler service, firings of jobs and their lifecycle."""

from ._firing import AgentRuns as AgentRuns
from ._schedule import (
    MACROS as MACROS,
    Schedule as Schedule,
    ScheduleError as ScheduleError,
    parse_schedule as parse_schedule,
    plan_due as plan_due,
)
from ._service import (
    CronService as CronService,
    CronStatistics as CronStatistics,
    WallClock as WallClock,
)
from ._states import CRON_RUNS as CRON_RUNS, LIVE as LIVE, TERMINAL as TERMINAL
