"""The SQLite store: one database file in WAL mode, one writer, a few readers, all off-thread.

- Every write is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) run by the single writer
  connection, one at a time, so transactions never interleave. With WAL and
  ``synchronous=NORMAL`` a committed transaction survives the process being killed at any moment.
- Reads use a small pool of read-only connections in worker threads and never wait for the
  writer (WAL readers see the last committed state).
- A query whose task is cancelled is interrupted (``Connection.interrupt()``) and waited for, so
  nothing keeps running on a connection that is handed to the next caller.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, final

import attrs
import outcome
import trio

from .._clock import now_ts
from ._interface import UNFINISHED, UNFINISHED_CRON, StoreError
from ._records import (
    ApprovalRecord,
    CronJob,
    CronRun,
    MemoryHit,
    MemoryItem,
    Message,
    Role,
    Run,
    Session,
    SessionFilter,
)
from ._schema import MIGRATIONS

__all__ = ["SQLiteStore", "open_sqlite_store"]

T = TypeVar("T")
#: Read-only connections (threads). More only trade the GIL back and forth.
READERS = 2
#: At most this many queued changes share one transaction.
MAX_BATCH = 256
TITLE_LENGTH = 80
_WORD = re.compile(r"\w+", re.UNICODE)


def _translate(exc: sqlite3.Error) -> StoreError:
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


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
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


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    version = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the database schema is version {version}, newer than this gateway understands "
            f"({len(MIGRATIONS)}); run a newer aleph_trio or restore a backup"
        )
    for number in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number + 1,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
    if buffer.strip():
        yield buffer


@attrs.define(eq=False)
class _WriteOp:
    fn: Callable[[sqlite3.Connection], Any]
    done: trio.Event = attrs.Factory(trio.Event)
    result: outcome.Outcome[Any] | None = None


def _run_batch(batch: list[_WriteOp], conn: sqlite3.Connection) -> None:
    """One transaction; a savepoint per change (in the writer thread)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        for op in batch:
            op.result = outcome.Error(exc)
        return
    try:
        for op in batch:
            conn.execute("SAVEPOINT change")
            op.result = outcome.capture(op.fn, conn)
            if isinstance(op.result, outcome.Error):
                conn.execute("ROLLBACK TO change")
            conn.execute("RELEASE change")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        failure = outcome.Error(exc if isinstance(exc, sqlite3.Error) else StoreError(str(exc)))
        for op in batch:
            op.result = failure
        if not isinstance(exc, Exception):
            raise


def _session(row: sqlite3.Row) -> Session:
    return Session(
        session_key=row["session_key"],
        agent_id=row["agent_id"],
        message_count=row["message_count"],
        token_count=row["token_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        title=row["title"],
    )


#: The columns ``_message`` reads, by position (cheaper than by name on hot paths).
MESSAGE_COLUMNS = (
    "id, session_key, role, content, created_at, tokens, run_id, tool_calls, tool_call_id"
)


def _message(row: sqlite3.Row) -> Message:
    mid, key, role, content, created_at, tokens, run_id, calls, call_id = row
    return Message(
        mid,
        key,
        role,
        content,
        created_at,
        tokens,
        run_id,
        json.loads(calls) if calls else None,
        call_id,
    )


def _history(
    conn: sqlite3.Connection, session_key: str, limit: int, before_id: int | None
) -> list[Message]:
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? AND id < ? "
        "ORDER BY id DESC LIMIT ?",
        (session_key, before_id if before_id is not None else 2**63 - 1, limit),
    ).fetchall()
    return [_message(r) for r in reversed(rows)]


def _memory(row: sqlite3.Row) -> MemoryItem:
    return MemoryItem(
        id=row["id"],
        content=row["content"],
        source=row["source"],
        created_at=row["created_at"],
        metadata=json.loads(row["metadata"]),
    )


#: The columns of ``cron_jobs`` in :class:`CronJob` field order.
CRON_JOB_COLUMNS = (
    "job_id, name, schedule, timezone, agent_id, prompt, session_key, enabled, misfire_policy, "
    "overlap_policy, created_at, next_run_at, last_run_at, last_status, model"
)
#: The columns of ``cron_runs`` in :class:`CronRun` field order.
CRON_RUN_COLUMNS = (
    "cron_run_id, job_id, trigger_kind, status, scheduled_for, run_id, started_at, finished_at, "
    "error"
)


