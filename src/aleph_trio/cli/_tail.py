"""``aleph-trio tail [PATTERN...] [--logs]``: follow events until interrupted.

The client reconnects by itself and resubscribes from the last ``seq`` it saw, so nothing is
missed or shown twice across a dropped connection; a gateway restart is announced by its
``client.resync`` event. Following the log is a property of a connection, so it is asked for
again on every new one (log entries written while disconnected are not replayed).
"""

from __future__ import annotations

from typing import Any

import trio

from ..client import Client, ClientEvent
from ._connect import Target, report_reconnects
from ._output import Output

__all__ = ["tail"]

RECENT_LOG_LINES = 10


async def tail(
    client: Client, out: Output, patterns: list[str], *, logs: bool, target: Target
) -> int:
    await client.subscribe(patterns or ["**"])
    if logs:
        recent = await client.call("logs.tail", {"lines": RECENT_LOG_LINES, "follow": True})
        for entry in recent["entries"]:
            out.event(_log_event(entry))
    shown = " ".join(patterns or ["**"]) + (" and the log" if logs else "")
    out.note(f"following {shown} at {target.url}; Ctrl-C stops")
    async with trio.open_nursery() as nursery:
        again = _follow_log_again if logs else None
        nursery.start_soon(report_reconnects, client, out.note, again)
        async for event in client.events():
            out.event(event)
    return 0


def _log_event(entry: dict[str, Any]) -> ClientEvent:
    return ClientEvent("logs.entry", None, entry.get("ts"), entry)


async def _follow_log_again(client: Client) -> None:
    await client.call("logs.tail", {"lines": 0, "follow": True})
