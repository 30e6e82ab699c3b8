"""The SQLite store: one database file in WAL mode, one writer, a few readers, all off-thread.

- Every write is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) run by the single writer
  connection, one at a time, so transactions never interleave. With WAL and
  ``synchronous=NORMAL`` a committed transaction survives the process being killed at any moment.
- Reads use a small pool of read-only connections in worker threads and never wait for the
  writer (WAL readers see the last committed state).
- A query whose task is cancelled is interrupted (``Connection.interrupt()``) and waited for, so
  nothing keeps running on a connection that is handed to the next caller.

This module holds that machinery and the :class:`SQLiteStore` methods, each a thin wrapper that
hands one function of a ``_sql_*`` module (sessions, runs, memory, cron, identities,
workspaces) to the writer or to a reader. Opening connections and running work on them is in
``_sqlite_connections``; the schema and its migrations are in ``_schema``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, final

import attrs
import outcome
import trio

from ..kernel import now_ts, private_file
from . import (
    _sql_cron as sql_cron,
    _sql_identities as sql_identities,
    _sql_memory as sql_memory,
    _sql_runs as sql_runs,
    _sql_sessions as sql_sessions,
    _sql_workspaces as sql_workspaces,
)
from ._interface import StoreError
from ._records import (
    ApprovalRecord,
    CronJob,
    CronRun,
    Identity,
    MemoryHit,
    MemoryItem,
    Message,
    Role,
    Run,
    Session,
    SessionFilter,
    Workspace,
)
from ._schema import migrate
from ._sqlite_connections import connect, in_thread, translate

__all__ = ["SQLiteStore", "open_sqlite_store"]

T = TypeVar("T")
#: Read-only connections (threads). More only trade the GIL back and forth.
READERS = 2
#: At most this many queued changes share one transaction.
MAX_BATCH = 256


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
            raise translate(exc) from exc

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
                await in_thread(self._writer, partial(_run_batch, batch))
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
                return await in_thread(conn, read)
            finally:
                self._readers.append(conn)

    # -- sessions and messages -----------------------------------------------------------------

    async def get_session(self, session_key: str) -> Session | None:
        return await self._read(partial(sql_sessions.get_session, session_key=session_key))

    async def list_sessions(
        self, flt: SessionFilter, *, limit: int, offset: int
    ) -> tuple[list[Session], int]:
        return await self._read(
            partial(sql_sessions.list_sessions, flt=flt, limit=limit, offset=offset)
        )

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
        return await self._write(
            partial(
                sql_sessions.append_message,
                session_key=session_key,
                agent_id=agent_id,
                role=role,
                content=content,
                tokens=tokens,
                run_id=run_id,
                tool_calls=tool_calls,
                tool_calls_json=calls,
                tool_call_id=tool_call_id,
                created_at=created_at,
            )
        )

    async def recent_history(self, session_key: str, *, max_tokens: int) -> list[Message]:
        return await self._read(
            partial(sql_sessions.recent_history, session_key=session_key, max_tokens=max_tokens)
        )

    async def session_history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> tuple[Session | None, list[Message]]:
        return await self._read(
            partial(
                sql_sessions.session_history,
                session_key=session_key,
                limit=limit,
                before_id=before_id,
            )
        )

    async def clear_session(self, session_key: str) -> int:
        return await self._write(partial(sql_sessions.clear_session, session_key=session_key))

    async def delete_session(self, session_key: str) -> int | None:
        return await self._write(partial(sql_sessions.delete_session, session_key=session_key))

    async def replace_range(
        self, session_key: str, *, upto_id: int, summary: str, summary_tokens: int
    ) -> tuple[int, int]:
        return await self._write(
            partial(
                sql_sessions.replace_range,
                session_key=session_key,
                upto_id=upto_id,
                summary=summary,
                summary_tokens=summary_tokens,
                created_at=now_ts(),
            )
        )

    # -- runs ----------------------------------------------------------------------------------

    async def save_run(self, run: Run) -> None:
        await self._write(partial(sql_runs.save_run, run=run))

    async def get_run(self, run_id: str) -> Run | None:
        return await self._read(partial(sql_runs.get_run, run_id=run_id))

    async def fail_unfinished_runs(self, error: str, statuses: Collection[str]) -> list[Run]:
        return await self._write(
            partial(
                sql_runs.fail_unfinished_runs,
                error=error,
                finished_at=now_ts(),
                statuses=tuple(sorted(statuses)),
            )
        )

    # -- memory --------------------------------------------------------------------------------

    async def store_memory(
        self, content: str, *, source: str, metadata: dict[str, Any]
    ) -> MemoryItem:
        item = MemoryItem("mem_" + uuid.uuid4().hex[:16], content, source, now_ts(), metadata)
        encoded = json.dumps(metadata)
        await self._write(partial(sql_memory.store_memory, item=item, metadata_json=encoded))
        return item

    async def search_memory(
        self, query: str, *, limit: int, source: str | None = None
    ) -> list[MemoryHit]:
        match = sql_memory.fts_query(query)
        if match is None:
            return []
        return await self._read(
            partial(sql_memory.search_memory, match=match, limit=limit, source=source)
        )

    async def delete_memory(self, memory_id: str) -> bool:
        return await self._write(partial(sql_memory.delete_memory, memory_id=memory_id))

    # -- exec approvals ------------------------------------------------------------------------

    async def save_approval(self, record: ApprovalRecord) -> None:
        await self._write(partial(sql_runs.save_approval, record=record))

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        return await self._read(partial(sql_runs.get_approval, approval_id=approval_id))

    async def expire_pending_approvals(self, resolved_at: str) -> list[ApprovalRecord]:
        return await self._write(
            partial(sql_runs.expire_pending_approvals, resolved_at=resolved_at)
        )

    # -- cron ----------------------------------------------------------------------------------

    async def insert_cron_job(self, job: CronJob) -> bool:
        return await self._write(partial(sql_cron.insert_cron_job, job=job))

    async def save_cron_job(
        self, job: CronJob, runs: Sequence[CronRun] = (), *, keep_runs: int
    ) -> bool:
        # The caller's sequence is read now; the change may run later.
        return await self._write(
            partial(sql_cron.save_cron_job, job=job, runs=tuple(runs), keep_runs=keep_runs)
        )

    async def delete_cron_job(self, job_id: str) -> bool:
        return await self._write(partial(sql_cron.delete_cron_job, job_id=job_id))

    async def list_cron_jobs(self) -> list[CronJob]:
        return await self._read(sql_cron.list_cron_jobs)

    async def recent_cron_runs(self, job_id: str, *, limit: int) -> list[CronRun]:
        return await self._read(partial(sql_cron.recent_cron_runs, job_id=job_id, limit=limit))

    async def fail_unfinished_cron_runs(
        self, error: str, statuses: Collection[str]
    ) -> list[CronRun]:
        return await self._write(
            partial(
                sql_cron.fail_unfinished_cron_runs,
                error=error,
                finished_at=now_ts(),
                statuses=tuple(sorted(statuses)),
            )
        )

    # -- identities ----------------------------------------------------------------------------

    async def get_identity(self, identity_id: str) -> Identity | None:
        return await self._read(partial(sql_identities.get_identity, identity_id=identity_id))

    async def list_identities(self) -> list[Identity]:
        return await self._read(sql_identities.list_identities)

    async def active_identity_id(self) -> str | None:
        return await self._read(sql_identities.active_identity_id)

    async def save_identity(self, identity: Identity, *, activate: bool) -> None:
        await self._write(
            partial(sql_identities.save_identity, identity=identity, activate=activate)
        )

    async def reset_identity(self, identity_id: str) -> None:
        await self._write(partial(sql_identities.reset_identity, identity_id=identity_id))

    # -- workspaces ----------------------------------------------------------------------------

    async def insert_workspace(self, workspace: Workspace) -> bool:
        return await self._write(partial(sql_workspaces.insert_workspace, workspace=workspace))

    async def save_workspace(self, workspace: Workspace) -> bool:
        return await self._write(partial(sql_workspaces.save_workspace, workspace=workspace))

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        return await self._read(partial(sql_workspaces.get_workspace, workspace_id=workspace_id))

    async def list_workspaces(self, *, include_archived: bool) -> list[Workspace]:
        return await self._read(
            partial(sql_workspaces.list_workspaces, include_archived=include_archived)
        )

    # -- idempotency ---------------------------------------------------------------------------

    async def claim_key(
        self, key: str, fingerprint: str, value: str, ttl_s: float
    ) -> tuple[str, str] | None:
        return await self._write(
            partial(
                sql_runs.claim_key,
                key=key,
                fingerprint=fingerprint,
                value=value,
                ttl_s=ttl_s,
                now=time.time(),
            )
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` (blocking; for tests and tools)."""
        return str(self._writer.execute("PRAGMA integrity_check").fetchone()[0])

    async def aclose(self) -> None:
        """Close the connections (the writer task must have stopped)."""
        self._closed = True
        for conn in [*self._readers, self._writer]:
            await trio.to_thread.run_sync(conn.close)


def _private(path: Path) -> None:
    """The database and its WAL files are the owner's alone, like the token. SQLite gives the
    -wal and -shm files it creates the database file's mode; older ones are fixed here."""
    private_file(path)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def _open(path: Path) -> SQLiteStore:
    _private(path)
    try:
        writer = connect(path, readonly=False)
        writer.row_factory = sqlite3.Row
        migrate(writer)
        readers = []
        for _ in range(READERS):
            reader = connect(path, readonly=True)
            reader.row_factory = sqlite3.Row
            readers.append(reader)
    except sqlite3.Error as exc:
        raise translate(exc) from exc
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
