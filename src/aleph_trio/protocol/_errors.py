"""The error hierarchy, each class carrying the JSON-RPC code it maps to.

::

    AlephError                     anything the gateway raises on purpose; has ``code`` and ``data``
    ├── RemoteProtocolError        the peer sent something that is not JSON-RPC
    │   ├── ParseError             -32700  not JSON / not UTF-8
    │   └── InvalidRequest         -32600  JSON, but not a request
    ├── MethodNotFound             -32601
    ├── InvalidParams              -32602  ``data.errors``: ``{path, message}``; ``data.reason``
    ├── InternalError              -32603
    ├── AuthRequired               -32000
    ├── AuthFailed                 -32001
    ├── PermissionDenied           -32002
    ├── RateLimited                -32003  ``data.retry_after_ms``
    ├── ResourceNotFound           -32004  ``data = {resource, id}``
    ├── OperationTimeout           -32005
    └── ToolError                  -32006

Handlers raise these; the connection turns them into error objects. Anything else a handler
raises is logged and answered with a plain -32603 (the traceback never reaches the client).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._codes import ErrorCode

__all__ = [
    "AlephError",
    "AuthFailed",
    "AuthRequired",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "OperationTimeout",
    "ParseError",
    "PermissionDenied",
    "RateLimited",
    "RemoteProtocolError",
    "ResourceNotFound",
    "ToolError",
    "error_from_object",
]


class AlephError(Exception):
    """Base of every error that maps onto a JSON-RPC error object."""

    code: ClassVar[int] = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_object(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj


class RemoteProtocolError(AlephError):
    """The peer broke the JSON-RPC framing rules."""


class ParseError(RemoteProtocolError):
    code = ErrorCode.PARSE_ERROR


class InvalidRequest(RemoteProtocolError):
    code = ErrorCode.INVALID_REQUEST


class MethodNotFound(AlephError):
    code = ErrorCode.METHOD_NOT_FOUND

    def __init__(self, method: str) -> None:
        super().__init__(f"Method not found: {method}")


class InvalidParams(AlephError):
    code = ErrorCode.INVALID_PARAMS

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, str]] | None = None,
        reason: str | None = None,
        **extra: Any,
    ) -> None:
        data: dict[str, Any] = dict(extra)
        if errors is not None:
            data["errors"] = errors
        if reason is not None:
            data["reason"] = reason
        super().__init__(message, data or None)


class InternalError(AlephError):
    code = ErrorCode.INTERNAL_ERROR


class AuthRequired(AlephError):
    code = ErrorCode.AUTH_REQUIRED


class AuthFailed(AlephError):
    code = ErrorCode.AUTH_FAILED


class PermissionDenied(AlephError):
    code = ErrorCode.PERMISSION_DENIED


class RateLimited(AlephError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message, {"retry_after_ms": retry_after_ms})


class ResourceNotFound(AlephError):
    code = ErrorCode.RESOURCE_NOT_FOUND

    def __init__(self, resource: str, id: str) -> None:
        super().__init__(f"{resource} not found: {id}", {"resource": resource, "id": id})


class OperationTimeout(AlephError):
    code = ErrorCode.TIMEOUT_ERROR


class ToolError(AlephError):
    code = ErrorCode.TOOL_ERROR


_BY_CODE: dict[int, type[AlephError]] = {
    int(cls.code): cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        AuthRequired,
        AuthFailed,
        PermissionDenied,
        RateLimited,
        ResourceNotFound,
        OperationTimeout,
        ToolError,
    )
}


def error_from_object(obj: dict[str, Any]) -> AlephError:
    """Rebuild the matching exception from a received error object (used by clients)."""
    code = obj.get("code")
    data = obj.get("data")
    cls = _BY_CODE.get(code, AlephError) if isinstance(code, int) else AlephError
    err = cls.__new__(cls)
    AlephError.__init__(err, str(obj.get("message", "")), data if isinstance(data, dict) else None)
    if cls is AlephError and isinstance(code, int):
        err.code = code  # type: ignore[misc]
    return err
