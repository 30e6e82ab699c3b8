"""The errors services raise. They say what went wrong in the domain's terms; ``rpc/`` maps each
class to a JSON-RPC error in one place (``rpc/_errors.py``), so no service builds a wire error.

::

    GatewayError                 a sentence for a person, plus ``details`` for a client
    ├── NotFound          the named thing does not exist          → -32004
    ├── InvalidArgument   a value the caller sent is wrong        → -32602
    │   ├── Conflict      it clashes with what exists             → reason "conflict"
    │   ├── InvalidState  not now: the thing is in the wrong state → reason "invalid_state"
    │   └── LimitReached  a bound would be exceeded               → reason "limit"
    ├── OperationFailed   the gateway could not do it (disk, file) → -32603
    ├── TimedOut          it did not finish in time               → -32005
    └── ExternalFailure   a program it drives failed (a browser script threw) → -32006

``ErrorCode`` is re-exported for the payloads that carry a code (``agent.error``, a run's
``error_code``); those numbers are part of the event vocabulary, not a wire framing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import attrs

from ..protocol._codes import ErrorCode

__all__ = [
    "Conflict",
    "ErrorCode",
    "ExternalFailure",
    "FieldProblem",
    "GatewayError",
    "InvalidArgument",
    "InvalidState",
    "LimitReached",
    "NotFound",
    "OperationFailed",
    "TimedOut",
]


@attrs.frozen
class FieldProblem:
    """One wrong value: where (a JSON path such as ``$.model``) and what is wrong with it."""

    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class GatewayError(Exception):
    """Base of the errors services raise on purpose."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        #: Extra facts for a client (``current_hash``, ...), passed on as error data.
        self.details = details


class NotFound(GatewayError):
    def __init__(self, resource: str, id: str) -> None:
        super().__init__(f"{resource} not found: {id}")
        self.resource = resource
        self.id = id


class InvalidArgument(GatewayError):
    """``problems`` name the fields at fault; the message alone when no single field is."""

    reason: str | None = None

    def __init__(
        self, message: str, *, problems: Sequence[FieldProblem] = (), **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.problems = tuple(problems)

    @classmethod
    def field(cls, path: str, message: str, **details: Any) -> Self:
        """One field at fault: ``"<path>: <message>"``."""
        return cls(f"{path}: {message}", problems=[FieldProblem(path, message)], **details)


class Conflict(InvalidArgument):
    reason = "conflict"


class InvalidState(InvalidArgument):
    reason = "invalid_state"


class LimitReached(InvalidArgument):
    reason = "limit"


class OperationFailed(GatewayError):
    pass


class TimedOut(GatewayError):
    pass


class ExternalFailure(GatewayError):
    """A program the gateway drives failed or went away (the browser, a script in it)."""
