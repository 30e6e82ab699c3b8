"""Wall-clock helpers: RFC 3339 UTC timestamps with milliseconds."""

from __future__ import annotations

import datetime as _dt
import time


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def format_ts(moment: _dt.datetime) -> str:
    """``2026-11-25T06:35:49.123Z``."""
    return moment.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_last: tuple[int, str] = (0, "")


def now_ts() -> str:
    """The current time as RFC 3339; formatted once per millisecond (every event needs one)."""
    global _last
    ms = time.time_ns() // 1_000_000
    if ms != _last[0]:
        moment = _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC)
        _last = (ms, format_ts(moment))
    return _last[1]


def parse_ts(text: str) -> _dt.datetime:
    """An RFC 3339 timestamp (``Z`` or an offset required); raises ``ValueError`` otherwise."""
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time zone (Z or an offset) is required")
    return moment
