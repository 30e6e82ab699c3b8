"""The storage interface services talk to. SQLite implements it today; PostgreSQL can tomorrow.

Everything is async; implementations do their blocking work off the Trio thread. Writes are
serialised by the implementation (transactions never interleave); reads may run in parallel.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._run_states import LIVE
from ._records import (
    ApprovalRecord,
    MemoryHit,
    MemoryItem,
    Message,
    Role,
    Run,
    Session,
    SessionFilter,
)

__all__ = ["Store", "StoreError"]

#: Run statuses that mean "not finished"; after a restart such runs are failed.
UNFINISHED = tuple(sorted(LIVE))


class StoreError(Exception):
    """Storage failed (disk full, database locked or corrupt); the message says which."""


class Store(Protocol):
    # sessions and messages
    async def get_session(self, session_key: str) -> Session | None: ...

    async def list_sessions(
        self, flt: SessionFilter, *, limit: int, offset: int
    ) -> tuple[list[Session], int]: ...

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
        """Append a message (creating the session on first use); returns it and ``created``."""
        ...

    async def history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> list[Message]:
        """The newest ``limit`` messages (older than ``before_id``), oldest first."""
        ...

    async def session_history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> tuple[Session | None, list[Message]]:
        """The session and its messages (as :meth:`history`), read from one snapshot."""
        ...

    async def clear_session(self, session_key: str) -> int: ...

    async def delete_session(self, session_key: str) -> int | None:
        """Remove the session and its messages; ``None`` if there was no such session."""
        ...

    async def replace_range(
        self, session_key: str, *, upto_id: int, summary: str, summary_tokens: int
    ) -> tuple[int, int]:
        """Replace messages with ``id <= upto_id`` by one system summary, atomically.

        Returns the session's token count before and after.
        """
        ...

    # runs
    async def save_run(self, run: Run) -> None: ...

    async def get_run(self, run_id: str) -> Run | None: ...

    async def fail_unfinished_runs(self, error: str) -> list[Run]: ...

    # memory
    async def store_memory(
        self, content: str, *, source: str, metadata: dict[str, Any]
    ) -> MemoryItem: ...

    async def search_memory(
        self, query: str, *, limit: int, source: str | None = None
    ) -> list[MemoryHit]: ...

    async def delete_memory(self, memory_id: str) -> bool: ...

    # exec approvals
    async def save_approval(self, record: ApprovalRecord) -> None: ...

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...

    async def expire_pending_approvals(self, resolved_at: str) -> list[ApprovalRecord]:
        """Mark every approval still pending as expired (after a restart)."""
        ...

    # idempotency keys
    async def claim_key(
        self, key: str, fingerprint: str, value: str, ttl_s: float
    ) -> tuple[str, str] | None:
        """Record ``key`` unless a live one exists; returns that one's (fingerprint, value)."""
        ...

    async def aclose(self) -> None: ...
