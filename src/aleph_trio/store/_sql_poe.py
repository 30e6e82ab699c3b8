"""The SQL of POE contracts and runs (PROTOCOL §16).

Plain synchronous functions over a ``sqlite3.Connection``; :class:`~aleph_trio.store.SQLiteStore`
runs each one in its write transaction or on a reader connection. The structured parts (a
contract's terms, a run's spec and attempts) are stored as JSON text.
"""

from __future__ import annotations

import json
import sqlite3

from ._records import PoeContract, PoeRun

__all__ = [
    "fail_unfinished_poe_runs",
    "get_poe_contract",
    "get_poe_run",
    "list_poe_contracts",
    "list_poe_runs",
    "save_poe_contract",
    "save_poe_run",
]

CONTRACT_COLUMNS = "contract_id, status, terms, created_at, decided_at, run_id, principal_id"
RUN_COLUMNS = (
    "run_id, status, spec, agent_id, session_key, created_at, attempt, phase, last_score, "
    "tokens_used, attempts, finished_at, error, contract_id, principal_id"
)


def _contract(row: sqlite3.Row) -> PoeContract:
    values = list(row)
    values[2] = json.loads(values[2])
    return PoeContract(*values)


def _run(row: sqlite3.Row) -> PoeRun:
    values = list(row)
    values[2] = json.loads(values[2])
    values[10] = json.loads(values[10])
    return PoeRun(*values)


def save_poe_contract(conn: sqlite3.Connection, contract: PoeContract) -> None:
    conn.execute(
        f"INSERT INTO poe_contracts ({CONTRACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (contract_id) DO UPDATE SET status = excluded.status, "
        "terms = excluded.terms, decided_at = excluded.decided_at, run_id = excluded.run_id",
        (
            contract.contract_id,
            contract.status,
            json.dumps(contract.terms),
            contract.created_at,
            contract.decided_at,
            contract.run_id,
            contract.principal_id,
        ),
    )


def get_poe_contract(conn: sqlite3.Connection, contract_id: str) -> PoeContract | None:
    row = conn.execute(
        f"SELECT {CONTRACT_COLUMNS} FROM poe_contracts WHERE contract_id = ?", (contract_id,)
    ).fetchone()
    return None if row is None else _contract(row)


def list_poe_contracts(conn: sqlite3.Connection, status: str) -> list[PoeContract]:
    rows = conn.execute(
        f"SELECT {CONTRACT_COLUMNS} FROM poe_contracts WHERE status = ? "
        "ORDER BY created_at, contract_id",
        (status,),
    ).fetchall()
    return [_contract(row) for row in rows]


def save_poe_run(conn: sqlite3.Connection, run: PoeRun) -> None:
    conn.execute(
        f"INSERT INTO poe_runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 15)}) "
        "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, "
        "attempt = excluded.attempt, phase = excluded.phase, last_score = excluded.last_score, "
        "tokens_used = excluded.tokens_used, attempts = excluded.attempts, "
        "finished_at = excluded.finished_at, error = excluded.error",
        (
            run.run_id,
            run.status,
            json.dumps(run.spec),
            run.agent_id,
            run.session_key,
            run.created_at,
            run.attempt,
            run.phase,
            run.last_score,
            run.tokens_used,
            json.dumps(run.attempts),
            run.finished_at,
            run.error,
            run.contract_id,
            run.principal_id,
        ),
    )


def get_poe_run(conn: sqlite3.Connection, run_id: str) -> PoeRun | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM poe_runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def list_poe_runs(conn: sqlite3.Connection, *, limit: int) -> list[PoeRun]:
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM poe_runs ORDER BY seq DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_run(row) for row in rows]


def fail_unfinished_poe_runs(
    conn: sqlite3.Connection, error: str, finished_at: str, statuses: tuple[str, ...]
) -> list[PoeRun]:
    marks = ", ".join("?" for _ in statuses)
    rows = conn.execute(
        "UPDATE poe_runs SET status = 'failed', error = ?, finished_at = ? "
        f"WHERE status IN ({marks}) RETURNING {RUN_COLUMNS}",
        (error, finished_at, *statuses),
    ).fetchall()
    return [_run(row) for row in rows]
