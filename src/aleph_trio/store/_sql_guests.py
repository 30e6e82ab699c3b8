"""The SQL of guest invitations. The token itself is never stored, only the hash of its secret.

Plain synchronous functions over a ``sqlite3.Connection``; :class:`~aleph_trio.store.SQLiteStore`
runs each one in its write transaction or on a reader connection.
"""

from __future__ import annotations

import json
import sqlite3

from ._records import Invitation

__all__ = ["insert_invitation", "list_invitations", "mark_used", "revoke"]

#: The columns of ``invitations`` in :class:`Invitation` field order.
INVITATION_COLUMNS = (
    "invitation_id, name, permissions, token_hash, created_at, expires_at, used, revoked"
)


def insert_invitation(conn: sqlite3.Connection, invitation: Invitation) -> None:
    conn.execute(
        f"INSERT INTO invitations ({INVITATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            invitation.invitation_id,
            invitation.name,
            json.dumps(list(invitation.permissions)),
            invitation.token_hash,
            invitation.created_at,
            invitation.expires_at,
            int(invitation.used),
            int(invitation.revoked),
        ),
    )


def list_invitations(conn: sqlite3.Connection) -> list[Invitation]:
    rows = conn.execute(
        f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE revoked = 0 ORDER BY rowid"
    ).fetchall()
    return [
        Invitation(
            invitation_id,
            name,
            tuple(json.loads(permissions)),
            bytes(token_hash),
            created_at,
            expires_at,
            bool(used),
            bool(revoked),
        )
        for invitation_id, name, permissions, token_hash, created_at, expires_at, used, revoked in (
            tuple(row) for row in rows
        )
    ]


def mark_used(conn: sqlite3.Connection, invitation_id: str) -> None:
    conn.execute("UPDATE invitations SET used = 1 WHERE invitation_id = ?", (invitation_id,))


def revoke(conn: sqlite3.Connection, invitation_id: str) -> bool:
    cur = conn.execute(
        "UPDATE invitations SET revoked = 1 WHERE invitation_id = ? AND revoked = 0",
        (invitation_id,),
    )
    return cur.rowcount == 1
