"""The SQL of sessions and their messages: reading, appending, clearing, deleting, compacting.

Plain synchronous functions over a ``sqlite3.Connection`` whose rows are ``sqlite3.Row``.
:class:`~aleph_trio.store.SQLiteStore` runs each one in its write transaction or on a reader
connection; none of them opens or ends a transaction, except that ``session_history`` begins the
read snapshot that the reader ends.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..kernel import now_ts
from ._interface import StoreError
from ._records import Message, Role, Session, SessionFilter

__all__ = [
    "NEWEST_FIRST",
    "append_message",
    "clear_session",
    "delete_session",
    "get_session",
    "history",
    "list_sessions",
    "recent_history",
    "replace_range",
    "session_history",
]

TITLE_LENGTH = 80


def _session(row: sqlite3.Row) -> Session:
    return Session(
        session_key=row["session_key"],
        agent_id=row["agent_id"],
        message_count=row["message_count"],
        token_count=row["token_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        title=row["title"],
        owner_id=row["owner_id"],
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


def history(
    conn: sqlite3.Connection, session_key: str, limit: int, before_id: int | None
) -> list[Message]:
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? AND id < ? "
        "ORDER BY id DESC LIMIT ?",
        (session_key, before_id if before_id is not None else 2**63 - 1, limit),
    ).fetchall()
    return [_message(r) for r in reversed(rows)]


#: ``recent_history`` adds up token counts over pages of this many of the newest messages.
PAGE = 256

NEWEST_FIRST = (
    "SELECT id, tokens FROM messages WHERE session_key = ? AND id < ? ORDER BY id DESC LIMIT ?"
)


def recent_history(conn: sqlite3.Connection, session_key: str, max_tokens: int) -> list[Message]:
    """The newest messages whose tokens add up to at most ``max_tokens``, oldest first; the
    newest message is always there, even when it alone is larger.

    Token counts come from the ``(session_key, id, tokens)`` index, newest first, a page at a
    time: SQLite adds up a whole page, and only the page where the budget ends is looked at
    row by row. Then only the messages that fit are read, in the same snapshot. The cost
    follows what fits, not the session's length.
    """
    conn.execute("BEGIN")  # one snapshot (SQLiteStore._read ends it)
    left = max_tokens
    first_id: int | None = None
    before = 2**63 - 1
    while True:
        count, total, oldest = conn.execute(
            f"SELECT count(*), sum(tokens), min(id) FROM ({NEWEST_FIRST})",
            (session_key, before, PAGE),
        ).fetchone()
        if count and total <= left:  # the whole page fits
            left -= total
            first_id = before = oldest
            if count == PAGE:
                continue
        elif count:  # the budget ends inside this page
            for message_id, tokens in conn.execute(NEWEST_FIRST, (session_key, before, PAGE)):
                if tokens > left and first_id is not None:
                    break
                left -= tokens
                first_id = message_id
        break
    return [] if first_id is None else _messages_from(conn, session_key, first_id)


def _messages_from(conn: sqlite3.Connection, session_key: str, first_id: int) -> list[Message]:
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? AND id >= ? ORDER BY id",
        (session_key, first_id),
    ).fetchall()
    return [_message(r) for r in rows]


def get_session(conn: sqlite3.Connection, session_key: str) -> Session | None:
    row = conn.execute("SELECT * FROM sessions WHERE session_key = ?", (session_key,)).fetchone()
    return _session(row) if row else None


def list_sessions(
    conn: sqlite3.Connection, flt: SessionFilter, *, limit: int, offset: int
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
    if flt.owner_id is not None:
        where.append("owner_id = ?")
        args.append(flt.owner_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""

    total = conn.execute(f"SELECT count(*) FROM sessions {clause}", args).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM sessions {clause} ORDER BY activity DESC LIMIT ? OFFSET ?",
        [*args, limit, offset],
    ).fetchall()
    return [_session(r) for r in rows], total


def append_message(
    conn: sqlite3.Connection,
    session_key: str,
    agent_id: str,
    role: Role,
    content: str,
    *,
    tokens: int,
    run_id: str | None,
    tool_calls: list[dict[str, Any]] | None,
    tool_calls_json: str | None,
    tool_call_id: str | None,
    created_at: str,
    owner_id: str | None = None,
) -> tuple[Message, bool]:
    """Insert the message (and its session on first use, created by ``owner_id``);
    ``tool_calls_json`` encodes ``tool_calls``."""
    title = content[:TITLE_LENGTH] if role == "user" else None
    cur = conn.execute(
        "INSERT INTO sessions (session_key, agent_id, created_at, updated_at, owner_id) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_key) DO NOTHING",
        (session_key, agent_id, created_at, created_at, owner_id),
    )
    created = cur.rowcount == 1
    if not created and owner_id is not None:
        # A guest writes only into its own sessions, even one another principal created
        # between the guest's check and this write.
        (owner,) = conn.execute(
            "SELECT owner_id FROM sessions WHERE session_key = ?", (session_key,)
        ).fetchone()
        if owner != owner_id:
            raise StoreError(f"session {session_key} belongs to another principal")
    message_id = conn.execute(
        "INSERT INTO messages (session_key, role, content, created_at, tokens, run_id, "
        "tool_calls, tool_call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (session_key, role, content, created_at, tokens, run_id, tool_calls_json, tool_call_id),
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


def session_history(
    conn: sqlite3.Connection, session_key: str, limit: int, before_id: int | None
) -> tuple[Session | None, list[Message]]:
    conn.execute("BEGIN")  # one snapshot: the counts match the messages (SQLiteStore._read ends it)
    row = conn.execute("SELECT * FROM sessions WHERE session_key = ?", (session_key,)).fetchone()
    if row is None:
        return None, []
    return _session(row), history(conn, session_key, limit, before_id)


def clear_session(conn: sqlite3.Connection, session_key: str) -> int:
    removed = conn.execute("DELETE FROM messages WHERE session_key = ?", (session_key,)).rowcount
    conn.execute(
        "UPDATE sessions SET message_count = 0, token_count = 0, title = NULL, "
        "updated_at = ? WHERE session_key = ?",
        (now_ts(), session_key),
    )
    return removed


def delete_session(conn: sqlite3.Connection, session_key: str) -> int | None:
    row = conn.execute(
        "SELECT message_count FROM sessions WHERE session_key = ?", (session_key,)
    ).fetchone()
    if row is None:
        return None
    removed = conn.execute("DELETE FROM messages WHERE session_key = ?", (session_key,)).rowcount
    conn.execute("DELETE FROM sessions WHERE session_key = ?", (session_key,))
    return removed


def replace_range(
    conn: sqlite3.Connection,
    session_key: str,
    *,
    upto_id: int,
    summary: str,
    summary_tokens: int,
    created_at: str,
) -> tuple[int, int]:
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
    conn.execute("DELETE FROM messages WHERE session_key = ? AND id <= ?", (session_key, upto_id))
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
