"""The SQL of cron jobs and their runs (each job keeps its latest runs only).

Plain synchronous functions over a ``sqlite3.Connection``; :class:`~aleph_trio.store.SQLiteStore`
runs each one in its write transaction or on a reader connection. Rows are read and written by
column position, in the field order of :class:`CronJob` and :class:`CronRun`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import attrs

from ._records import CronJob, CronRun

__all__ = [
    "delete_cron_job",
    "fail_unfinished_cron_runs",
    "insert_cron_job",
    "list_cron_jobs",
    "recent_cron_runs",
    "save_cron_job",
]

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


def insert_cron_job(conn: sqlite3.Connection, job: CronJob) -> bool:
    cur = conn.execute(
        f"INSERT INTO cron_jobs ({CRON_JOB_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING",
        _cron_job_values(job),
    )
    return cur.rowcount == 1


def save_cron_job(
    conn: sqlite3.Connection, job: CronJob, runs: Sequence[CronRun], *, keep_runs: int
) -> bool:
    values = _cron_job_values(job)
    run_rows = [attrs.astuple(run) for run in runs]
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


def delete_cron_job(conn: sqlite3.Connection, job_id: str) -> bool:
    return conn.execute("DELETE FROM cron_jobs WHERE job_id = ?", (job_id,)).rowcount == 1


def list_cron_jobs(conn: sqlite3.Connection) -> list[CronJob]:
    rows = conn.execute(
        f"SELECT {CRON_JOB_COLUMNS} FROM cron_jobs ORDER BY created_at, job_id"
    ).fetchall()
    return [_cron_job(row) for row in rows]


def recent_cron_runs(conn: sqlite3.Connection, job_id: str, *, limit: int) -> list[CronRun]:
    rows = conn.execute(
        f"SELECT {CRON_RUN_COLUMNS} FROM cron_runs WHERE job_id = ? ORDER BY id DESC LIMIT ?",
        (job_id, limit),
    ).fetchall()
    return [CronRun(*row) for row in rows]


def fail_unfinished_cron_runs(
    conn: sqlite3.Connection, error: str, finished_at: str, statuses: tuple[str, ...]
) -> list[CronRun]:
    marks = ", ".join("?" for _ in statuses)
    rows = conn.execute(
        "UPDATE cron_runs SET status = 'failed', error = ?, finished_at = ? "
        f"WHERE status IN ({marks}) RETURNING {CRON_RUN_COLUMNS}",
        (error, finished_at, *statuses),
    ).fetchall()
    conn.execute(
        f"UPDATE cron_jobs SET last_status = 'failed' WHERE last_status IN ({marks})",
        statuses,
    )
    return [CronRun(*row) for row in rows]
