"""Guest invitations: creating, listing, revoking, resolving a presented token, expiring.

A token is ``<invitation_id>.<secret>``. Only the SHA-256 of the secret is stored, and a
presented secret is compared with it in constant time; the id before the dot only says which
hash to compare with. Invitations that may still be used are kept in memory, so ``connect``
resolves a token without a store read.

Expiry is kept on Trio's clock (the wall-clock ``expires_at`` is what clients see and what is
stored): :meth:`GuestService.serve` sleeps until the next invitation expires and then reports
it through ``on_gone``, as :meth:`GuestService.revoke` does at once, so the composition root can
close that guest's connections.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import math
import secrets
import uuid
from collections.abc import Callable, Sequence
from typing import final

import attrs
import trio

from ..kernel import (
    InvalidArgument,
    LimitReached,
    NotFound,
    format_ts,
    parse_ts,
    pattern_error,
    utc_now,
)
from ..store import Invitation, Store

__all__ = [
    "DEFAULT_EXPIRY_S",
    "MAX_EXPIRY_S",
    "GuestService",
    "guest_principal_id",
    "guest_session",
]

#: How long an invitation lasts when ``expires`` is not given: 24 hours.
DEFAULT_EXPIRY_S = 24 * 3600.0
#: The longest an invitation may last: a year.
MAX_EXPIRY_S = 366 * 86400.0
#: Method globs an invitation may hold.
MAX_PERMISSIONS = 64


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def guest_principal_id(invitation_id: str) -> str:
    """Who the guests of an invitation act as: runs and sessions they create are recorded so."""
    return f"guest-{invitation_id}"


def guest_session(invitation_id: str) -> str:
    """The session a guest's ``chat.send`` / ``agent.run`` use without ``session_key``."""
    return f"agent:main:guest-{invitation_id}"


@attrs.define(eq=False)
class _Live:
    invitation: Invitation
    #: When it expires, on Trio's clock.
    deadline: float


@final
class GuestService:
    """``on_gone(invitation_id, reason)`` is called when an invitation is revoked or expires."""

    def __init__(self, store: Store, *, on_gone: Callable[[str, str], None]) -> None:
        self._store = store
        self._on_gone = on_gone
        self._live: dict[str, _Live] = {}
        self._changed = trio.Event()

    # -- starting ----------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the invitations that may still be used (at start-up)."""
        now = trio.current_time()
        wall = utc_now()
        for invitation in await self._store.list_invitations():
            left = (parse_ts(invitation.expires_at) - wall).total_seconds()
            if left > 0:
                self._live[invitation.invitation_id] = _Live(invitation, now + left)
        self._wake()

    # -- the methods -------------------------------------------------------------------------

    async def create(
        self, permissions: Sequence[str], *, expires: float | str | None, name: str | None
    ) -> tuple[Invitation, str]:
        """A new invitation and its token (the only time the token exists in full)."""
        granted = _check_permissions(permissions)
        seconds = _check_expires(expires)
        invitation_id = "inv_" + uuid.uuid4().hex[:16]
        secret = secrets.token_urlsafe(32)
        wall = utc_now()
        invitation = Invitation(
            invitation_id=invitation_id,
            name=name,
            permissions=granted,
            token_hash=_digest(secret),
            created_at=format_ts(wall),
            expires_at=format_ts(wall + _dt.timedelta(seconds=seconds)),
        )
        await self._store.insert_invitation(invitation)
        self._live[invitation_id] = _Live(invitation, trio.current_time() + seconds)
        self._wake()
        return invitation, f"{invitation_id}.{secret}"

    def pending(self) -> list[Invitation]:
        """Invitations neither revoked nor expired, oldest first."""
        now = trio.current_time()
        return [live.invitation for live in self._live.values() if live.deadline > now]

    async def revoke(self, invitation_id: str) -> None:
        """Revoke the invitation (expired ones too); its guests are disconnected."""
        if not await self._store.revoke_invitation(invitation_id):
            raise NotFound("invitation", invitation_id)
        self._live.pop(invitation_id, None)
        self._wake()
        self._on_gone(invitation_id, "invitation revoked")

    # -- connecting --------------------------------------------------------------------------

    def resolve(self, token: str) -> Invitation | None:
        """The invitation a token belongs to, or ``None`` (unknown, malformed, revoked,
        expired)."""
        invitation_id, dot, secret = token.partition(".")
        live = self._live.get(invitation_id) if dot else None
        if live is None or live.deadline <= trio.current_time():
            return None
        if not hmac.compare_digest(_digest(secret), live.invitation.token_hash):
            return None
        return live.invitation

    async def mark_used(self, invitation_id: str) -> None:
        """Note that a guest connected with the invitation (``used`` in ``listPending``)."""
        live = self._live.get(invitation_id)
        if live is None or live.invitation.used:
            return
        live.invitation = attrs.evolve(live.invitation, used=True)
        await self._store.mark_invitation_used(invitation_id)

    # -- expiry ------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Report each invitation as it expires, until cancelled."""
        task_status.started()
        while True:
            now = trio.current_time()
            for invitation_id in [i for i, live in self._live.items() if live.deadline <= now]:
                del self._live[invitation_id]
                self._on_gone(invitation_id, "invitation expired")
            changed = self._changed
            deadline = min((live.deadline for live in self._live.values()), default=math.inf)
            with trio.move_on_at(deadline):
                await changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def _check_permissions(permissions: Sequence[str]) -> tuple[str, ...]:
    if not permissions:
        raise InvalidArgument.field("$.permissions", "at least one method glob is required")
    if len(permissions) > MAX_PERMISSIONS:
        raise LimitReached.field("$.permissions", f"at most {MAX_PERMISSIONS} method globs")
    for i, glob in enumerate(permissions):
        problem = pattern_error(glob)
        if problem is not None:
            raise InvalidArgument.field(
                f"$.permissions[{i}]", problem.replace("a pattern", "a method glob")
            )
    return tuple(dict.fromkeys(permissions))


def _check_expires(expires: float | str | None) -> float:
    """Seconds from now until the invitation expires."""
    if expires is None:
        return DEFAULT_EXPIRY_S
    if isinstance(expires, str):
        try:
            moment = parse_ts(expires)
        except ValueError:
            raise InvalidArgument.field(
                "$.expires", "expected seconds from now or an RFC 3339 time"
            ) from None
        seconds = (moment - utc_now()).total_seconds()
        if seconds <= 0:
            raise InvalidArgument.field("$.expires", "that time has passed")
    else:
        seconds = float(expires)
        if not math.isfinite(seconds) or seconds <= 0:
            raise InvalidArgument.field("$.expires", "must be a positive number of seconds")
    if seconds > MAX_EXPIRY_S:
        raise InvalidArgument.field("$.expires", "an invitation lasts at most 366 days")
    return seconds