def _cron_job(row: sqlite3.Row) -> CronJob:
    values = list(row)
    values[7] = bool(values[7])
    return CronJob(*values)


def _cron_job_values(job: CronJob) -> tuple[object, ...]:
    values = attrs.astuple(job)
    return (*values[:7], int(job.enabled), *values[8:])


def fts_query(text: str) -> str | None:
    """User text as a safe FTS5 query: each word quoted, any word may match (BM25 ranks)."""
    words = _WORD.findall(text)
    if not words:
        return None
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words[:64])


@final
class SQLiteStore:
    """Create with :func:`open_sqlite_store`."""

    def __init__(
        self, path: Path, writer: sqlite3.Connection, readers: list[sqlite3.Connection]
    ) -> None:
        self.path = path
        self._writer = writer
        self._pending: list[_WriteOp] = []
        self._writer_lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._readers = readers
        self._reader_slots = trio.Semaphore(len(readers))
        self.writes = 0
        self.transactions = 0

    # -- plumbing ------------------------------------------------------------------------------

    @staticmethod
    async def _in_thread(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
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
            raise _translate(exc) from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the next write transaction; changes queued together commit together."""
        if self._closed:
            raise StoreError("the store is closed")
        op = _WriteOp(fn)
        self._pending.append(op)
        self._writer_lot.unpark()
        try:
            await op.done.wait()
        except trio.Cancelled:
            if op in self._pending:  # not started: it never runs
                self._pending.remove(op)
                raise
            with trio.CancelScope(shield=True):  # under way: let its transaction finish
                await op.done.wait()
            raise
        assert op.result is not None
        try:
            return op.result.unwrap()  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def serve_writer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The single writer: takes every queued change and commits them as one transaction.

        Group commit pays one thread hand-off and one commit for many changes; each change runs
        in its own savepoint, so one that fails is rolled back alone and the others commit.
        """
        task_status.started()
        batch: list[_WriteOp] = []
        try:
            while True:
                if not self._pending:
                    await self._writer_lot.park()
                    continue
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._in_thread(self._writer, partial(_run_batch, batch))
                self.writes += len(batch)
                self.transactions += 1
                for op in batch:
                    op.done.set()
                batch = []
        finally:
            self._closed = True
            closed = outcome.Error(StoreError("the store is closed"))
            for op in [*batch, *self._pending]:
                if op.result is None:
                    op.result = closed
                op.done.set()
            self._pending.clear()

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def read(conn: sqlite3.Connection) -> T:
            try:
                return fn(conn)
            finally:
                # An interrupted read may leave its snapshot open; the next one needs a fresh one.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

        async with self._reader_slots:
            conn = self._readers.pop()
            try:
                return await self._in_thread(conn, read)
            finally:
                self._readers.append(conn)

    # -- sessions and messages -----------------------------------------------------------------

    async def get_session(self, session_key: str) -> Session | None:
        def q(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute(
                "SELECT * FROM sessions WHERE session_key = ?", (session_key,)
            ).fetchone()
            return _session(row) if row else None

        return await self._read(q)

    async def list_sessions(
        self, flt: SessionFilter, *, limit: int, offset: int
    ) -> tuple[list[Session], int]:
        where: list[str] = []
        args: list[object] = []
        if flt.agent_id is not None:
            where.append("agent_id = ?")
            args.append(flt.agent_id)
        if flt.prefix is not None:
            where.append("substr(session_key, 1, ?) = ?")
            args += [len(flt.prefix), flt.prefix]
        if flt.updated_after is not None:
            where.append("updated_at > ?")
            args.append(flt.updated_after)
        clause = f"WHERE {' AND '.join(where)}" if where else ""

        def q(conn: sqlite3.Connection) -> tuple[list[Session], int]:
            total = conn.execute(f"SELECT count(*) FROM sessions {clause}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM sessions {clause} ORDER BY activity DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            return [_session(r) for r in rows], total

        return await self._read(q)

    async def append_message(
        self,
        session_key: str,
        agent_id: str,
        role: Role,
        content: str,
        *,
        tokens: int,
        run_id: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
    ) -> tuple[Message, bool]:
        created_at = now_ts()
        calls = json.dumps(tool_calls) if tool_calls is not None else None
        title = content[:TITLE_LENGTH] if role == "user" else None

        def tx(conn: sqlite3.Connection) -> tuple[Message, bool]:
            cur = conn.execute(
                "INSERT INTO sessions (session_key, agent_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (session_key) DO NOTHING",
                (session_key, agent_id, created_at, created_at),
            )
            created = cur.rowcount == 1
            message_id = conn.execute(
                "INSERT INTO messages (session_key, role, content, created_at, tokens, run_id, "
                "tool_calls, tool_call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session_key, role, content, created_at, tokens, run_id, calls, tool_call_id),
            ).lastrowid
            conn.execute(
                "UPDATE sessions SET message_count = message_count + 1, "
                "token_count = token_count + ?, activity = ?, updated_at = ?, "
                "title = coalesce(title, ?) WHERE session_key = ?",
                (tokens, message_id, created_at, title, session_key),
            )
            assert message_id is not None
            message = Message(
                message_id,
                session_key,
                role,
                content,
                created_at,
                tokens,
                run_id,
                tool_calls,
                tool_call_id,
            )
            return message, created

        return await self._write(tx)

    async def history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> list[Message]:
        def q(conn: sqlite3.Connection) -> list[Message]:
            return _history(conn, session_key, limit, before_id)

        return await self._read(q)

    async def session_history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> tuple[Session | None, list[Message]]:
        def q(conn: sqlite3.Connection) -> tuple[Session | None, list[Message]]:
            conn.execute("BEGIN")  # one snapshot: the counts match the messages (_read ends it)
            row = conn.execute(
                "SELECT * FROM sessions WHERE session_key = ?", (session_key,)
            ).fetchone()
            if row is None:
                return None, []
            return _session(row), _history(conn, session_key, limit, before_id)

        return await self._read(q)

    async def clear_session(self, session_key: str) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            removed = conn.execute(
                "DELETE FROM messages WHERE session_key = ?", (session_key,)
            ).rowcount
            conn.execute(
                "UPDATE sessions SET message_count = 0, token_count = 0, title = NULL, "
                "updated_at = ? WHERE session_key = ?",
                (now_ts(), session_key),
            )
            return removed

        return await self._write(tx)

    async def delete_session(self, session_key: str) -> int | None:
        def tx(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT message_count FROM sessions WHERE session_key = ?", (session_key,)
            ).fetchone()
            if row is None:
                return None
            removed = conn.execute(
                "DELETE FROM messages WHERE session_key = ?", (session_key,)
            ).rowcount
            conn.execute("DELETE FROM sessions WHERE session_key = ?", (session_key,))
            return removed

        return await self._write(tx)

    async def replace_range(
        self, session_key: str, *, upto_id: int, summary: str, summary_tokens: int
    ) -> tuple[int, int]:
        created_at = now_ts()

        def tx(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute(
                "SELECT token_count FROM sessions WHERE session_key = ?", (session_key,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no session {session_key}")
            before = row[0]
            gone = conn.execute(
                "SELECT count(*), coalesce(sum(tokens), 0), min(id) FROM messages "
                "WHERE session_key = ? AND id <= ?",
                (session_key, upto_id),
            ).fetchone()
            count, tokens, first_id = gone
            if count == 0:
                return before, before
            conn.execute(
                "DELETE FROM messages WHERE session_key = ? AND id <= ?", (session_key, upto_id)
            )
            # The summary takes the place (and the id) of the oldest message it replaces, so
            # history stays ordered by id.
            conn.execute(
                "INSERT INTO messages (id, session_key, role, content, created_at, tokens) "
                "VALUES (?, ?, 'system', ?, ?, ?)",
                (first_id, session_key, summary, created_at, summary_tokens),
            )
            after = before - tokens + summary_tokens
            conn.execute(
                "UPDATE sessions SET message_count = message_count - ? + 1, token_count = ?, "
                "updated_at = ? WHERE session_key = ?",
                (count, after, created_at, session_key),
            )
            return before, after

        return await self._write(tx)

    # -- runs ----------------------------------------------------------------------------------

    async def save_run(self, run: Run) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO runs (run_id, session_key, agent_id, model, status, created_at, "
                "started_at, finished_at, iterations, tokens_used, error, output, principal_id, "
                "error_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET "
                "status = excluded.status, started_at = excluded.started_at, "
                "finished_at = excluded.finished_at, iterations = excluded.iterations, "
                "tokens_used = excluded.tokens_used, error = excluded.error, "
                "output = excluded.output, error_code = excluded.error_code",
                (
                    run.run_id,
                    run.session_key,
                    run.agent_id,
                    run.model,
                    run.status,
                    run.created_at,
                    run.started_at,
                    run.finished_at,
                    run.iterations,
                    run.tokens_used,
                    run.error,
                    run.output,
                    run.principal_id,
                    run.error_code,
                ),
            )

        await self._write(tx)

    async def get_run(self, run_id: str) -> Run | None:
        def q(conn: sqlite3.Connection) -> Run | None:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return Run(**dict(row)) if row else None

        return await self._read(q)

    async def fail_unfinished_runs(self, error: str) -> list[Run]:
        finished_at = now_ts()
        marks = ", ".join("?" for _ in UNFINISHED)

        def tx(conn: sqlite3.Connection) -> list[Run]:
            rows = conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, error_code = -32603, "
                f"finished_at = ? WHERE status IN ({marks}) RETURNING *",
                (error, finished_at, *UNFINISHED),
            ).fetchall()
            return [Run(**dict(r)) for r in rows]

        return await self._write(tx)

    # -- memory --------------------------------------------------------------------------------

    async def store_memory(
        self, content: str, *, source: str, metadata: dict[str, Any]
    ) -> MemoryItem:
        item = MemoryItem("mem_" + uuid.uuid4().hex[:16], content, source, now_ts(), metadata)
        encoded = json.dumps(metadata)

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO memory (id, content, source, created_at, metadata) "
                "VALUES (?, ?, ?, ?, ?)",
                (item.id, content, source, item.created_at, encoded),
            )

        await self._write(tx)
        return item

    async def search_memory(
        self, query: str, *, limit: int, source: str | None = None
    ) -> list[MemoryHit]:
        match = fts_query(query)
        if match is None:
            return []
        args: list[Any] = [match]
        if source is None:
            # Rank and cut inside the full-text index; read whole rows only for the winners.
            sql = (
                "SELECT memory.*, top.rank FROM (SELECT rowid, bm25(memory_fts) AS rank "
                "FROM memory_fts WHERE memory_fts MATCH ? ORDER BY rank LIMIT ?) AS top "
                "JOIN memory ON memory.rowid = top.rowid ORDER BY top.rank"
            )
        else:
            sql = (
                "SELECT memory.*, bm25(memory_fts) AS rank FROM memory_fts "
                "JOIN memory ON memory.rowid = memory_fts.rowid "
                "WHERE memory_fts MATCH ? AND memory.source = ? ORDER BY rank LIMIT ?"
            )
            args.append(source)
        args.append(limit)

        def q(conn: sqlite3.Connection) -> list[MemoryHit]:
            rows = conn.execute(sql, args).fetchall()
            return [MemoryHit(_memory(r), round(-r["rank"], 6)) for r in rows]

        return await self._read(q)

    async def delete_memory(self, memory_id: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM memory WHERE id = ?", (memory_id,)).rowcount == 1

        return await self._write(tx)

    # -- exec approvals ------------------------------------------------------------------------

    async def save_approval(self, record: ApprovalRecord) -> None:
        row = attrs.asdict(record)
        columns = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "id")

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO approvals ({columns}) VALUES ({marks}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}",
                row,
            )

        await self._write(tx)

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        def q(conn: sqlite3.Connection) -> ApprovalRecord | None:
            row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
            return ApprovalRecord(**dict(row)) if row else None

        return await self._read(q)

    async def expire_pending_approvals(self, resolved_at: str) -> list[ApprovalRecord]:
        def tx(conn: sqlite3.Connection) -> list[ApprovalRecord]:
            rows = conn.execute(
                "UPDATE approvals SET status = 'expired', decision = 'timeout', "
                "resolved_by = 'gateway restart', resolved_at = ? WHERE status = 'pending' "
                "RETURNING *",
                (resolved_at,),
            ).fetchall()
            return [ApprovalRecord(**dict(r)) for r in rows]

        return await self._write(tx)

    # -- cron ----------------------------------------------------------------------------------

    async def insert_cron_job(self, job: CronJob) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"INSERT INTO cron_jobs ({CRON_JOB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                _cron_job_values(job),
            )
            return cur.rowcount == 1

        return await self._write(tx)

    async def save_cron_job(
        self, job: CronJob, runs: Sequence[CronRun] = (), *, keep_runs: int
    ) -> bool:
        values = _cron_job_values(job)
        run_rows = [attrs.astuple(run) for run in runs]

        def tx(conn: sqlite3.Connection) -> bool:
            updated = conn.execute(
                "UPDATE cron_jobs SET name = ?, schedule = ?, timezone = ?, agent_id = ?, "
                "prompt = ?, session_key = ?, enabled = ?, misfire_policy = ?, "
                "overlap_policy = ?, created_at = ?, next_run_at = ?, last_run_at = ?, "
                "last_status = ?, model = ? WHERE job_id = ?",
                (*values[1:], job.job_id),
            ).rowcount
            if not updated:
                return False
            if run_rows:
                conn.executemany(
                    f"INSERT INTO cron_runs ({CRON_RUN_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cron_run_id) DO UPDATE SET "
                    "status = excluded.status, run_id = excluded.run_id, "
                    "started_at = excluded.started_at, finished_at = excluded.finished_at, "
                    "error = excluded.error",
                    run_rows,
                )
                conn.execute(
                    "DELETE FROM cron_runs WHERE job_id = ? AND id <= (SELECT id FROM cron_runs "
                    "WHERE job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (job.job_id, job.job_id, keep_runs),
                )
            return True

        return await self._write(tx)

    async def delete_cron_job(self, job_id: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM cron_jobs WHERE job_id = ?", (job_id,)).rowcount == 1

        return await self._write(tx)

    async def list_cron_jobs(self) -> list[CronJob]:
        def q(conn: sqlite3.Connection) -> list[CronJob]:
            rows = conn.execute(
                f"SELECT {CRON_JOB_COLUMNS} FROM cron_jobs ORDER BY created_at, job_id"
            ).fetchall()
            return [_cron_job(row) for row in rows]

        return await self._read(q)

    async def recent_cron_runs(self, job_id: str, *, limit: int) -> list[CronRun]:
        def q(conn: sqlite3.Connection) -> list[CronRun]:
            rows = conn.execute(
                f"SELECT {CRON_RUN_COLUMNS} FROM cron_runs WHERE job_id = ? "
                "ORDER BY id DESC LIMIT ?",
                (job_id, limit),
            ).fetchall()
            return [CronRun(*row) for row in rows]

        return await self._read(q)

    async def fail_unfinished_cron_runs(self, error: str) -> list[CronRun]:
        finished_at = now_ts()
        marks = ", ".join("?" for _ in UNFINISHED_CRON)

        def tx(conn: sqlite3.Connection) -> list[CronRun]:
            rows = conn.execute(
                "UPDATE cron_runs SET status = 'failed', error = ?, finished_at = ? "
                f"WHERE status IN ({marks}) RETURNING {CRON_RUN_COLUMNS}",
                (error, finished_at, *UNFINISHED_CRON),
            ).fetchall()
            conn.execute(
                f"UPDATE cron_jobs SET last_status = 'failed' WHERE last_status IN ({marks})",
                UNFINISHED_CRON,
            )
            return [CronRun(*row) for row in rows]

        return await self._write(tx)

    # -- idempotency ---------------------------------------------------------------------------

    async def claim_key(
        self, key: str, fingerprint: str, value: str, ttl_s: float
    ) -> tuple[str, str] | None:
        now = time.time()

        def tx(conn: sqlite3.Connection) -> tuple[str, str] | None:
            conn.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,))
            row = conn.execute(
                "SELECT fingerprint, value FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                return row[0], row[1]
            conn.execute(
                "INSERT INTO idempotency (key, fingerprint, value, expires_at) VALUES (?, ?, ?, ?)",
                (key, fingerprint, value, now + ttl_s),
            )
            return None

        return await self._write(tx)

    # -- lifecycle -----------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` (blocking; for tests and tools)."""
        return str(self._writer.execute("PRAGMA integrity_check").fetchone()[0])

    async def aclose(self) -> None:
        """Close the connections (the writer task must have stopped)."""
        self._closed = True
        for conn in [*self._readers, self._writer]:
            await trio.to_thread.run_sync(conn.close)


def _open(path: Path) -> SQLiteStore:
    try:
        writer = _connect(path, readonly=False)
        writer.row_factory = sqlite3.Row
        _migrate(writer)
        readers = []
        for _ in range(READERS):
            reader = _connect(path, readonly=True)
            reader.row_factory = sqlite3.Row
            readers.append(reader)
    except sqlite3.Error as exc:
        raise _translate(exc) from exc
    return SQLiteStore(path, writer, readers)


@contextlib.asynccontextmanager
async def open_sqlite_store(path: Path) -> AsyncIterator[SQLiteStore]:
    """Open (creating or migrating) the database at ``path``."""
    store = await trio.to_thread.run_sync(_open, path)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.serve_writer)
            yield store
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
