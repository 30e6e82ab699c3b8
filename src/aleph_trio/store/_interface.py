"""The storage interface services talk to. SQLite implements it today; PostgreSQL can tomorrow.

Everything is async; implementations do their blocking work off the Trio thread. Writes are
serialised by the implementation (transactions never interleave); reads may run in parallel.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from ._records import (
    ApprovalRecord,
    CronJob,
    CronRun,
    Identity,
    MemoryHit,
    MemoryItem,
    Message,
    Role,
    Run,
    Session,
    SessionFilter,
    Workspace,
)

__all__ = ["Store", "StoreError"]


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

    async def recent_history(self, session_key: str, *, max_tokens: int) -> list[Message]:
        """The newest messages whose ``tokens`` add up to at most ``max_tokens`` (the newest one
        always, even alone larger), oldest first, read at a cost that follows what is returned
        rather than the session's length."""
        ...

    async def session_history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> tuple[Session | None, list[Message]]:
        """The session and its newest ``limit`` messages (older than ``before_id``), oldest
        first, read from one snapshot; ``(None, [])`` for a session that does not exist."""
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

    async def fail_unfinished_runs(self, error: str, statuses: Collection[str]) -> list[Run]:
        """Mark runs whose status is one of ``statuses`` (the run lifecycle's live ones) as
        failed with ``error``; returns them."""
        ...

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

    # cron
    async def insert_cron_job(self, job: CronJob) -> bool:
        """Store a new job; ``False`` (nothing stored) when another job has its name."""
        ...

    async def save_cron_job(
        self, job: CronJob, runs: Sequence[CronRun] = (), *, keep_runs: int
    ) -> bool:
        """Update the job and record ``runs`` (new or updated) in one transaction, keeping the
        job's newest ``keep_runs`` cron runs. ``False`` (nothing written) if the job is gone."""
        ...

    async def delete_cron_job(self, job_id: str) -> bool:
        """Remove the job and its cron runs; ``False`` if there was no such job."""
        ...

    async def list_cron_jobs(self) -> list[CronJob]:
        """Every job, oldest first."""
        ...

    async def recent_cron_runs(self, job_id: str, *, limit: int) -> list[CronRun]:
        """The job's newest ``limit`` cron runs, newest first."""
        ...

    async def fail_unfinished_cron_runs(
        self, error: str, statuses: Collection[str]
    ) -> list[CronRun]:
        """Mark cron runs whose status is one of ``statuses`` as failed (their jobs' last
        status too); returns them."""
        ...

    # identities
    async def get_identity(self, identity_id: str) -> Identity | None: ...

    async def list_identities(self) -> list[Identity]:
        """Every stored identity, by id."""
        ...

    async def active_identity_id(self) -> str | None:
        """The identity chosen last, or ``None`` when none was (or it was reset)."""
        ...

    async def save_identity(self, identity: Identity, *, activate: bool) -> None:
        """Insert or replace ``identity`` and, when ``activate``, make it the active one, in one
        transaction."""
        ...

    async def reset_identity(self, identity_id: str) -> None:
        """Forget the stored fields of ``identity_id`` and which identity is active, in one
        transaction."""
        ...

    # workspaces
    async def insert_workspace(self, workspace: Workspace) -> bool:
        """Store a new workspace; ``False`` (nothing stored) when another one has its name."""
        ...

    async def save_workspace(self, workspace: Workspace) -> bool:
        """Update a stored workspace; ``False`` (nothing written) when it does not exist."""
        ...

    async def get_workspace(self, workspace_id: str) -> Workspace | None: ...

    async def list_workspaces(self, *, include_archived: bool) -> list[Workspace]:
        """Workspaces in the order they were created; archived ones only when asked."""
        ...

    # idempotency keys
    async def claim_key(
        self, key: str, fingerprint: str, value: str, ttl_s: float
    ) -> tuple[str, str] | None:
        """Record ``key`` unless a live one exists; returns that one's (fingerprint, value)."""
        ...

    async def aclose(self) -> None: ...
