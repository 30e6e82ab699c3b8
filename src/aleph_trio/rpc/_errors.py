"""The one place where domain errors become JSON-RPC errors (PROTOCOL §3).

Services raise :class:`~aleph_trio.kernel.GatewayError` subclasses in their own words; the
dispatcher hands each one to :func:`wire_error` at the boundary, the way httpcore maps socket
errors once. A store failure is an internal error whose message names the fault.
"""

from __future__ import annotations

from ..kernel import ExternalFailure, GatewayError, InvalidArgument, NotFound, TimedOut
from ..protocol import (
    AlephError,
    InternalError,
    InvalidParams,
    OperationTimeout,
    ResourceNotFound,
    ToolError,
)

__all__ = ["wire_error"]


def wire_error(exc: GatewayError) -> AlephError:
    """The JSON-RPC error that tells a client what ``exc`` says."""
    details = exc.details or None
    if isinstance(exc, NotFound):
        return ResourceNotFound(exc.resource, exc.id)
    if isinstance(exc, InvalidArgument):
        return InvalidParams(
            f"Invalid params: {exc.message}",
            errors=[p.to_json() for p in exc.problems] or None,
            reason=exc.reason,
            **exc.details,
        )
    if isinstance(exc, TimedOut):
        return OperationTimeout(exc.message, details)
    if isinstance(exc, ExternalFailure):
        return ToolError(exc.message, details)
    # OperationFailed, and any other failure a service names
    return InternalError(f"Internal error: {exc.message}", details)
