"""Sessions and their messages (PROTOCOL §8): key rules, token estimates, events."""

from __future__ import annotations

import re
from typing import Any, final

from ._events import EventBus
from .protocol import InvalidParams, ResourceNotFound
from .store import Message, Store
from .store._records import Role

__all__ = ["DEFAULT_SESSION", "SessionService", "estimate_tokens", "session_key_error"]

DEFAULT_SESSION = "agent:main:main"
MAX_KEY_LENGTH = 256
_SEGMENT = r"[A-Za-z0-9_.@+\-]+"
_KEY = re.compile(rf"agent:{_SEGMENT}(?::{_SEGMENT})+")
#: The same rule as a JSON-Schema pattern for params (``(?!\n)`` keeps Python's ``$`` honest).
KEY_PATTERN = rf"^agent:{_SEGMENT}(?::{_SEGMENT})+(?!\n)$"


def session_key_error(key: str) -> str | None:
    """Why ``key`` is not a session key, or ``None`` if it is one."""
    if len(key) > MAX_KEY_LENGTH:
        return f"a session key is at most {MAX_KEY_LENGTH} characters"
    if not _KEY.fullmatch(key):
        return (
            "a session key is agent:<agent_id>:<name>[:<more>...], "
            "segments of A-Z a-z 0-9 _ . @ + -"
        )
    return None


def check_session_key(key: str, *, path: str = "$.session_key") -> str:
    problem = session_key_error(key)
    if problem is not None:
        raise InvalidParams(
            f"Invalid params: {path}: {problem}", errors=[{"path": path, "message": problem}]
        )
    return key


def agent_of(key: str) -> str:
    return key.split(":", 2)[1]


def estimate_tokens(text: str) -> int:
    """A deterministic estimate (about four characters a token) until a provider reports usage."""
    return max(1, (len(text) + 3) // 4)


@final
class SessionService:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def append(
        self,
        session_key: str,
        role: Role,
        content: str,
        *,
        tokens: int | None = None,
        run_id: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
    ) -> Message:
        """Store a message, creating the session on first use (``session.created``)."""
        message, created = await self._store.append_message(
            session_key,
            agent_of(session_key),
            role,
            content,
            tokens=estimate_tokens(content) if tokens is None else tokens,
            run_id=run_id,
            tool_calls=tool_calls,
            tool_call_id=tool_call_id,
        )
        if created:
            self._bus.publish(
                "session.created", {"session_key": session_key, "agent_id": agent_of(session_key)}
            )
        return message

    async def history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> tuple[list[Message], int]:
        session, messages = await self._store.session_history(
            session_key, limit=limit, before_id=before_id
        )
        if session is None:
            raise ResourceNotFound("session", session_key)
        return messages, session.token_count

    async def delete(self, session_key: str) -> int:
        removed = await self._store.delete_session(session_key)
        if removed is None:
            raise ResourceNotFound("session", session_key)
        self._bus.publish(
            "session.deleted", {"session_key": session_key, "messages_removed": removed}
        )
        return removed

    async def clear(self, session_key: str) -> int:
        return await self._store.clear_session(session_key)
