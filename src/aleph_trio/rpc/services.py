"""``services.list``, ``services.start``, ``services.stop``, ``services.status`` (PROTOCOL §15).

All owner-only. ``start`` and ``stop`` are idempotent: they answer with the state reached, so
starting a running service or stopping a stopped one is a success that changes nothing.
Starting a service waiting out a restart backoff tries it at once. ``runs`` cannot be stopped
(``-32602`` reason ``invalid_state``): every agent run and cron firing lives in it.
"""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()


@attrs.frozen
class ServiceRef:
    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200,
            description="cron, config_watcher, mcp:<name>, plugin:<id>:<task>, …",
        ),
    ]


@ns.method(
    "services.list",
    NoParams,
    description="Every background service: status, start time, restarts, last error.",
    owner_only=True,
)
async def list_services(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"services": [state.to_json() for state in ctx.gateway.services.list()]}


@ns.method(
    "services.status",
    ServiceRef,
    description="One service: status, start time, restarts, last error.",
    owner_only=True,
)
async def status(ctx: CallContext, params: ServiceRef) -> dict[str, Any]:
    return ctx.gateway.services.get(params.name).to_json()


@ns.method(
    "services.start",
    ServiceRef,
    description="Start a stopped or failed service (a running one is left as it is).",
    owner_only=True,
)
async def start(ctx: CallContext, params: ServiceRef) -> dict[str, Any]:
    await ctx.gateway.services.resume(params.name)
    return {"started": True}


@ns.method(
    "services.stop",
    ServiceRef,
    description="Stop a service and wait until it has cleaned up (a stopped one is left as it is).",
    owner_only=True,
)
async def stop(ctx: CallContext, params: ServiceRef) -> dict[str, Any]:
    await ctx.gateway.services.stop(params.name)
    return {"stopped": True}
