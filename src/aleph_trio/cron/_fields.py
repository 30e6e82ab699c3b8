"""The fields of a 5-field cron expression, checked one by one so that an error names the field
and the value (``minute field: 61 is out of range 0-59``) before ``cronsim`` evaluates it; and
the error every schedule problem raises."""

from __future__ import annotations

from typing import Final, Literal

import attrs

__all__ = ["ScheduleError", "check_expression", "is_number"]

_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DAYS = "sun mon tue wed thu fri sat".split()


def is_number(text: str) -> bool:
    """Plain ASCII digits (``str.isdigit`` also accepts other scripts' digits)."""
    return text.isascii() and text.isdigit()


class ScheduleError(ValueError):
    """A schedule or time zone that cannot be used; ``field`` is the parameter at fault."""

    def __init__(self, field: Literal["schedule", "timezone"], message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# -- cron fields --------------------------------------------------------------------------------


@attrs.frozen
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  #: symbolic names, the first standing for ``low``

    def value(self, text: str) -> int:
        lowered = text.lower()
        if self.names and lowered in self.names:
            return self.low + self.names.index(lowered)
        if not is_number(text):
            named = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
            raise self.error(f"{text!r} is not a number{named}")
        number = int(text)
        if not self.low <= number <= self.high:
            raise self.error(f"{number} is out of range {self.low}-{self.high}")
        return number

    def error(self, message: str) -> ScheduleError:
        return ScheduleError("schedule", f"{self.name} field: {message}")

    def check(self, text: str) -> None:
        for item in text.split(","):
            if not item:
                raise self.error(f"empty list item in {text!r}")
            self._check_item(item)

    def _check_item(self, item: str) -> None:
        upper = item.upper()
        if self.name == "day-of-month" and upper in ("L", "LW"):
            return
        if self.name == "day-of-week" and "#" in item:
            day, _, nth = item.partition("#")
            self.value(day)
            if not (is_number(nth) and 1 <= int(nth) <= 5):
                raise self.error(f"{item!r}: the week after # must be 1-5")
            return
        if self.name == "day-of-week" and upper.endswith("L") and len(item) > 1:
            if not is_number(item[:-1]):
                raise self.error(f"{item!r}: L (last) follows a day number, as in 5L")
            self.value(item[:-1])
            return
        base, slash, step = item.partition("/")
        if slash:
            if not is_number(step) or int(step) == 0:
                raise self.error(f"{item!r}: the step after / must be a positive number")
        if base == "*":
            return
        first, dash, last = base.partition("-")
        start = self.value(first)
        if dash:
            end = self.value(last)
            if end < start:
                raise self.error(f"range {base} goes backwards")


_FIELDS: Final = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, tuple(_MONTHS)),
    _Field("day-of-week", 0, 7, tuple(_DAYS)),
)


def check_expression(expr: str) -> None:
    parts = expr.split()
    if len(parts) != len(_FIELDS):
        hint = " (seconds are not supported)" if len(parts) == 6 else ""
        raise ScheduleError(
            "schedule",
            f"expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}{hint}",
        )
    for field, part in zip(_FIELDS, parts, strict=True):
        field.check(part)
