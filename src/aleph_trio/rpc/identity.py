"""``identity.get``, ``identity.set``, ``identity.clear``, ``identity.list`` (PROTOCOL §17)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

Text = Annotated[str, Meta(max_length=200)]


@attrs.frozen
class IdentityFields:
    """The fields to change; those left out stay as they are."""

    id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                pattern=r"^[A-Za-z0-9_.\-]+$",
                description="switch to this identity (a new id creates it)",
            ),
        ]
        | None
    ) = None
    name: Text | None = None
    description: Annotated[str, Meta(max_length=2000)] | None = None
    persona: Annotated[str, Meta(max_length=20_000)] | None = None
    language: Annotated[Text, Meta(description='"" removes it')] | None = None
    tone: Annotated[Text, Meta(description='"" removes it')] | None = None


@attrs.frozen
class SetParams:
    fields: IdentityFields


@ns.method("identity.get", NoParams, description="The active identity.", owner_only=False)
async def get(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return (await ctx.gateway.identities.active()).to_json()


@ns.method(
    "identity.set",
    SetParams,
    description="Change the active identity's fields, or switch to (or create) one by id.",
    owner_only=True,
)
async def set_(ctx: CallContext, params: SetParams) -> dict[str, Any]:
    updated = await ctx.gateway.identities.set(attrs.asdict(params.fields))
    return {"updated": updated}


@ns.method(
    "identity.clear",
    NoParams,
    description="Go back to the shipped default identity, as shipped.",
    owner_only=True,
)
async def clear(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    await ctx.gateway.identities.clear()
    return {"cleared": True}


@ns.method(
    "identity.list", NoParams, description="Every identity, the default first.", owner_only=False
)
async def list_(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    identities = await ctx.gateway.identities.list_all()
    return {"identities": [identity.to_json() for identity in identities]}
