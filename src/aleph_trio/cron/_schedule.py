"""Cron schedules (PROTOCOL §12): parsing, fire times and descriptions. Pure: no Trio, no I/O.

A schedule is one of

- a 5-field cron expression ``minute hour day-of-month month day-of-week`` evaluated in an IANA
  time zone (``*/15 9-17 * * mon-fri``; names, ranges, steps, lists, ``L``, ``LW``, ``5L``,
  ``mon#2``), or a macro standing for one (``@hourly`` … ``@yearly``);
- ``every <n><s|m|h|d>``: a fixed interval counted from the job's anchor (its creation time),
  so fire times never drift however late a firing starts or ends;
- ``at <RFC 3339 time>``: once.

Cron expressions are evaluated by ``cronsim``. A wall-clock time that occurs twice (autumn) fires
once, at its first occurrence; one that does not occur (spring) fires at the next valid minute.
Expressions with a wildcard minute or hour (``*/15 * * * *``) follow real time instead: every
15 minutes of elapsed time, whatever the clock on the wall says.

Fields are checked first (``_fields.py``), so an error names the field and the value
(``minute field: 61 is out of range 0-59``); ``cronsim`` then evaluates the expression.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Final, Literal
from zoneinfo import ZoneInfo

import attrs
from cronsim import CronSim, CronSimError

from ..kernel import format_ts, parse_ts
from ._fields import ScheduleError, check_expression

__all__ = [
    "MACROS",
    "DuePlan",
    "Schedule",
    "ScheduleError",
    "load_zone",
    "parse_schedule",
    "plan_due",
]

UTC: Final = _dt.UTC

MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

#: A fire time at most this late still runs as scheduled (trigger ``schedule``): a busy moment or
#: a quick restart does not turn it into a misfire.
ON_TIME_S: Final = 60.0
#: At most this many missed fire times are recorded one by one after a pause in scheduling.
MISSED_RECORDS: Final = 100

_UNITS: Final = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_EVERY = re.compile(r"every\s+([0-9]+)\s*([a-z]+)", re.IGNORECASE | re.ASCII)
MAX_INTERVAL_S: Final = 366 * 86400
MAX_SCHEDULE_LENGTH: Final = 200


# -- time zones ---------------------------------------------------------------------------------


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`ScheduleError` (field ``timezone``) if there is none."""
    try:
        if name != "localtime":  # the machine's zone, whatever it is today: not an IANA name
            return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        pass
    raise ScheduleError(
        "timezone", f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
    )


# -- schedules ----------------------------------------------------------------------------------


