"""SQLite connections under Trio: opening one, running blocking work on it, naming its errors.

- ``connect`` opens the writer (WAL, ``synchronous=NORMAL``, foreign keys) or a read-only reader.
- ``in_thread`` runs a function on a connection in a worker thread; a cancelled call interrupts
  the query and waits for it, so a connection is never used by two threads.
- ``translate`` turns a ``sqlite3.Error`` into a :class:`StoreError` whose message says what
  went wrong (disk full, database locked, interrupted).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import trio

from ._interface import StoreError

__all__ = ["connect", "in_thread", "translate"]

T = TypeVar("T")


def translate(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "full" in text:
        return StoreError(
            "storage is full: the database could not be written (free some disk space)"
        )
    if "locked" in text or "busy" in text:
        return StoreError("the database is locked by another process; try again")
    if "interrupted" in text:
        return StoreError("the database operation was interrupted")
    return StoreError(f"database error: {text}")


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


async def in_thread(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(conn)`` in a worker thread. If cancelled, interrupt it and wait until it has
    stopped, so the connection is never used by two threads; a job cancelled before its
    thread picked it up never runs at all."""
    finished = threading.Event()
    lock = threading.Lock()
    state = {"started": False, "abandoned": False}

    def run() -> T:
        with lock:
            if state["abandoned"]:
                raise sqlite3.InterfaceError("abandoned before it started")
            state["started"] = True
        try:
            return fn(conn)
        finally:
            finished.set()

    try:
        return await trio.to_thread.run_sync(run, abandon_on_cancel=True)
    except trio.Cancelled:
        with lock:
            state["abandoned"] = True
            started = state["started"]
        if started:
            conn.interrupt()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(finished.wait)
        raise
    except sqlite3.Error as exc:
        raise translate(exc) from exc
