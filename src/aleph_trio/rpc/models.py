"""``models.list``, ``models.get``, ``models.capabilities`` (PROTOCOL §14)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()


@ns.method(
    "models.list",
    NoParams,
    description="Every model of every configured provider.",
    owner_only=False,
)
async def list_models(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"models": [m.to_json() for m in ctx.gateway.models.list()]}


@attrs.frozen
class ModelParams:
    model_id: Annotated[str, Meta(min_length=1, max_length=256, description="<provider>/<model>")]


@ns.method(
    "models.get",
    ModelParams,
    description="One model; a bare name works where it is unique.",
    owner_only=False,
)
async def get(ctx: CallContext, params: ModelParams) -> dict[str, Any]:
    return ctx.gateway.models.resolve(params.model_id).to_json()


@ns.method("models.capabilities", ModelParams, description="What a model can do.", owner_only=False)
async def capabilities(ctx: CallContext, params: ModelParams) -> dict[str, Any]:
    return ctx.gateway.models.resolve(params.model_id).capabilities()
