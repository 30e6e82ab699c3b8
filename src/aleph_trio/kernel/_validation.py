"""Strict conversion of JSON-like values into attrs classes, and JSON Schema from the same classes.

One set of declarations (attrs classes whose fields may carry ``msgspec.Meta`` constraints through
``Annotated``) drives both validation and the published schema, so the two cannot drift:

* :func:`convert` builds an instance or raises :class:`ValidationFailed` listing *every* problem
  with its path. Nothing is coerced (``"5"`` is not an integer, ``"false"`` not a boolean) and
  unknown keys are errors, at every depth.
* :func:`json_schema` gives the Draft 2020-12 schema, with ``additionalProperties: false`` on every
  object that comes from an attrs class.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypeVar, Union

import attrs
import msgspec

__all__ = ["PathSegment", "ValidationFailed", "convert", "format_path", "json_schema"]

T = TypeVar("T")
PathSegment = str | int

_JSON_NAMES = {
    "int": "integer",
    "str": "string",
    "bool": "boolean",
    "float": "number",
    "array": "array",
    "object": "object",
    "null": "null",
}


@attrs.frozen
class Problem:
    path: tuple[PathSegment, ...]
    message: str


class ValidationFailed(Exception):
    """Raised by :func:`convert`; ``problems`` lists each error with its path."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{format_path(p.path)}: {p.message}" for p in problems))
        self.problems = problems

    def errors(self, *, root: str = "$") -> list[dict[str, str]]:
        return [
            {"path": format_path(p.path, root=root), "message": p.message} for p in self.problems
        ]


def format_path(path: tuple[PathSegment, ...], *, root: str = "$") -> str:
    """``("a", 1, "b")`` → ``$.a[1].b`` (or ``a[1].b`` with ``root=""``)."""
    out = root
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
    return out


def convert(value: object, cls: type[T]) -> T:
    """Strictly convert ``value`` into attrs class ``cls``, or raise :class:`ValidationFailed`."""
    info = _class_info(cls)
    if isinstance(value, dict) and not info.nested and value.keys() <= info.names:
        try:
            return msgspec.convert(value, cls)
        except msgspec.ValidationError:
            pass
    problems = _collect(value, cls, ())
    if not problems:
        # The collector found nothing the fast path objected to: a constraint msgspec checks on
        # the whole object only. Report msgspec's own words.
        try:
            return msgspec.convert(value, cls)
        except msgspec.ValidationError as exc:
            problems = [_problem_from_msgspec(exc, ())]
    raise ValidationFailed(problems)


@attrs.frozen
class _ClassInfo:
    names: frozenset[str]
    hints: dict[str, Any]
    nested: bool


_CLASS_INFO: dict[type, _ClassInfo] = {}


def _class_info(cls: type) -> _ClassInfo:
    info = _CLASS_INFO.get(cls)
    if info is None:
        info = _CLASS_INFO[cls] = _inspect(cls)
    return info


def _inspect(cls: type) -> _ClassInfo:
    hints = typing.get_type_hints(cls, include_extras=True)
    names = frozenset(f.name for f in attrs.fields(cls))
    nested = any(_mentions_attrs(hints[name]) for name in names)
    return _ClassInfo(names, {n: hints[n] for n in names}, nested)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _mentions_attrs(tp: Any) -> bool:
    tp = _strip(tp)
    if attrs.has(tp):
        return True
    return any(_mentions_attrs(arg) for arg in typing.get_args(tp) if arg is not Ellipsis)


