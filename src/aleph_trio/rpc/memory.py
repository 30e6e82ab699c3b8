"""``memory.search``, ``memory.store``, ``memory.delete`` (PROTOCOL §14)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ..protocol import ResourceNotFound
from ._context import CallContext
from ._registry import Namespace

ns = Namespace()

Source = Annotated[str, Meta(min_length=1, max_length=256)]


@attrs.frozen
class SearchFilter:
    source: Source | None = None


@attrs.frozen
class SearchParams:
    query: Annotated[str, Meta(max_length=4096)]
    limit: Annotated[int, Meta(ge=1, le=100)] = 10
    filter: SearchFilter | None = None


@ns.method(
    "memory.search",
    SearchParams,
    description="Stored memories ranked by full-text relevance (BM25).",
    owner_only=False,
)
async def search(ctx: CallContext, params: SearchParams) -> dict[str, Any]:
    source = params.filter.source if params.filter else None
    hits = await ctx.gateway.store.search_memory(params.query, limit=params.limit, source=source)
    return {"results": [hit.to_json() for hit in hits]}


@attrs.frozen
class StoreParams:
    content: Annotated[str, Meta(min_length=1, max_length=1_000_000)]
    source: Source = "manual"
    metadata: dict[str, Any] = attrs.Factory(dict)


@ns.method(
    "memory.store",
    StoreParams,
    description="Remember a piece of text; it becomes searchable at once.",
    owner_only=False,
)
async def store(ctx: CallContext, params: StoreParams) -> dict[str, Any]:
    item = await ctx.gateway.store.store_memory(
        params.content, source=params.source, metadata=params.metadata
    )
    return {"id": item.id}


@attrs.frozen
class DeleteParams:
    id: Annotated[str, Meta(min_length=1, max_length=128)]


@ns.method("memory.delete", DeleteParams, description="Forget a stored memory.", owner_only=False)
async def delete(ctx: CallContext, params: DeleteParams) -> dict[str, Any]:
    if not await ctx.gateway.store.delete_memory(params.id):
        raise ResourceNotFound("memory", params.id)
    return {"deleted": True}
