"""Schedules on their own (no gateway): parsing, errors, DST, month ends, intervals, misfires."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from aleph_trio.cron._schedule import (
    MISSED_RECORDS,
    ON_TIME_S,
    Schedule,
    ScheduleError,
    parse_schedule,
    plan_due,
)

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def fires(schedule: Schedule, start: dt.datetime, count: int) -> list[dt.datetime]:
    out, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment, anchor=start)
        assert moment is not None
        out.append(moment)
    return out


def local(moments: list[dt.datetime], zone: str) -> list[str]:
    from zoneinfo import ZoneInfo

    return [m.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %Z") for m in moments]


NOW = utc(2026, 1, 1)


@pytest.mark.parametrize(
    ("text", "zone", "field", "message"),
    [
        ("61 * * * *", "UTC", "schedule", "minute field: 61 is out of range 0-59"),
        ("0 24 * * *", "UTC", "schedule", "hour field: 24 is out of range 0-23"),
        ("0 0 0 * *", "UTC", "schedule", "day-of-month field: 0 is out of range 1-31"),
        ("0 0 1 13 *", "UTC", "schedule", "month field: 13 is out of range 1-12"),
        ("0 0 * * 8", "UTC", "schedule", "day-of-week field: 8 is out of range 0-7"),
        ("0 0 * * funday", "UTC", "schedule", "day-of-week field: 'funday' is not a number"),
        ("0 0 * foo *", "UTC", "schedule", "month field: 'foo' is not a number or jan-dec"),
        ("5-3 * * * *", "UTC", "schedule", "minute field: range 5-3 goes backwards"),
        ("*/0 * * * *", "UTC", "schedule", "the step after / must be a positive number"),
        ("1,,2 * * * *", "UTC", "schedule", "minute field: empty list item"),
        ("0 9 * * mon#6", "UTC", "schedule", "day-of-week field: 'mon#6'"),
        ("* * * *", "UTC", "schedule", "expected 5 fields"),
        ("0 * * * * *", "UTC", "schedule", "seconds are not supported"),
        ("0 0 30 2 *", "UTC", "schedule", "day-of-month field: no month given has that day"),
        ("@reboot", "UTC", "schedule", "unknown macro '@reboot'"),
        ("every 0s", "UTC", "schedule", "the interval must be 1 s to 366 days"),
        ("every 5 weeks", "UTC", "schedule", "unit s, m, h or d"),
        ("every ten minutes", "UTC", "schedule", "unit s, m, h or d"),
        ("at tomorrow", "UTC", "schedule", "not an RFC 3339 time with a zone"),
        ("at 2026-02-01T09:00:00", "UTC", "schedule", "not an RFC 3339 time with a zone"),
        ("at 2025-12-31T23:59:59Z", "UTC", "schedule", "2025-12-31T23:59:59.000Z is in the past"),
        ("   ", "UTC", "schedule", "must not be blank"),
        ("0 0 * * *", "Mars/Olympus_Mons", "timezone", "unknown time zone 'Mars/Olympus_Mons'"),
        ("0 0 * * *", "../../etc/passwd", "timezone", "unknown time zone"),
        ("0 0 * * *", "Europe", "timezone", "unknown time zone"),
        ("0 0 * * *", "localtime", "timezone", "unknown time zone"),
    ],
)
def test_bad_schedules_name_the_field_and_the_problem(
    text: str, zone: str, field: str, message: str
) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_schedule(text, zone, now=NOW)
    assert err.value.field == field
    assert message in err.value.message
    assert str(err.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("text", "zone", "description", "first"),
    [
        (
            "*/15 9-17 * * mon-fri",
            "UTC",
            "Every 15th minute from 09:00 through 17:59 on Monday through Friday",
            utc(2026, 1, 1, 9),
        ),
        ("@hourly", "UTC", "At the start of every hour", utc(2026, 1, 1, 1)),
        ("@daily", "Europe/Berlin", "At 00:00 every day (Europe/Berlin)", utc(2026, 1, 1, 23)),
        ("@weekly", "UTC", "At 00:00 on Sunday", utc(2026, 1, 4)),
        ("@monthly", "UTC", "At 00:00 on the first day of every month", utc(2026, 2, 1)),
        ("@YEARLY", "UTC", "At 00:00 on January 1", utc(2027, 1, 1)),
        ("0 9 L * *", "UTC", "At 09:00 on the last day of every month", utc(2026, 1, 31, 9)),
        ("0 9 * * 5L", "UTC", "At 09:00 on the last Friday of the month", utc(2026, 1, 30, 9)),
        ("every 90s", "UTC", "Every 90 seconds", utc(2026, 1, 1, 0, 1, 30)),
        ("every 120 minutes", "UTC", "Every 2 hours", utc(2026, 1, 1, 2)),
        ("every 1d", "UTC", "Every day", utc(2026, 1, 2)),
        (
            "at 2026-03-01T10:00:00+01:00",
            "UTC",
            "Once, at 2026-03-01T09:00:00.000Z",
            utc(2026, 3, 1, 9),
        ),
    ],
)
def test_good_schedules_are_described_and_fire(
    text: str, zone: str, description: str, first: dt.datetime
) -> None:
    schedule = parse_schedule(text, zone, now=NOW)
    assert schedule.describe() == description
    assert schedule.next_after(NOW, anchor=NOW) == first


def test_berlin_spring_forward_fires_at_the_next_valid_minute() -> None:
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    got = fires(schedule, utc(2026, 3, 27, 12), 4)
    assert local(got, "Europe/Berlin") == [
        "03-28 02:30 CET",
        "03-29 03:00 CEST",  # 02:30 does not exist that night
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]


def test_berlin_fall_back_fires_a_repeated_time_once() -> None:
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    got = fires(schedule, utc(2026, 10, 24, 12), 3)
    assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]
    # Asked from inside the repeated hour (its second pass), it does not fire again.
    assert schedule.next_after(utc(2026, 10, 25, 1, 15), anchor=NOW) == utc(2026, 10, 26, 1, 30)


def test_new_york_both_changes() -> None:
    spring = parse_schedule("30 2 * * *", "America/New_York")
    assert local(fires(spring, utc(2026, 3, 7, 12), 2), "America/New_York") == [
        "03-08 03:00 EDT",
        "03-09 02:30 EDT",
    ]
    autumn = parse_schedule("30 1 * * *", "America/New_York")
    assert fires(autumn, utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, the first of the two
        utc(2026, 11, 2, 6, 30),
    ]


def test_hourly_follows_real_hours_across_both_changes() -> None:
    hourly = parse_schedule("0 * * * *", "Europe/Berlin")
    # From local midnight to 23:00: 25 hours in the autumn day, one fire each.
    day = fires(hourly, utc(2026, 10, 24, 21, 59), 25)
    assert local(day[:1] + day[-1:], "Europe/Berlin") == ["10-25 00:00 CEST", "10-25 23:00 CET"]
    assert all(b - a == dt.timedelta(hours=1) for a, b in itertools.pairwise(day))
    assert local(day[2:4], "Europe/Berlin") == ["10-25 02:00 CEST", "10-25 02:00 CET"]
    spring = fires(hourly, utc(2026, 3, 28, 22, 59), 23)  # and 23 in the spring day
    assert local(spring[:1] + spring[-1:], "Europe/Berlin") == [
        "03-29 00:00 CET",
        "03-29 23:00 CEST",
    ]
    assert "03-29 02:00 CET" not in local(spring, "Europe/Berlin")


def test_month_ends_and_leap_days() -> None:
    thirty_first = parse_schedule("0 0 31 * *", "UTC")
    assert [m.month for m in fires(thirty_first, utc(2026, 1, 1), 7)] == [1, 3, 5, 7, 8, 10, 12]
    last = parse_schedule("0 9 L * *", "UTC")
    assert [m.day for m in fires(last, utc(2027, 12, 31, 12), 3)] == [31, 29, 31]  # 2028 leaps
    leap = parse_schedule("0 12 29 2 *", "UTC")
    assert fires(leap, utc(2026, 1, 1), 2) == [utc(2028, 2, 29, 12), utc(2032, 2, 29, 12)]
    monthly = parse_schedule("@monthly", "America/New_York")
    assert local(fires(monthly, utc(2026, 1, 15), 3), "America/New_York") == [
        "02-01 00:00 EST",
        "03-01 00:00 EST",
        "04-01 00:00 EDT",
    ]


def test_every_90s_does_not_drift_over_24_hours() -> None:
    """Each next fire time is computed from when the previous firing *ended* (up to a minute
    late, as a slow firing would): the times still fall exactly on the anchor's grid."""
    anchor = utc(2026, 6, 1, 8, 0, 0, 123000)
    schedule = parse_schedule("every 90s", "Europe/Berlin")
    rng = random.Random(7)
    moment, got = anchor, []
    while moment < anchor + dt.timedelta(hours=24):
        fired = schedule.next_after(moment, anchor=anchor)
        assert fired is not None
        got.append(fired)
        moment = fired + dt.timedelta(seconds=rng.uniform(0, 60))
    assert len(got) == 960
    assert got == [anchor + k * dt.timedelta(seconds=90) for k in range(1, 961)]