def _collect(value: object, tp: Any, path: tuple[PathSegment, ...]) -> list[Problem]:
    base = _strip(tp)
    origin = typing.get_origin(base)
    if attrs.has(base):
        return _collect_object(value, base, path)
    if origin in (Union, types.UnionType):
        members = typing.get_args(base)
        object_members = [m for m in members if attrs.has(_strip(m))]
        if isinstance(value, dict) and len(object_members) == 1:
            return _collect(value, object_members[0], path)
        if not any(_mentions_attrs(m) for m in members):
            return _leaf(value, tp, path)
        for member in members:
            if not _collect(value, member, path):
                return []
        return [Problem(path, f"expected {_describe(base)}")]
    if origin is dict:
        if not isinstance(value, dict):
            return [Problem(path, f"expected object, got {_json_type(value)}")]
        key_tp, value_tp = typing.get_args(base)
        problems: list[Problem] = []
        for key, item in value.items():
            problems += _leaf(key, key_tp, (*path, str(key)))
            problems += _collect(item, value_tp, (*path, str(key)))
        return problems
    if origin in (list, tuple) and isinstance(value, list):
        problems = _leaf(value, tp, path)  # length constraints on the array itself
        if not problems:
            return []
        item_tp = typing.get_args(base)[0]
        per_item = [p for i, item in enumerate(value) for p in _collect(item, item_tp, (*path, i))]
        return per_item or problems
    return _leaf(value, tp, path)


def _collect_object(value: object, cls: type, path: tuple[PathSegment, ...]) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem(path, f"expected object, got {_json_type(value)}")]
    info = _class_info(cls)
    problems = [
        Problem((*path, str(key)), "unknown field") for key in value if key not in info.names
    ]
    for field in attrs.fields(cls):
        if field.name in value:
            problems += _collect(value[field.name], info.hints[field.name], (*path, field.name))
        elif field.default is attrs.NOTHING:
            problems.append(Problem((*path, field.name), "missing required field"))
    return problems


def _leaf(value: object, tp: Any, path: tuple[PathSegment, ...]) -> list[Problem]:
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        problem = _problem_from_msgspec(exc, path)
        described = _description(tp)
        if "matching regex" in problem.message and described:
            # A regex says little to a person; the field's own description says what is wanted.
            problem = Problem(problem.path, f"expected {described}")
        return [problem]
    return []


def _description(tp: Any) -> str | None:
    """The ``Meta(description=...)`` of ``tp``, also inside ``X | None``."""
    if typing.get_origin(tp) is typing.Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
        return None
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        described = [_description(arg) for arg in typing.get_args(tp) if arg is not type(None)]
        return described[0] if len(described) == 1 else None
    return None


_AT = re.compile(r" - at `\$(?P<rest>.*)`$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_TICKED = re.compile(r"`([a-z |]+)`")


def _problem_from_msgspec(exc: msgspec.ValidationError, path: tuple[PathSegment, ...]) -> Problem:
    text = str(exc)
    extra: list[PathSegment] = []
    match = _AT.search(text)
    if match:
        text = text[: match.start()]
        for name, index in _SEGMENT.findall(match.group("rest")):
            extra.append(int(index) if index else name)
    text = _TICKED.sub(
        lambda m: " or ".join(_JSON_NAMES.get(n, n) for n in m.group(1).split(" | ")), text
    )
    text = text[:1].lower() + text[1:]
    return Problem((*path, *extra), text)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _describe(tp: Any) -> str:
    names = []
    for member in typing.get_args(tp):
        member = _strip(member)
        if member is type(None):
            names.append("null")
        elif attrs.has(member):
            names.append("object")
        else:
            names.append(_JSON_NAMES.get(getattr(member, "__name__", ""), str(member)))
    return " or ".join(names)


def json_schema(cls: type) -> dict[str, Any]:
    """Draft 2020-12 schema of an attrs class, the root inlined, closed to unknown keys."""
    doc = msgspec.json.schema(cls)
    defs: dict[str, Any] = doc.get("$defs", {})
    for definition in defs.values():
        if "properties" in definition:
            definition["additionalProperties"] = False
            definition.pop("title", None)
    root_name = doc["$ref"].rsplit("/", 1)[-1]
    root = dict(defs.pop(root_name))
    if defs:
        root["$defs"] = defs
    return root
