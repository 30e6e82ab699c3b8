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
