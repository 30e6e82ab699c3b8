"""JSON-RPC error codes: the standard ones and the gateway's own (PROTOCOL §3)."""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    AUTH_REQUIRED = -32000
    AUTH_FAILED = -32001
    PERMISSION_DENIED = -32002
    RATE_LIMITED = -32003
    RESOURCE_NOT_FOUND = -32004
    TIMEOUT_ERROR = -32005
    TOOL_ERROR = -32006