def test_fire_times_keep_the_newest_and_say_when_older_ones_were_left_out() -> None:
    anchor = utc(2026, 1, 1)
    every = parse_schedule("every 1m", "UTC")
    times, more = every.fire_times(utc(2026, 1, 1, 0, 1), utc(2026, 1, 8), anchor=anchor, limit=3)
    assert times == [utc(2026, 1, 7, 23, 58), utc(2026, 1, 7, 23, 59), utc(2026, 1, 8)]
    assert more
    times, more = every.fire_times(
        utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2), anchor=anchor, limit=3
    )
    assert times == [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2)] and not more
    cron = parse_schedule("30 2 * * *", "Europe/Berlin")
    times, more = cron.fire_times(
        utc(2026, 3, 27), utc(2026, 3, 30, 0, 30), anchor=anchor, limit=10
    )
    assert times == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 30, 0, 30),
    ]
    assert not more
    times, more = cron.fire_times(utc(2026, 1, 1), utc(2026, 10, 27), anchor=anchor, limit=3)
    assert times == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert more


def test_one_shot_fires_once() -> None:
    shot = parse_schedule("at 2026-05-01T12:00:00Z", "UTC", now=NOW)
    assert shot.next_after(NOW, anchor=NOW) == utc(2026, 5, 1, 12)
    assert shot.next_after(utc(2026, 5, 1, 12), anchor=NOW) is None
    # A stored job whose time has passed still loads (it is not validated against now).
    assert parse_schedule("at 2020-01-01T00:00:00Z").at == utc(2020, 1, 1)


