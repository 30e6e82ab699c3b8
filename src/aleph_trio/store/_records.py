"""Value objects the store hands out. Times are RFC 3339 UTC strings, ids are opaque."""

from __future__ import annotations

from typing import Any, Literal

import attrs

__all__ = [
    "ApprovalRecord",
    "CronJob",
    "CronRun",
    "Identity",
    "MemoryHit",
    "MemoryItem",
    "Message",
    "Run",
    "Session",
    "SessionFilter",
    "Workspace",
]

Role = Literal["user", "assistant", "system", "tool"]


@attrs.frozen
class Session:
    session_key: str
    agent_id: str
    message_count: int
    token_count: int
    created_at: str
    updated_at: str
    title: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        if self.title is None:
            del out["title"]
        return out


@attrs.frozen
class SessionFilter:
    agent_id: str | None = None
    prefix: str | None = None
    updated_after: str | None = None


@attrs.frozen
class Message:
    id: int
    session_key: str
    role: Role
    content: str
    created_at: str
    tokens: int
    run_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "created_at": self.created_at,
            "tokens": self.tokens,
        }
        if self.run_id is not None:
            out["run_id"] = self.run_id
        if self.tool_calls is not None:
            out["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


@attrs.frozen
class Run:
    run_id: str
    session_key: str
    agent_id: str
    model: str
    status: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    iterations: int = 0
    tokens_used: int = 0
    error: str | None = None
    output: str | None = None
    principal_id: str | None = None
    error_code: int | None = None
    workspace_id: str | None = None


@attrs.frozen
class MemoryItem:
    id: str
    content: str
    source: str
    created_at: str
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class MemoryHit:
    item: MemoryItem
    score: float

    def to_json(self) -> dict[str, Any]:
        return {**self.item.to_json(), "score": self.score}


@attrs.frozen
class ApprovalRecord:
    id: str
    command: str
    cwd: str
    agent_id: str
    status: str
    requested_at: str
    expires_at: str
    run_id: str | None = None
    decision: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``exec.approvals.pending`` / ``exec.approval_requested`` shape."""
        out: dict[str, Any] = {
            "id": self.id,
            "command": self.command,
            "cwd": self.cwd,
            "agent_id": self.agent_id,
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
        }
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out


@attrs.frozen
class CronJob:
    """A scheduled job (PROTOCOL §12). ``next_run_at`` is ``None`` while it is disabled."""

    job_id: str
    name: str
    schedule: str
    timezone: str
    agent_id: str
    prompt: str
    session_key: str
    enabled: bool
    misfire_policy: str
    overlap_policy: str
    created_at: str
    next_run_at: str | None = None
    #: When the job's latest firing started (skipped and missed fire times did not start).
    last_run_at: str | None = None
    #: The latest news of its cron runs: ``running`` while a firing runs, its outcome once it
    #: ended, ``skipped`` or ``missed`` when a fire time did not run.
    last_status: str | None = None
    model: str | None = None


@attrs.frozen
class CronRun:
    """One fire time of a job: a firing that ran (with its agent run), or one that was skipped
    or missed."""

    cron_run_id: str
    job_id: str
    trigger: str
    status: str
    scheduled_for: str | None = None
    run_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        del out["job_id"]
        if self.error is None:
            del out["error"]
        return out


@attrs.frozen
class Identity:
    """A persona for the system prompt (PROTOCOL §17); ``language`` and ``tone`` are optional."""

    id: str
    name: str
    description: str
    persona: str
    language: str | None = None
    tone: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


@attrs.frozen
class Workspace:
    """A directory and the overrides runs in it use (PROTOCOL §17). ``agent_id``, ``model`` and
    ``tools`` are the workspace's ``config``; ``None`` leaves the run's own choice."""

    workspace_id: str
    name: str
    path: str
    description: str
    status: Literal["active", "archived"]
    created_at: str
    updated_at: str
    agent_id: str | None = None
    model: str | None = None
    tools: tuple[str, ...] | None = None

    @property
    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.agent_id is not None:
            out["agent_id"] = self.agent_id
        if self.model is not None:
            out["model"] = self.model
        if self.tools is not None:
            out["tools"] = list(self.tools)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "name": self.name,
            "path": self.path,
            "description": self.description,
            "config": self.config,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
