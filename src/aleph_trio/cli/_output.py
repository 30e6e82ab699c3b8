"""How results, errors and events are written: readable on a terminal, JSON lines otherwise.

Each stream decides for itself: stdout is JSON lines when it is not a terminal (piped into a
file or ``jq``), stderr likewise for JSON-RPC errors. Messages about the command itself (cannot
connect, bad arguments) are always one plain line on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from ..client import ClientEvent
from ..protocol import AlephError

__all__ = ["Output", "compact", "event_line", "is_terminal", "pretty"]

PROG = "aleph-trio"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def compact(value: Any) -> str:
    """One line of JSON (what a pipe gets)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def clock(ts: str | None) -> str:
    """``2026-11-25T06:35:49.123Z`` → ``06:35:49.123``."""
    if not ts or "T" not in ts:
        return "--:--:--.---"
    return ts.split("T", 1)[1].rstrip("Z")


def event_object(event: ClientEvent) -> dict[str, Any]:
    return {"topic": event.topic, "seq": event.seq, "ts": event.ts, "data": event.data}


def event_line(event: ClientEvent) -> str:
    """An event as a person reads it: time, seq, topic, data."""
    data = event.data
    if event.topic == "logs.entry":
        return (
            f"{clock(data.get('ts'))} {str(data.get('level', '')).upper():<8} "
            f"{data.get('component', '')}: {data.get('message', '')}"
        )
    if event.topic == "client.resync":
        return f"-- {data.get('reason', 'resynchronised')}: earlier events may be missing --"
    seq = "" if event.seq is None else f"#{event.seq} "
    return f"{clock(event.ts)} {seq}{event.topic} {compact(data)}"


def error_object(exc: AlephError) -> dict[str, Any]:
    obj = exc.to_object()
    obj.setdefault("data", None)
    return obj


class Output:
    """Where a command writes, and in which form."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.json = not is_terminal(self.stdout)
        self.errors_json = not is_terminal(self.stderr)

    def write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def line(self, text: str) -> None:
        self.write(text + "\n")

    def json_line(self, value: Any) -> None:
        self.line(compact(value))

    def result(self, value: Any) -> None:
        self.line(compact(value) if self.json else pretty(value))

    def event(self, event: ClientEvent) -> None:
        self.line(compact(event_object(event)) if self.json else event_line(event))

    def error(self, exc: AlephError) -> None:
        """A JSON-RPC error: code, message and data."""
        obj = error_object(exc)
        if self.errors_json:
            text = compact(obj)
        else:
            text = f"error {obj['code']}: {obj['message']}"
            if obj["data"] is not None:
                text += "\n" + pretty(obj["data"])
        self.note(text, prefix=False)

    def note(self, text: str, *, prefix: bool = True) -> None:
        """A line for the person at the terminal, on stderr."""
        self.stderr.write(f"{PROG}: {text}\n" if prefix else text + "\n")
        self.stderr.flush()
