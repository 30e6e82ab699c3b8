"""Logging: one stdlib logger per component and an in-memory ring for ``logs.tail``.

The library only ever touches loggers under ``aleph_trio``; it never configures the root logger
(the command-line entry point does that for the server process).
"""

from __future__ import annotations

import collections
import datetime as _dt
import logging
import threading
from collections.abc import Callable
from typing import Any, final

from ._clock import format_ts

__all__ = ["COMPONENTS", "LEVELS", "LogRing", "component_logger", "level_name"]

ROOT = "aleph_trio"
#: Components whose level can be read and set. Later subsystems add theirs with ``register``.
COMPONENTS: set[str] = {"gateway", "server", "auth", "events", "config", "rpc"}
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def component_logger(component: str) -> logging.Logger:
    COMPONENTS.add(component)
    return logging.getLogger(ROOT if component == "gateway" else f"{ROOT}.{component}")


def level_name(level: int) -> str:
    for name, value in LEVELS.items():
        if level <= value:
            return name
    return "critical"


def _component_of(logger_name: str) -> str:
    if logger_name == ROOT:
        return "gateway"
    if logger_name.startswith(ROOT + "."):
        return logger_name[len(ROOT) + 1 :]
    return logger_name


@final
class LogRing(logging.Handler):
    """Keeps the last ``capacity`` records as JSON-ready entries; tells listeners about new ones.

    ``emit`` may run in any thread. Listeners are called later, from the Trio loop, through
    ``schedule`` (``TrioToken.run_sync_soon``), so a listener may publish events without ever
    re-entering the code that logged.
    """

    def __init__(self, capacity: int = 5000) -> None:
        super().__init__(logging.DEBUG)
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self._lock_entries = threading.Lock()
        self.listener: Callable[[dict[str, Any]], None] | None = None
        self.schedule: Callable[[Callable[[], None]], None] | None = None
        #: Whether anyone listens now; checked (cheaply) before ``schedule`` is paid for.
        self.wanted: Callable[[], bool] = lambda: True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                message += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
            entry = {
                "ts": format_ts(_dt.datetime.fromtimestamp(record.created, _dt.UTC)),
                "level": level_name(record.levelno),
                "component": _component_of(record.name),
                "message": message,
            }
        except Exception:  # a broken log call must not break the caller
            self.handleError(record)
            return
        with self._lock_entries:
            self._entries.append(entry)
        listener, schedule = self.listener, self.schedule
        if listener is not None and schedule is not None and self.wanted():
            try:
                schedule(lambda: listener(entry))
            except (RuntimeError, OSError):  # that Trio run has ended: nobody follows any more
                pass

    def tail(self, lines: int) -> list[dict[str, Any]]:
        with self._lock_entries:
            entries = list(self._entries)
        return entries[-lines:] if lines else []


def apply_levels(default: str, components: dict[str, str]) -> None:
    """Set the ``aleph_trio`` logger to ``default`` and each named component to its override."""
    logging.getLogger(ROOT).setLevel(LEVELS[default])
    for component in COMPONENTS - {"gateway"}:
        logging.getLogger(f"{ROOT}.{component}").setLevel(logging.NOTSET)
    for component, level in components.items():
        component_logger(component).setLevel(LEVELS[level])


def current_levels() -> dict[str, str]:
    return {c: level_name(component_logger(c).getEffectiveLevel()) for c in sorted(COMPONENTS)}


def apply_component_level(component: str, level: str) -> None:
    component_logger(component).setLevel(LEVELS[level])
