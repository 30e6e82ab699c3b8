"""The SQL of identities and of which one is active (one row in ``active_identity``).

Plain synchronous functions over a ``sqlite3.Connection``; :class:`~aleph_trio.store.SQLiteStore`
runs each one in its write transaction or on a reader connection. Rows are read and written by
column position, in the field order of :class:`Identity`.
"""

from __future__ import annotations

import sqlite3

import attrs

from ._records import Identity

__all__ = [
    "active_identity_id",
    "get_identity",
    "list_identities",
    "reset_identity",
    "save_identity",
]

#: The columns of ``identities`` in :class:`Identity` field order.
IDENTITY_COLUMNS = "id, name, description, persona, language, tone"


def get_identity(conn: sqlite3.Connection, identity_id: str) -> Identity | None:
    row = conn.execute(
        f"SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = ?", (identity_id,)
    ).fetchone()
    return Identity(*row) if row else None


def list_identities(conn: sqlite3.Connection) -> list[Identity]:
    rows = conn.execute(f"SELECT {IDENTITY_COLUMNS} FROM identities ORDER BY id").fetchall()
    return [Identity(*row) for row in rows]


def active_identity_id(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT identity_id FROM active_identity").fetchone()
    return str(row[0]) if row else None


def save_identity(conn: sqlite3.Connection, identity: Identity, *, activate: bool) -> None:
    """Insert or replace ``identity``; make it the active one when ``activate``."""
    conn.execute(
        f"INSERT OR REPLACE INTO identities ({IDENTITY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        attrs.astuple(identity),
    )
    if activate:
        conn.execute(
            "INSERT OR REPLACE INTO active_identity (slot, identity_id) VALUES (1, ?)",
            (identity.id,),
        )


def reset_identity(conn: sqlite3.Connection, identity_id: str) -> None:
    """Forget the stored fields of ``identity_id`` and that any identity was chosen."""
    conn.execute("DELETE FROM identities WHERE id = ?", (identity_id,))
    conn.execute("DELETE FROM active_identity")
