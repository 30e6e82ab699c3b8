"""Run one call: role checks, params decoding, the handler, and the error boundary."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..kernel import GatewayError, component_logger
from ..protocol import (
    AlephError,
    AuthRequired,
    InternalError,
    MethodNotFound,
    PermissionDenied,
)
from ..store import StoreError
from ._context import CallContext
from ._errors import wire_error
from ._registry import Method, Registry
from ._scope import guest_scope

__all__ = ["dispatch"]

log = component_logger("rpc")


async def dispatch(
    registry: Registry, ctx: CallContext, method_name: str, params: dict[str, Any] | None
) -> object:
    """The handler's result, or an :class:`AlephError` describing why there is none.

    Roles are enforced here and nowhere else: a guest gets ``-32002`` for a method outside its
    globs, for any owner-only method, and for another principal's session or run
    (:func:`guest_scope`).

    A :class:`GatewayError` from a service is mapped to its JSON-RPC error here (``wire_error``).

    Anything other than an :class:`AlephError` escaping a handler is a bug: it is logged with its
    traceback and answered with a plain -32603; the connection and the gateway carry on.
    """
    principal = ctx.peer.principal
    method = registry.get(method_name)
    if principal is None and (method is None or not method.pre_auth):
        raise AuthRequired("Authentication required: call connect first")
    if method is None:
        raise MethodNotFound(method_name)
    if (
        principal is not None
        and not method.pre_auth  # connect: anyone may authenticate again
        and not principal.may_call(method.name, owner_only=method.owner_only)
    ):
        raise PermissionDenied(
            f"Permission denied: {method.name} is not allowed for this connection"
        )
    if not log.isEnabledFor(logging.DEBUG):
        decoded = method.decode(params)
        try:
            if principal is not None and principal.role != "owner":
                decoded = await guest_scope(ctx, principal, decoded)
            return await method.handler(ctx, decoded)
        except Exception as exc:
            raise _failure(method, exc) from None
    started = time.perf_counter()
    outcome = "ok"
    try:
        return await _call(method, ctx, params)
    except AlephError as exc:
        outcome = f"error {exc.code}"
        raise
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.debug("%s %s: %s in %.2f ms", ctx.peer.connection_id, method.name, outcome, elapsed_ms)


async def _call(method: Method, ctx: CallContext, params: dict[str, Any] | None) -> object:
    """The handler on decoded params, with its domain errors mapped and its bugs contained."""
    decoded = method.decode(params)
    principal = ctx.peer.principal
    try:
        if principal is not None and principal.role != "owner":
            decoded = await guest_scope(ctx, principal, decoded)
        return await method.handler(ctx, decoded)
    except Exception as exc:
        raise _failure(method, exc) from None


def _failure(method: Method, exc: Exception) -> AlephError:
    """The JSON-RPC error a handler's exception is answered with; bugs are logged here."""
    if isinstance(exc, AlephError):
        return exc
    if isinstance(exc, GatewayError):
        return wire_error(exc)
    if isinstance(exc, StoreError):
        log.error("method %s: %s", method.name, exc)
        return InternalError(f"Internal error: {exc}")
    log.error("method %s failed", method.name, exc_info=exc)
    return InternalError(f"Internal error while running {method.name}")
