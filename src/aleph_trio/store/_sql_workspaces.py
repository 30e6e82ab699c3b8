"""The SQL of workspaces.

Plain synchronous functions over a ``sqlite3.Connection``; :class:`~aleph_trio.store.SQLiteStore`
runs each one in its write transaction or on a reader connection. Rows are read and written by
column position, in the field order of :class:`Workspace`; ``tools`` is stored as a JSON array.
Workspaces are listed in the order they were created (by insertion, never by clock).
"""

from __future__ import annotations

import json
import sqlite3

from ._records import Workspace

__all__ = ["get_workspace", "insert_workspace", "list_workspaces", "save_workspace"]

#: The columns of ``workspaces`` in :class:`Workspace` field order.
WORKSPACE_COLUMNS = (
    "workspace_id, name, path, description, status, created_at, updated_at, agent_id, model, tools"
)


def _workspace(row: sqlite3.Row) -> Workspace:
    values = list(row)
    tools = values[9]
    values[9] = tuple(json.loads(tools)) if tools is not None else None
    return Workspace(*values)


def _values(workspace: Workspace) -> tuple[object, ...]:
    tools = json.dumps(list(workspace.tools)) if workspace.tools is not None else None
    return (
        workspace.workspace_id,
        workspace.name,
        workspace.path,
        workspace.description,
        workspace.status,
        workspace.created_at,
        workspace.updated_at,
        workspace.agent_id,
        workspace.model,
        tools,
    )


def insert_workspace(conn: sqlite3.Connection, workspace: Workspace) -> bool:
    """Store a new workspace; ``False`` (nothing stored) when another one has its name."""
    cur = conn.execute(
        f"INSERT INTO workspaces ({WORKSPACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING",
        _values(workspace),
    )
    return cur.rowcount == 1


def save_workspace(conn: sqlite3.Connection, workspace: Workspace) -> bool:
    """Update a stored workspace; ``False`` when there is none with its id."""
    _, *values = _values(workspace)
    cur = conn.execute(
        "UPDATE workspaces SET name = ?, path = ?, description = ?, status = ?, created_at = ?, "
        "updated_at = ?, agent_id = ?, model = ?, tools = ? WHERE workspace_id = ?",
        (*values, workspace.workspace_id),
    )
    return cur.rowcount == 1


def get_workspace(conn: sqlite3.Connection, workspace_id: str) -> Workspace | None:
    row = conn.execute(
        f"SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE workspace_id = ?", (workspace_id,)
    ).fetchone()
    return _workspace(row) if row else None


def list_workspaces(conn: sqlite3.Connection, include_archived: bool) -> list[Workspace]:
    where = "" if include_archived else "WHERE status = 'active' "
    rows = conn.execute(f"SELECT {WORKSPACE_COLUMNS} FROM workspaces {where}ORDER BY id").fetchall()
    return [_workspace(row) for row in rows]