@attrs.frozen
class Schedule:
    """A parsed schedule. Fire times are aware UTC datetimes."""

    text: str
    kind: Literal["cron", "every", "at"]
    zone: ZoneInfo
    expr: str | None = None  #: the cron expression (macros expanded)
    every_s: int | None = None
    at: _dt.datetime | None = None

    @property
    def timezone(self) -> str:
        return self.zone.key

    def next_after(self, after: _dt.datetime, *, anchor: _dt.datetime) -> _dt.datetime | None:
        """The first fire time strictly after ``after``; ``None`` if there is none."""
        if self.kind == "at":
            assert self.at is not None
            return self.at if self.at > after else None
        if self.kind == "every":
            interval = self._interval()
            steps = max(1, (after - anchor) // interval + 1)
            return anchor + steps * interval
        return self._cron_after(after)

    def fire_times(
        self, start: _dt.datetime, end: _dt.datetime, *, anchor: _dt.datetime, limit: int
    ) -> tuple[list[_dt.datetime], bool]:
        """Fire times ``t`` with ``start <= t <= end``: the newest ``limit`` of them, oldest first,
        and whether older ones were left out."""
        if self.kind == "at":
            assert self.at is not None
            return ([self.at] if start <= self.at <= end else []), False
        if self.kind == "every":
            interval = self._interval()
            first = max(1, -((anchor - start) // interval))  # ceil((start - anchor) / interval)
            last = (end - anchor) // interval
            if last < first:
                return [], False
            newest = range(max(first, last - limit + 1), last + 1)
            return [anchor + k * interval for k in newest], newest.start > first
        return self._cron_between(start, end, limit)

    def describe(self) -> str:
        """A sentence for people: ``At 02:30 every day (Europe/Berlin)``."""
        if self.kind == "at":
            assert self.at is not None
            return f"Once, at {format_ts(self.at)}"
        if self.kind == "every":
            assert self.every_s is not None
            return _describe_interval(self.every_s)
        assert self.expr is not None
        try:
            text = CronSim(self.expr, _dt.datetime(2000, 1, 1, tzinfo=UTC)).explain()
        except Exception:  # the explainer is best effort; the expression itself is valid
            text = f"Cron {self.expr}"
        return text if self.zone.key == "UTC" else f"{text} ({self.zone.key})"

    def _interval(self) -> _dt.timedelta:
        assert self.every_s is not None
        return _dt.timedelta(seconds=self.every_s)

    def _cron_after(self, after: _dt.datetime) -> _dt.datetime | None:
        assert self.expr is not None
        times = CronSim(self.expr, after.astimezone(self.zone))
        # Fixed wall-clock times are iterated on the wall clock: started inside a repeated hour,
        # the first answer can be that hour's first pass, which is already over.
        for _ in range(4):
            try:
                moment = next(times).astimezone(UTC)
            except StopIteration:
                return None
            if moment > after:
                return moment
        return None  # pragma: no cover - cronsim moves forward at least once a day

    def _cron_between(
        self, start: _dt.datetime, end: _dt.datetime, limit: int
    ) -> tuple[list[_dt.datetime], bool]:
        assert self.expr is not None
        # Backwards from ``end`` (cronsim starts strictly before a whole second, at or before
        # one with a fraction): the newest first, so a long gap costs ``limit`` steps, not one
        # step per missed time.
        origin = (end + _dt.timedelta(microseconds=1)).astimezone(self.zone)
        times = CronSim(self.expr, origin, reverse=True)
        found: list[_dt.datetime] = []
        for _ in range(4 * limit + 8):
            try:
                moment = next(times).astimezone(UTC)
            except StopIteration:
                return found[::-1], False
            if moment < start:
                return found[::-1], False
            if moment > end or (found and moment >= found[-1]):
                continue
            if len(found) == limit:
                return found[::-1], True
            found.append(moment)
        raise AssertionError("cronsim did not move backwards")  # pragma: no cover


def _describe_interval(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    raise AssertionError("unreachable")  # pragma: no cover


def parse_schedule(
    text: str, timezone: str = "UTC", *, now: _dt.datetime | None = None
) -> Schedule:
    """Parse ``text`` in ``timezone``; :class:`ScheduleError` says which field is wrong and why.

    With ``now``, schedules that would never fire again are refused too (a past ``at``); without
    it (a stored job being loaded) they are not.
    """
    zone = load_zone(timezone)
    stripped = text.strip()
    if not stripped:
        raise ScheduleError("schedule", "must not be blank")
    if len(stripped) > MAX_SCHEDULE_LENGTH:
        raise ScheduleError("schedule", f"at most {MAX_SCHEDULE_LENGTH} characters")
    head = stripped.split(None, 1)[0].lower()
    if head == "every":
        schedule = _parse_every(stripped, zone)
    elif head == "at":
        schedule = _parse_at(stripped, zone, now)
    elif head.startswith("@"):
        expr = MACROS.get(stripped.lower())
        if expr is None:
            raise ScheduleError(
                "schedule",
                f"unknown macro {stripped!r} (use one of {', '.join(sorted(MACROS))})",
            )
        schedule = Schedule(stripped, "cron", zone, expr=expr)
    else:
        schedule = _parse_cron(stripped, zone)
    if now is not None and schedule.kind == "cron" and schedule.next_after(now, anchor=now) is None:
        raise ScheduleError("schedule", f"{stripped!r} never fires")
    return schedule


def _parse_every(text: str, zone: ZoneInfo) -> Schedule:
    match = _EVERY.fullmatch(text)
    size = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or size is None:
        raise ScheduleError(
            "schedule",
            f"{text!r}: an interval is 'every <number><unit>' with unit s, m, h or d "
            "(every 90s, every 15m, every 2h, every 1d)",
        )
    seconds = int(match.group(1)) * size
    if not 1 <= seconds <= MAX_INTERVAL_S:
        raise ScheduleError("schedule", f"{text!r}: the interval must be 1 s to 366 days")
    return Schedule(text, "every", zone, every_s=seconds)


def _parse_at(text: str, zone: ZoneInfo, now: _dt.datetime | None) -> Schedule:
    moment_text = text[2:].strip()
    try:
        moment = parse_ts(moment_text).astimezone(UTC)
    except ValueError:
        raise ScheduleError(
            "schedule",
            f"{moment_text!r} is not an RFC 3339 time with a zone "
            "(at 2026-11-25T06:35:00Z, at 2026-11-25T07:35:00+01:00)",
        ) from None
    if now is not None and moment <= now:
        raise ScheduleError("schedule", f"{format_ts(moment)} is in the past")
    return Schedule(text, "at", zone, at=moment)


def _parse_cron(text: str, zone: ZoneInfo) -> Schedule:
    check_expression(text)
    expr = " ".join(text.split())
    try:
        CronSim(expr, _dt.datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        message = str(exc)
        if message == "Bad day-of-month":
            message = "day-of-month field: no month given has that day"
        raise ScheduleError("schedule", message) from None
    return Schedule(text, "cron", zone, expr=expr)


# -- what to do with a job that is due -------------------------------------------------------


@attrs.frozen
class DuePlan:
    """What a due job does now: fire (``fire_at``, ``trigger``) or not, which fire times it
    records as missed, and when it is due next."""

    fire_at: _dt.datetime | None
    trigger: Literal["schedule", "catch_up"] | None
    missed: tuple[_dt.datetime, ...]
    #: Fire times older than ``missed[0]`` were missed too but are not recorded one by one.
    more_missed: bool
    next_at: _dt.datetime | None
    #: How late the newest due fire time is, in seconds.
    late_s: float


def plan_due(
    schedule: Schedule,
    *,
    anchor: _dt.datetime,
    due_at: _dt.datetime,
    now: _dt.datetime,
    misfire_policy: str,
    grace_s: float,
) -> DuePlan:
    """Decide for a job whose fire time ``due_at`` has come (``due_at <= now``).

    Of every fire time from ``due_at`` to ``now`` only the newest may run: as scheduled when it is
    at most :data:`ON_TIME_S` late, else as a catch-up (``run_once`` within ``grace_s``). The
    others are missed — however long the gap, a job runs at most once.
    """
    times, more = schedule.fire_times(due_at, now, anchor=anchor, limit=MISSED_RECORDS + 1)
    next_at = schedule.next_after(now, anchor=anchor)
    if not times:
        return DuePlan(None, None, (), False, next_at, 0.0)
    latest = times[-1]
    late_s = (now - latest).total_seconds()
    trigger: Literal["schedule", "catch_up"] | None = None
    if late_s <= ON_TIME_S:
        trigger = "schedule"
    elif misfire_policy == "run_once" and late_s <= grace_s:
        trigger = "catch_up"
    missed = times[:-1] if trigger else times
    if len(missed) > MISSED_RECORDS:
        missed, more = missed[-MISSED_RECORDS:], True
    return DuePlan(latest if trigger else None, trigger, tuple(missed), more, next_at, late_s)
