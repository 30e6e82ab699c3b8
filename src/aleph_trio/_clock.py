"""Wall-clock helpers: RFC 3339 UTC timestamps with milliseconds."""

from __future__ import annotations

import datetime as _dt


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def format_ts(moment: _dt.datetime) -> str:
    """``2026-11-25T06:35:49.123Z``."""
    return moment.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ts() -> str:
    return format_ts(utc_now())


def parse_ts(text: str) -> _dt.datetime:
    """An RFC 3339 timestamp (``Z`` or an offset required); raises ``ValueError`` otherwise."""
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time zone (Z or an offset) is required")
    return moment
