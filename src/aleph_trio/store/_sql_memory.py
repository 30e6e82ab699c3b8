"""The SQL of long-term memory: storing, deleting and full-text search (FTS5, BM25 ranking).

Plain synchronous functions over a ``sqlite3.Connection`` whose rows are ``sqlite3.Row``;
:class:`~aleph_trio.store.SQLiteStore` runs each one in its write transaction or on a reader
connection. :func:`fts_query` turns user text into a query FTS5 can never reject.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from ._records import MemoryHit, MemoryItem

__all__ = ["delete_memory", "fts_query", "search_memory", "store_memory"]

_WORD = re.compile(r"\w+", re.UNICODE)


def _memory(row: sqlite3.Row) -> MemoryItem:
    return MemoryItem(
        id=row["id"],
        content=row["content"],
        source=row["source"],
        created_at=row["created_at"],
        metadata=json.loads(row["metadata"]),
    )


def fts_query(text: str) -> str | None:
    """User text as a safe FTS5 query: each word quoted, any word may match (BM25 ranks)."""
    words = _WORD.findall(text)
    if not words:
        return None
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words[:64])


def store_memory(conn: sqlite3.Connection, item: MemoryItem, metadata_json: str) -> None:
    """Insert ``item``; ``metadata_json`` encodes its metadata."""
    conn.execute(
        "INSERT INTO memory (id, content, source, created_at, metadata) VALUES (?, ?, ?, ?, ?)",
        (item.id, item.content, item.source, item.created_at, metadata_json),
    )


def search_memory(
    conn: sqlite3.Connection, match: str, *, limit: int, source: str | None
) -> list[MemoryHit]:
    """The best hits for ``match``, a query made by :func:`fts_query`."""
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

    rows = conn.execute(sql, args).fetchall()
    return [MemoryHit(_memory(r), score) for r, score in zip(rows, _scores(rows), strict=True)]


def _scores(rows: list[sqlite3.Row]) -> list[float]:
    """Relevance from 0 to 1, higher is better: each hit's BM25 weight relative to the best
    hit of the same search (which scores 1.0); every hit scores at least 0.001, since it did
    match. Raw BM25 weights depend on the size of the whole store (in a small one they are
    millionths), so they mean little to a person."""
    weights = [max(0.0, -row["rank"]) for row in rows]
    best = max(weights, default=0.0)
    if best <= 0.0:
        return [1.0] * len(rows)  # equally (un)distinguished: all as good as the best
    return [max(0.001, round(weight / best, 3)) for weight in weights]


def delete_memory(conn: sqlite3.Connection, memory_id: str) -> bool:
    return conn.execute("DELETE FROM memory WHERE id = ?", (memory_id,)).rowcount == 1
