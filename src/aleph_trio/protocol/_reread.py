"""Naming the fault when msgspec refuses a frame that is JSON as far as the grammar goes.

msgspec stops at the first thing it cannot represent and says so in its own terms: a lone
``\\ud800`` at the end of a string reads as "Input data was truncated", an integer of more than
4300 digits as "Integer value out of range". The standard library's decoder accepts both, so a
refused frame is read again with it (only then, so the fast path pays nothing) to find the real
fault and its place:

- an unpaired UTF-16 surrogate in a string or a member name: a parse error naming it;
- an integer too long to read as the ``id`` of a request: handed back as :class:`HugeInt` so that
  only that request is invalid (``-32600``), as any other id past the limit;
- such an integer anywhere else: a parse error naming its place.

Anything else keeps msgspec's message.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import attrs

from ._errors import ParseError

__all__ = ["HugeInt", "reread"]

_SURROGATE = re.compile("[\ud800-\udfff]")


@attrs.frozen
class HugeInt:
    """An integer the runtime refuses to read (``sys.get_int_max_str_digits()``)."""

    digits: int


def reread(text: str | bytes, first: BaseException) -> object:
    """The document with unreadable integers as :class:`HugeInt`, or the :class:`ParseError`
    that names what is wrong with it."""
    try:
        doc = json.loads(text, parse_int=_parse_int, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return ParseError(f"Parse error: {_short(first)}")
    try:
        fault = _find_fault(doc, "$", ids=True)
    except RecursionError:
        return ParseError("Parse error: nesting too deep")
    if fault is not None:
        return ParseError(f"Parse error: {fault}")
    if not _has_huge_id(doc):
        return ParseError(f"Parse error: {_short(first)}")  # the decoders disagree otherwise
    return doc


def _parse_int(digits: str) -> int | HugeInt:
    limit = sys.get_int_max_str_digits()
    if limit and len(digits) > limit:  # msgspec counts the sign too; int() does not
        return HugeInt(len(digits.lstrip("-")))
    return int(digits)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _find_fault(value: object, path: str, *, ids: bool) -> str | None:
    """The first unpaired surrogate or unreadable integer (other than a request's ``id``)."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        if found is not None:
            return f"the text contains an unpaired surrogate ({_escape(found[0])}) at {path}"
    elif isinstance(value, HugeInt):
        return f"the integer at {path} is too long to read ({value.digits} digits)"
    elif isinstance(value, list):
        for i, item in enumerate(value):
            # A batch's elements are requests too; deeper arrays hold no ids.
            fault = _find_fault(item, f"{path}[{i}]", ids=ids and path == "$")
            if fault is not None:
                return fault
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _SURROGATE.search(key)
            if found is not None:
                where = f"in a member name at {path}"
                return f"the text contains an unpaired surrogate ({_escape(found[0])}) {where}"
            if ids and key == "id" and isinstance(item, HugeInt):
                continue
            fault = _find_fault(item, _member(path, key), ids=False)
            if fault is not None:
                return fault
    return None


def _has_huge_id(doc: object) -> bool:
    elements: list[Any] = doc if isinstance(doc, list) else [doc]
    return any(isinstance(e, dict) and isinstance(e.get("id"), HugeInt) for e in elements)


def _member(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _escape(unit: str) -> str:
    return f"\\u{ord(unit):04x}"


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text[:200] if text else type(exc).__name__
