"""The SQL of agent runs, idempotency claims and exec approvals.

Plain synchronous functions over a ``sqlite3.Connection`` whose rows are ``sqlite3.Row``;
:class:`~aleph_trio.store.SQLiteStore` runs each one in its write transaction or on a reader
connection.
"""

from __future__ import annotations

import sqlite3

import attrs

from ._records import ApprovalRecord, Run

__all__ = [
    "claim_key",
    "expire_pending_approvals",
    "fail_unfinished_runs",
    "get_approval",
    "get_run",
    "save_approval",
    "save_run",
]

# -- runs --------------------------------------------------------------------------------------


def save_run(conn: sqlite3.Connection, run: Run) -> None:
    conn.execute(
        "INSERT INTO runs (run_id, session_key, agent_id, model, status, created_at, "
        "started_at, finished_at, iterations, tokens_used, error, output, principal_id, "
        "error_code, workspace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
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
            run.workspace_id,
        ),
    )


def get_run(conn: sqlite3.Connection, run_id: str) -> Run | None:
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return Run(**dict(row)) if row else None


def fail_unfinished_runs(
    conn: sqlite3.Connection, error: str, finished_at: str, statuses: tuple[str, ...]
) -> list[Run]:
    marks = ", ".join("?" for _ in statuses)
    rows = conn.execute(
        "UPDATE runs SET status = 'failed', error = ?, error_code = -32603, "
        f"finished_at = ? WHERE status IN ({marks}) RETURNING *",
        (error, finished_at, *statuses),
    ).fetchall()
    return [Run(**dict(r)) for r in rows]


# -- idempotency -------------------------------------------------------------------------------


def claim_key(
    conn: sqlite3.Connection, key: str, fingerprint: str, value: str, ttl_s: float, now: float
) -> tuple[str, str] | None:
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


# -- exec approvals ----------------------------------------------------------------------------


def save_approval(conn: sqlite3.Connection, record: ApprovalRecord) -> None:
    row = attrs.asdict(record)
    columns = ", ".join(row)
    marks = ", ".join(f":{name}" for name in row)
    updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "id")
    conn.execute(
        f"INSERT INTO approvals ({columns}) VALUES ({marks}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        row,
    )


def get_approval(conn: sqlite3.Connection, approval_id: str) -> ApprovalRecord | None:
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return ApprovalRecord(**dict(row)) if row else None


def expire_pending_approvals(conn: sqlite3.Connection, resolved_at: str) -> list[ApprovalRecord]:
    rows = conn.execute(
        "UPDATE approvals SET status = 'expired', decision = 'timeout', "
        "resolved_by = 'gateway restart', resolved_at = ? WHERE status = 'pending' "
        "RETURNING *",
        (resolved_at,),
    ).fetchall()
    return [ApprovalRecord(**dict(r)) for r in rows]
