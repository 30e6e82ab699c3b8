"""``poe.prepare``, ``poe.pending``, ``poe.sign``, ``poe.reject``, ``poe.run``, ``poe.status``,
``poe.cancel``, ``poe.list`` (PROTOCOL §16). Guests see only their own contracts and POE runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import attrs
from msgspec import Meta

from ..kernel import AgentId, NotFound
from ..poe import contract_json, run_json
from ._context import CallContext
from ._registry import Namespace, NoParams

if TYPE_CHECKING:
    from ..store import PoeRun

ns = Namespace()

RunId = Annotated[str, Meta(min_length=1, max_length=128)]
ContractId = Annotated[str, Meta(min_length=1, max_length=128)]
SpecObject = Annotated[
    dict[str, Any],
    Meta(description="{objective, instruction, criteria, max_attempts?, max_tokens?, agent_id?}"),
]


def _guest(ctx: CallContext) -> str | None:
    """The caller's principal id when it is a guest, ``None`` for the owner."""
    principal = ctx.peer.principal
    if principal is not None and principal.role != "owner":
        return principal.principal_id
    return None


async def _visible(ctx: CallContext, run_id: str) -> PoeRun:
    record = await ctx.gateway.poe.get(run_id)
    guest = _guest(ctx)
    if guest is not None and record.principal_id != guest:
        raise NotFound("POE run", run_id)
    return record


@attrs.frozen
class PrepareParams:
    spec: SpecObject


@ns.method(
    "poe.prepare",
    PrepareParams,
    description="Normalise a spec into contract terms awaiting a signature; the model drafts "
    "the criteria when the spec has none.",
    owner_only=False,
)
async def prepare(ctx: CallContext, params: PrepareParams) -> dict[str, Any]:
    contract = await ctx.gateway.poe.prepare(params.spec, principal_id=_guest(ctx))
    return {"contract_id": contract.contract_id, "terms": contract.terms}


@ns.method("poe.pending", NoParams, description="Contracts awaiting a signature.", owner_only=False)
async def pending(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    guest = _guest(ctx)
    contracts = await ctx.gateway.poe.pending()
    shown = [c for c in contracts if guest is None or c.principal_id == guest]
    return {"contracts": [contract_json(c) for c in shown]}


@attrs.frozen
class ContractRef:
    contract_id: ContractId


@ns.method(
    "poe.sign",
    ContractRef,
    description="Sign a pending contract: its terms start a POE run.",
    owner_only=True,
)
async def sign(ctx: CallContext, params: ContractRef) -> dict[str, Any]:
    record = await ctx.gateway.poe.sign(params.contract_id)
    return {"signed": True, "run_id": record.run_id}


@ns.method("poe.reject", ContractRef, description="Reject a pending contract.", owner_only=True)
async def reject(ctx: CallContext, params: ContractRef) -> dict[str, Any]:
    await ctx.gateway.poe.reject(params.contract_id)
    return {"rejected": True}


@attrs.frozen
class RunParams:
    spec: SpecObject
    agent_id: AgentId | None = None


@ns.method(
    "poe.run",
    RunParams,
    description="Start a POE run: agent runs retried with feedback until the criteria hold.",
    owner_only=False,
)
async def run(ctx: CallContext, params: RunParams) -> dict[str, Any]:
    record = await ctx.gateway.poe.run(
        params.spec, agent_id=params.agent_id, principal_id=_guest(ctx)
    )
    return {"run_id": record.run_id}


@attrs.frozen
class RunRef:
    run_id: RunId


@ns.method(
    "poe.status",
    RunRef,
    description="A POE run's status and progress, with each attempt's agent run and evaluation.",
    owner_only=False,
)
async def status(ctx: CallContext, params: RunRef) -> dict[str, Any]:
    return run_json(await _visible(ctx, params.run_id))


@ns.method(
    "poe.cancel",
    RunRef,
    description="Cancel a POE run and its current agent run; answers once both have ended.",
    owner_only=False,
)
async def cancel(ctx: CallContext, params: RunRef) -> dict[str, Any]:
    await _visible(ctx, params.run_id)
    cancelled = await ctx.gateway.poe.cancel(params.run_id)
    return {"cancelled": cancelled, "run_id": params.run_id}


@attrs.frozen
class ListParams:
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


@ns.method(
    "poe.list", ListParams, description="The newest POE runs, newest first.", owner_only=False
)
async def list_runs(ctx: CallContext, params: ListParams) -> dict[str, Any]:
    guest = _guest(ctx)
    records = await ctx.gateway.poe.recent(limit=params.limit)
    shown = [r for r in records if guest is None or r.principal_id == guest]
    return {"runs": [run_json(r) for r in shown]}
