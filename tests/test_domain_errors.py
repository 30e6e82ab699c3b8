"""Services raise domain errors; ``rpc/_errors.py`` turns each into its JSON-RPC error once."""

from __future__ import annotations

import pytest

from aleph_trio.kernel import (
    Conflict,
    ExternalFailure,
    FieldProblem,
    GatewayError,
    InvalidArgument,
    InvalidState,
    LimitReached,
    NotFound,
    OperationFailed,
    TimedOut,
)
from aleph_trio.rpc._errors import wire_error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            NotFound("job", "job_1"),
            {
                "code": -32004,
                "message": "job not found: job_1",
                "data": {"resource": "job", "id": "job_1"},
            },
        ),
        (
            InvalidArgument.field("$.model", "unknown model 'x'"),
            {
                "code": -32602,
                "message": "Invalid params: $.model: unknown model 'x'",
                "data": {"errors": [{"path": "$.model", "message": "unknown model 'x'"}]},
            },
        ),
        (
            Conflict("base_hash is stale", current_hash="abc"),
            {
                "code": -32602,
                "message": "Invalid params: base_hash is stale",
                "data": {"reason": "conflict", "current_hash": "abc"},
            },
        ),
        (
            Conflict.field("$.name", "taken"),
            {
                "code": -32602,
                "message": "Invalid params: $.name: taken",
                "data": {"errors": [{"path": "$.name", "message": "taken"}], "reason": "conflict"},
            },
        ),
        (
            InvalidState("run r has finished"),
            {
                "code": -32602,
                "message": "Invalid params: run r has finished",
                "data": {"reason": "invalid_state"},
            },
        ),
        (
            LimitReached("too many"),
            {"code": -32602, "message": "Invalid params: too many", "data": {"reason": "limit"}},
        ),
        (
            OperationFailed("cannot write exec-approvals.toml: disk full"),
            {
                "code": -32603,
                "message": "Internal error: cannot write exec-approvals.toml: disk full",
            },
        ),
        (TimedOut("no answer in 5 s"), {"code": -32005, "message": "no answer in 5 s"}),
        (
            ExternalFailure("the script threw: Error: x", exception="Error: x\n    at f"),
            {
                "code": -32006,
                "message": "the script threw: Error: x",
                "data": {"exception": "Error: x\n    at f"},
            },
        ),
        (
            GatewayError("something else"),
            {"code": -32603, "message": "Internal error: something else"},
        ),
    ],
)
def test_each_domain_error_has_one_wire_form(
    error: GatewayError, expected: dict[str, object]
) -> None:
    assert wire_error(error).to_object() == expected


def test_many_problems_are_all_listed() -> None:
    problems = [FieldProblem("$.config.allow[0]", "bad"), FieldProblem("$.config.mode", "bad")]
    error = InvalidArgument("$.config.allow[0]: bad", problems=problems)
    assert wire_error(error).to_object()["data"] == {
        "errors": [
            {"path": "$.config.allow[0]", "message": "bad"},
            {"path": "$.config.mode", "message": "bad"},
        ]
    }
