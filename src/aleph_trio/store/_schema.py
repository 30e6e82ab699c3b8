"""The SQLite schema, as an ordered list of migrations. Never edit one that has shipped: append.

:func:`migrate` applies, one transaction each, the migrations a database has not had yet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ._interface import StoreError

__all__ = ["MIGRATIONS", "migrate"]

MIGRATIONS: list[str] = [
    # 1: sessions, messages, runs, memory with full-text search, idempotency keys
    """
    CREATE TABLE sessions (
        session_key   TEXT PRIMARY KEY,
        agent_id      TEXT NOT NULL,
        title         TEXT,
        message_count INTEGER NOT NULL DEFAULT 0,
        token_count   INTEGER NOT NULL DEFAULT 0,
        activity      INTEGER NOT NULL DEFAULT 0,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE INDEX sessions_by_activity ON sessions (activity DESC);

    CREATE TABLE messages (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        session_key  TEXT NOT NULL REFERENCES sessions (session_key) ON DELETE CASCADE,
        role         TEXT NOT NULL,
        content      TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        tokens       INTEGER NOT NULL,
        run_id       TEXT,
        tool_calls   TEXT,
        tool_call_id TEXT
    );
    CREATE INDEX messages_by_session ON messages (session_key, id);

    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        session_key TEXT NOT NULL,
        agent_id    TEXT NOT NULL,
        model       TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        started_at  TEXT,
        finished_at TEXT,
        iterations  INTEGER NOT NULL DEFAULT 0,
        tokens_used INTEGER NOT NULL DEFAULT 0,
        error       TEXT,
        output      TEXT
    );
    CREATE INDEX runs_by_status ON runs (status);
    CREATE INDEX runs_by_session ON runs (session_key);

    CREATE TABLE memory (
        rowid      INTEGER PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        content    TEXT NOT NULL,
        source     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        metadata   TEXT NOT NULL
    );
    CREATE INDEX memory_by_source ON memory (source);
    CREATE VIRTUAL TABLE memory_fts USING fts5 (
        content, content = 'memory', content_rowid = 'rowid',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER memory_ai AFTER INSERT ON memory BEGIN
        INSERT INTO memory_fts (rowid, content) VALUES (new.rowid, new.content);
    END;
    CREATE TRIGGER memory_ad AFTER DELETE ON memory BEGIN
        INSERT INTO memory_fts (memory_fts, rowid, content)
        VALUES ('delete', old.rowid, old.content);
    END;

    CREATE TABLE idempotency (
        key         TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        value       TEXT NOT NULL,
        expires_at  REAL NOT NULL
    );
    """,
    # 2: who started a run (guests see only their own) and the JSON-RPC code of its error
    """
    ALTER TABLE runs ADD COLUMN principal_id TEXT;
    ALTER TABLE runs ADD COLUMN error_code INTEGER;
    """,
    # 3: exec approvals, kept so that a restart shows the ones left pending as expired
    """
    CREATE TABLE approvals (
        id           TEXT PRIMARY KEY,
        command      TEXT NOT NULL,
        cwd          TEXT NOT NULL,
        agent_id     TEXT NOT NULL,
        run_id       TEXT,
        status       TEXT NOT NULL,
        decision     TEXT,
        resolved_by  TEXT,
        requested_at TEXT NOT NULL,
        expires_at   TEXT NOT NULL,
        resolved_at  TEXT
    );
    CREATE INDEX approvals_by_status ON approvals (status);
    """,
    # 4: cron jobs and the history of their fire times (newest first by id, never by clock)
    """
    CREATE TABLE cron_jobs (
        job_id         TEXT PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        schedule       TEXT NOT NULL,
        timezone       TEXT NOT NULL,
        agent_id       TEXT NOT NULL,
        prompt         TEXT NOT NULL,
        session_key    TEXT NOT NULL,
        model          TEXT,
        enabled        INTEGER NOT NULL,
        misfire_policy TEXT NOT NULL,
        overlap_policy TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        next_run_at    TEXT,
        last_run_at    TEXT,
        last_status    TEXT
    );

    CREATE TABLE cron_runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        cron_run_id   TEXT NOT NULL UNIQUE,
        job_id        TEXT NOT NULL REFERENCES cron_jobs (job_id) ON DELETE CASCADE,
        trigger_kind  TEXT NOT NULL,
        status        TEXT NOT NULL,
        scheduled_for TEXT,
        run_id        TEXT,
        started_at    TEXT,
        finished_at   TEXT,
        error         TEXT
    );
    CREATE INDEX cron_runs_by_job ON cron_runs (job_id, id);
    CREATE INDEX cron_runs_by_status ON cron_runs (status);
    """,
    # 5: a session's messages with their token counts, newest first from the index alone, so a
    # prompt finds how many of the newest messages fit without reading the messages themselves;
    # expired idempotency keys found without scanning every key at each claim
    """
    CREATE INDEX messages_by_session_tokens ON messages (session_key, id, tokens);
    DROP INDEX messages_by_session;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
    """,
    # 6: identities (the shipped default is stored only once changed) and which one is active
    """
    CREATE TABLE identities (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        description TEXT NOT NULL,
        persona     TEXT NOT NULL,
        language    TEXT,
        tone        TEXT
    );

    CREATE TABLE active_identity (
        slot        INTEGER PRIMARY KEY CHECK (slot = 1),
        identity_id TEXT NOT NULL
    );
    """,
    # 7: workspaces (a directory and the overrides runs in it use), and the workspace of a run
    """
    CREATE TABLE workspaces (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        workspace_id TEXT NOT NULL UNIQUE,
        name         TEXT NOT NULL UNIQUE,
        path         TEXT NOT NULL,
        description  TEXT NOT NULL,
        status       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        agent_id     TEXT,
        model        TEXT,
        tools        TEXT
    );
    ALTER TABLE runs ADD COLUMN workspace_id TEXT;
    """,
]


def migrate(conn: sqlite3.Connection) -> None:
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
