"""``wizard.start``, ``wizard.answer``, ``wizard.next``, ``wizard.cancel``, ``wizard.status``
(PROTOCOL §11).

None of these is owner-only in PROTOCOL §4, so a guest whose invitation allows ``wizard.*`` may
call them; but a wizard type whose effects are those of owner-only methods (``setup`` writes the
config, ``cron_job`` creates a job, ``identity`` switches the identity) is refused to a guest
with ``-32002``, and a guest sees only the sessions it started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import attrs
from msgspec import Meta

from ..protocol import PermissionDenied
from ._context import CallContext
from ._registry import Namespace

if TYPE_CHECKING:
    from ..wizards import WizardSession

ns = Namespace()

SessionId = Annotated[str, Meta(min_length=1, max_length=128)]


def _principal_id(ctx: CallContext) -> str | None:
    """Whose sessions the caller may see: ``None`` for the owner (all of them)."""
    principal = ctx.peer.principal
    return principal.principal_id if principal and principal.role != "owner" else None


def _progress(session: WizardSession) -> dict[str, Any]:
    return {"done": session.status != "running", **session.view()}


@attrs.frozen
class StartParams:
    wizard_type: Annotated[str, Meta(min_length=1, max_length=64)]
    initial_data: dict[str, Any] | None = None


@ns.method(
    "wizard.start",
    StartParams,
    description="Start a wizard (setup, cron_job, identity); answers with its first step.",
    owner_only=False,
)
async def start(ctx: CallContext, params: StartParams) -> dict[str, Any]:
    wizards = ctx.gateway.wizards
    flow = wizards.flow(params.wizard_type)
    principal = ctx.peer.principal
    if flow.owner_only and principal is not None and principal.role != "owner":
        raise PermissionDenied(f"Permission denied: the {flow.name} wizard is only for the owner")
    session = await wizards.start(
        params.wizard_type, params.initial_data, principal_id=_principal_id(ctx)
    )
    return {"session_id": session.session_id, **session.view()}


@attrs.frozen
class AnswerParams:
    session_id: SessionId
    step_id: Annotated[str, Meta(min_length=1, max_length=64)]
    value: Any


@ns.method(
    "wizard.answer",
    AnswerParams,
    description="Answer the current step; a wrong answer is refused and the step stays.",
    owner_only=False,
)
async def answer(ctx: CallContext, params: AnswerParams) -> dict[str, Any]:
    session = await ctx.gateway.wizards.answer(
        params.session_id, params.step_id, params.value, principal_id=_principal_id(ctx)
    )
    return _progress(session)


@attrs.frozen
class SessionRef:
    session_id: SessionId


@ns.method(
    "wizard.next",
    SessionRef,
    description="Go on past a note step; any other step is shown again (never waits).",
    owner_only=False,
)
async def next_(ctx: CallContext, params: SessionRef) -> dict[str, Any]:
    session = await ctx.gateway.wizards.next(params.session_id, principal_id=_principal_id(ctx))
    return _progress(session)


@ns.method(
    "wizard.cancel",
    SessionRef,
    description="Cancel a running wizard; false when it had finished already.",
    owner_only=False,
)
async def cancel(ctx: CallContext, params: SessionRef) -> dict[str, Any]:
    cancelled = await ctx.gateway.wizards.cancel(params.session_id, principal_id=_principal_id(ctx))
    return {"cancelled": cancelled}


@ns.method(
    "wizard.status",
    SessionRef,
    description="A wizard's status and current step (finished ones for 10 minutes).",
    owner_only=False,
)
async def status(ctx: CallContext, params: SessionRef) -> dict[str, Any]:
    session = ctx.gateway.wizards.get(params.session_id, principal_id=_principal_id(ctx))
    return session.view()
