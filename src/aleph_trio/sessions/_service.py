"""Sessions and their messages (PROTOCOL §8): key rules, token estimates, events."""

from __future__ import annotations

from typing import Annotated, Any, final

from msgspec import Meta

from ..kernel import EventBus, NotFound
from ..store import Message, Role, Store

__all__ = ["DEFAULT_SESSION", "SessionKey", "SessionService", "estimate_tokens"]

DEFAULT_SESSION = "agent:main:main"
MAX_KEY_LENGTH = 256
_SEGMENT = r"[A-Za-z0-9_.@+\-]+"
#: ``(?!\n)`` keeps Python's ``$`` from accepting a trailing newline; ECMA regexes agree.
KEY_PATTERN = rf"^agent:{_SEGMENT}(?::{_SEGMENT})+(?!\n)$"

#: A session key in params: validated by the params decoder and published in the schema.
SessionKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=KEY_PATTERN,
        description=(
            "a session key agent:<agent_id>:<name>, e.g. agent:main:main or "
            "agent:main:work:today (segments of A-Z a-z 0-9 _ . @ + -)"
        ),
    ),
]


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
        owner_id: str | None = None,
    ) -> Message:
        """Store a message, creating the session on first use (``session.created``) as one of
        the guest ``owner_id``'s sessions when given."""
        message, created = await self._store.append_message(
            session_key,
            agent_of(session_key),
            role,
            content,
            tokens=estimate_tokens(content) if tokens is None else tokens,
            run_id=run_id,
            tool_calls=tool_calls,
            tool_call_id=tool_call_id,
            owner_id=owner_id,
        )
        if created:
            self._bus.publish(
                "session.created",
                {"session_key": session_key, "agent_id": agent_of(session_key)},
                principal_id=owner_id,
            )
        return message

    async def history(
        self, session_key: str, *, limit: int, before_id: int | None = None
    ) -> tuple[list[Message], int]:
        session, messages = await self._store.session_history(
            session_key, limit=limit, before_id=before_id
        )
        if session is None:
            raise NotFound("session", session_key)
        return messages, session.token_count

    async def delete(self, session_key: str) -> int:
        session = await self._store.get_session(session_key)
        removed = await self._store.delete_session(session_key)
        if removed is None:
            raise NotFound("session", session_key)
        self._bus.publish(
            "session.deleted",
            {"session_key": session_key, "messages_removed": removed},
            principal_id=session.owner_id if session is not None else None,
        )
        return removed

    async def clear(self, session_key: str) -> int:
        return await self._store.clear_session(session_key)
