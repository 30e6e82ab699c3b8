"""``guests.createInvitation``, ``guests.listPending``, ``guests.revokeInvitation`` (PROTOCOL §17).

All three are owner-only (PROTOCOL §4).
"""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ..guests import MAX_EXPIRY_S
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

Glob = Annotated[
    str,
    Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_*\-]+(\.[A-Za-z0-9_*\-]+)*(?!\n)$"),
]
Seconds = Annotated[float, Meta(gt=0, le=MAX_EXPIRY_S, description="seconds from now")]
Time = Annotated[str, Meta(max_length=64, description="an RFC 3339 time")]


@attrs.frozen
class CreateParams:
    permissions: Annotated[
        list[Glob],
        Meta(
            min_length=1,
            max_length=64,
            description='method globs the guest may call, e.g. ["chat.*", "health"]',
        ),
    ]
    #: Seconds from now, or an RFC 3339 time (default: 24 hours).
    expires: Seconds | Time | None = None
    name: Annotated[str, Meta(max_length=200)] | None = None


@ns.method(
    "guests.createInvitation",
    CreateParams,
    description="Invite a guest: a token (shown only now) for connect, limited to method globs.",
    owner_only=True,
)
async def create(ctx: CallContext, params: CreateParams) -> dict[str, Any]:
    invitation, token = await ctx.gateway.guests.create(
        params.permissions, expires=params.expires, name=params.name
    )
    return {"invitation_id": invitation.invitation_id, "token": token}


@ns.method(
    "guests.listPending",
    NoParams,
    description="Invitations neither revoked nor expired; used says whether a guest connected.",
    owner_only=True,
)
async def list_pending(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"invitations": [i.to_json() for i in ctx.gateway.guests.pending()]}


@attrs.frozen
class RevokeParams:
    invitation_id: Annotated[str, Meta(min_length=1, max_length=128)]


@ns.method(
    "guests.revokeInvitation",
    RevokeParams,
    description="Revoke an invitation; its guests' connections are closed (1008).",
    owner_only=True,
)
async def revoke(ctx: CallContext, params: RevokeParams) -> dict[str, Any]:
    await ctx.gateway.guests.revoke(params.invitation_id)
    return {"revoked": True}