def plan(text: str, due: dt.datetime, now: dt.datetime, policy: str = "run_once") -> object:
    anchor = utc(2026, 1, 1)
    return plan_due(
        parse_schedule(text, "UTC"),
        anchor=anchor,
        due_at=due,
        now=now,
        misfire_policy=policy,
        grace_s=3600,
    )


def test_plan_on_time_and_slightly_late_fire_as_scheduled() -> None:
    on_time = plan_due(
        parse_schedule("every 1m", "UTC"),
        anchor=utc(2026, 1, 1),
        due_at=utc(2026, 1, 1, 0, 5),
        now=utc(2026, 1, 1, 0, 5, 0, 2000),
        misfire_policy="skip",
        grace_s=0,
    )
    assert on_time.fire_at == utc(2026, 1, 1, 0, 5) and on_time.trigger == "schedule"
    assert on_time.missed == () and on_time.next_at == utc(2026, 1, 1, 0, 6)
    late = plan_due(
        parse_schedule("@hourly", "UTC"),
        anchor=utc(2026, 1, 1),
        due_at=utc(2026, 1, 1, 5),
        now=utc(2026, 1, 1, 5) + dt.timedelta(seconds=ON_TIME_S),
        misfire_policy="skip",
        grace_s=0,
    )
    assert late.trigger == "schedule" and late.missed == ()


def test_plan_after_a_week_down_runs_once_and_records_the_rest_as_missed() -> None:
    anchor = utc(2026, 1, 1)
    now = utc(2026, 1, 8, 0, 30)
    hourly = parse_schedule("@hourly", "UTC")
    result = plan_due(
        hourly,
        anchor=anchor,
        due_at=utc(2026, 1, 1, 1),
        now=now,
        misfire_policy="run_once",
        grace_s=3600,
    )
    assert result.trigger == "catch_up" and result.fire_at == utc(2026, 1, 8)
    assert len(result.missed) == MISSED_RECORDS and result.more_missed
    assert result.missed[-1] == utc(2026, 1, 7, 23)
    assert result.next_at == utc(2026, 1, 8, 1)
    skip = plan_due(
        hourly,
        anchor=anchor,
        due_at=utc(2026, 1, 7, 22),
        now=now,
        misfire_policy="skip",
        grace_s=3600,
    )
    assert skip.fire_at is None and skip.trigger is None
    assert skip.missed == (utc(2026, 1, 7, 22), utc(2026, 1, 7, 23), utc(2026, 1, 8))
    assert not skip.more_missed
    stale = plan_due(
        parse_schedule("@daily", "UTC"),
        anchor=anchor,
        due_at=utc(2026, 1, 6),
        now=utc(2026, 1, 8, 12),
        misfire_policy="run_once",
        grace_s=3600,
    )
    assert stale.fire_at is None  # the newest fire time is 12 h old: beyond the grace
    assert stale.missed == (utc(2026, 1, 6), utc(2026, 1, 7), utc(2026, 1, 8))
    assert stale.next_at == utc(2026, 1, 9)
    every = plan_due(
        parse_schedule("every 1s", "UTC"),
        anchor=anchor,
        due_at=utc(2026, 1, 1, 0, 0, 1),
        now=utc(2026, 1, 8),
        misfire_policy="run_once",
        grace_s=3600,
    )
    assert every.trigger == "schedule" and every.fire_at == utc(2026, 1, 8)
    assert len(every.missed) == MISSED_RECORDS and every.more_missed


def test_schedules_are_pure() -> None:
    """``_cron_schedule`` needs no event loop: it imports neither trio nor I/O layers."""
    import ast
    from pathlib import Path

    import aleph_trio.cron._schedule as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name and name.startswith(("trio", "sqlite3"))}
    assert "store" not in imported
