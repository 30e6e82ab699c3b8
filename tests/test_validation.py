"""Strict params decoding and the schema generated from the same declarations."""

from __future__ import annotations

from typing import Annotated

import attrs
import pytest
from msgspec import Meta

from aleph_trio.kernel import ValidationFailed, convert, json_schema


@attrs.frozen
class Inner:
    name: str


@attrs.frozen
class Params:
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    follow: bool = False
    ratio: float = 0.5
    tags: tuple[str, ...] = ()
    inner: Inner | None = None


def problems(value: object) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        convert(value, Params)
    return info.value.errors()


def test_defaults_and_exact_types() -> None:
    assert convert({}, Params) == Params()
    assert convert({"limit": 5, "ratio": 1, "inner": {"name": "x"}}, Params) == Params(
        limit=5, ratio=1.0, inner=Inner("x")
    )


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({"limit": "5"}, "$.limit", "expected integer, got string"),
        ({"follow": "false"}, "$.follow", "expected boolean, got string"),
        ({"limit": True}, "$.limit", "expected integer, got boolean"),
        ({"limit": 5.0}, "$.limit", "expected integer, got number"),
        ({"limit": 0}, "$.limit", "expected integer >= 1"),
        ({"tags": ["a", 1]}, "$.tags[1]", "expected string, got integer"),
        ({"inner": {"name": 1}}, "$.inner.name", "expected string, got integer"),
        ({"inner": {"name": "x", "typo": 1}}, "$.inner.typo", "unknown field"),
        ({"inner": {}}, "$.inner.name", "missing required field"),
    ],
)
def test_each_problem_has_a_path(value: object, path: str, message: str) -> None:
    assert {"path": path, "message": message} in problems(value)


def test_every_problem_is_listed() -> None:
    found = problems({"limit": "5", "follow": 1, "typo": True})
    assert {p["path"] for p in found} == {"$.limit", "$.follow", "$.typo"}


def test_schema_is_closed_and_carries_constraints() -> None:
    schema = json_schema(Params)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["limit"]["minimum"] == 1
    assert schema["properties"]["limit"]["maximum"] == 1000
    assert schema["$defs"]["Inner"]["additionalProperties"] is False
    assert schema["$defs"]["Inner"]["required"] == ["name"]
