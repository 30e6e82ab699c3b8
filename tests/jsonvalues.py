"""Hypothesis strategies for JSON values, shared by the fuzz tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

finite_floats = st.floats(allow_nan=False, allow_infinity=False)


def json_values(
    *,
    ints: st.SearchStrategy[int],
    text_size: int,
    key_size: int,
    width: int,
    leaves: int,
) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any], st.SearchStrategy[dict[str, Any]]]:
    """(scalars, any JSON value, JSON objects) with the given size bounds."""
    scalars = st.one_of(st.none(), st.booleans(), ints, finite_floats, st.text(max_size=text_size))
    values = st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=width),
            st.dictionaries(st.text(max_size=key_size), children, max_size=width),
        ),
        max_leaves=leaves,
    )
    objects = st.dictionaries(st.text(max_size=key_size), values, max_size=width)
    return scalars, values, objects


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def same_json(a: object, b: object) -> bool:
    """Equality of decoded JSON that does not confuse ``1``, ``1.0`` and ``True``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_int(a) or _is_int(b):
        return _is_int(a) and _is_int(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
