"""What a guest may touch (PROTOCOL §4): its own sessions and runs.

The dispatcher hands every guest call's decoded params through :func:`guest_scope`, so the
rule holds for every method by the names of its params, not handler by handler: a
``session_key`` must name a session the guest created (or none yet: the guest's run will
create it), a ``run_id`` naming an agent run one the guest started; anything else is
``-32002``. A ``run_id`` that is no agent run (a POE run's) is left to its handler. A
``session_key`` left out becomes the guest's own session, ``agent:main:guest-<invitation_id>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..guests import guest_session
from ..kernel import NotFound
from ..protocol import PermissionDenied

if TYPE_CHECKING:
    from ..auth import Principal
    from ._context import CallContext

__all__ = ["guest_scope"]


async def guest_scope(ctx: CallContext, principal: Principal, params: Any) -> Any:
    """``params`` with the guest's default session filled in; refuses what is not the guest's."""
    if not attrs.has(type(params)):
        return params
    fields = attrs.fields_dict(type(params))
    if "session_key" in fields:
        key = params.session_key
        if key is None:
            key = guest_session(principal.invitation_id or principal.principal_id)
            params = attrs.evolve(params, session_key=key)
        session = await ctx.gateway.store.get_session(key)
        if session is not None and session.owner_id != principal.principal_id:
            raise PermissionDenied(f"Permission denied: session {key} belongs to someone else")
    run_id = getattr(params, "run_id", None) if "run_id" in fields else None
    if run_id is not None:
        try:
            record = await ctx.gateway.runs.get(run_id)
        except NotFound:
            # No agent run (a POE run's id, or none at all): the handler says what it is,
            # -32004 included.
            return params
        if record.principal_id != principal.principal_id:
            raise PermissionDenied(f"Permission denied: run {run_id} belongs to someone else")
    return params
