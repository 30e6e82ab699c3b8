"""Property-based tests of the whole gateway, in process, over a raw WebSocket (PROTOCOL §2-3).

Each example opens a fresh gateway, connects one raw WebSocket client to it, pushes a random
sequence of frames through it and then checks what came back:

* every request with an id is answered exactly once, with a well-formed JSON-RPC 2.0 response
  (``jsonrpc`` "2.0", the same id, exactly one of ``result``/``error``, an integer code and a
  string message); a batch is answered with one array, or not at all when it held only
  notifications;
* notifications are never answered, not even when their params are wrong;
* nothing ever yields -32603, and the gateway still answers ``health`` afterwards.

Params come from each registered method's own JSON Schema (``method.schema``, read from
``gateway.registry``), valid ones and deliberately broken ones.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio_websocket
from hypothesis import Phase, assume, given, settings, strategies as st

from aleph_trio import Config, Gateway, open_gateway
from aleph_trio.kernel import BrowserConfig
from aleph_trio.protocol import ErrorCode
from aleph_trio.server._connection import PRE_AUTH_MAX_MESSAGE
from jsonvalues import finite_floats, json_values as json_values_of, same_json

PARSE_ERROR = int(ErrorCode.PARSE_ERROR)
INVALID_REQUEST = int(ErrorCode.INVALID_REQUEST)
METHOD_NOT_FOUND = int(ErrorCode.METHOD_NOT_FOUND)
INVALID_PARAMS = int(ErrorCode.INVALID_PARAMS)
INTERNAL_ERROR = int(ErrorCode.INTERNAL_ERROR)
AUTH_REQUIRED = int(ErrorCode.AUTH_REQUIRED)
AUTH_FAILED = int(ErrorCode.AUTH_FAILED)
RESOURCE_NOT_FOUND = int(ErrorCode.RESOURCE_NOT_FOUND)

#: Methods whose handlers reject some schema-valid params on purpose (PROTOCOL §6.3, §6.4, §9,
#: §18): pattern syntax and the 64-pattern limit, since_seq beyond the head, unknown log
#: components, an invalid config file.
SEMANTIC_CHECKS = frozenset(
    {
        "events.subscribe",
        "logs.set_level",
        "config.reload",
        "session.list",
        "agent.run",  # blank message, unknown model
        "chat.send",  # blank message
        "agent.respondToInput",  # the run has finished
        "session.compact",  # a run holds the session
        "exec.approval.request",  # blank command, missing cwd
        "exec.approval.resolve",  # already resolved
        "exec.approvals.set",  # stale base_hash, invalid policy
        "cron.create",  # schedule, time zone, model, blank name or prompt, a taken name
        "identity.set",  # no field, a blank name or persona, a new id without name or persona
        "guests.createInvitation",  # expires: a time that has passed, or not a time
        "skills.install",  # a source that is no skill, or not there
        "markdown_skills.load",  # a path that is no markdown skill, or not there
        "wizard.start",  # an unknown wizard type, its initial_data, setup without a config file
        "plugins.load",  # a path that is not a plugin
        "workspace.create",  # blank or taken name, unknown agent, model or tool, relative path
        "workspace.update",  # neither config nor status, unknown agent, model or tool
        "poe.run",  # the spec's fields and rules
        "poe.prepare",  # the spec's fields and rules
        "browser.navigate",  # a scheme not allowed, a denied host
        "browser.click",  # a target naming none or two of selector, ref, text, point
        "browser.type",
        "browser.screenshot",
    }
)
#: Methods that name a stored resource which random params will rarely hit: -32004 is right.
NAMES_A_RESOURCE = frozenset(
    {
        "session.history",
        "session.delete",
        "session.compact",
        "memory.delete",
        "models.get",
        "models.capabilities",
        "agent.run",  # agent_id
        "agent.status",
        "agent.cancel",
        "agent.respondToInput",
        "chat.send",  # the session key names an agent
        "chat.abort",
        "exec.approval.request",  # agent_id
        "exec.approval.resolve",
        "cron.create",  # agent_id
        "cron.get",
        "cron.delete",
        "cron.trigger",
        "cron.pause",
        "cron.resume",
        "guests.revokeInvitation",
        "markdown_skills.reload",
        "markdown_skills.unload",
        "wizard.answer",
        "wizard.next",
        "wizard.cancel",
        "wizard.status",
        "workspace.get",
        "workspace.update",
        "workspace.archive",
        "services.start",
        "services.stop",
        "services.status",
        "mcp.respond_approval",
        "mcp.cancel_approval",
        "plugins.unload",
        "plugins.enable",
        "plugins.disable",
        "plugins.status",
        "poe.run",  # agent_id
        "poe.prepare",  # the spec's agent_id
        "poe.sign",
        "poe.reject",
        "poe.status",
        "poe.cancel",
        "browser.click",  # a ref not in the last snapshot
        "browser.type",
        "browser.screenshot",
    }
)

#: Methods that drive an external program: the gateway here has no browser (its executable does
#: not exist), so schema-valid params get -32006 at once, and no page or name is ever looked up.
EXTERNAL = frozenset(
    {
        "browser.navigate",
        "browser.click",
        "browser.type",
        "browser.screenshot",
        "browser.evaluate",
        "browser.snapshot",
    }
)
TOOL_ERROR = int(ErrorCode.TOOL_ERROR)

#: Wait for anything from the gateway at most this long (everything here is in memory).
WAIT_S = 5.0

#: Every phase but "explain": it re-runs failing examples under a line tracer, which with a
#: gateway per example takes minutes and ends in pytest's timeout instead of a report.
PHASES = tuple(phase for phase in Phase if phase is not Phase.explain)


def examples(fraction: float) -> int:
    """A share of the loaded profile's ``max_examples`` (each example starts a whole gateway)."""
    profile = settings.default
    assert profile is not None
    return max(1, round(profile.max_examples * fraction))


#: Placeholder replaced by the gateway's owner token when a frame is sent.
OWNER_TOKEN = "\x00owner-token\x00"

# -- JSON values --------------------------------------------------------------------------------

big_ints = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(10**40), max_value=10**40),
)
json_scalars, json_values, json_objects = json_values_of(
    ints=big_ints, text_size=12, key_size=8, width=4, leaves=12
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_int(value):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# -- JSON Schema → strategies -------------------------------------------------------------------

#: Collection sizes drawn for arrays and open objects (a schema's own bounds still apply).
MAX_ITEMS = 4
MAX_TEXT = 16

#: A JSON-Schema pattern uses ECMA-262 semantics: ``$`` only matches at the very end.
ECMA_DOLLAR = re.compile(r"(?<!\\)\$$")


def pattern_matches(pattern: str, text: str) -> bool:
    """Does ``text`` match ``pattern`` the way a JSON Schema validator reads it (no ``$``-before-newline)?"""
    return re.search(ECMA_DOLLAR.sub(r"\\Z", pattern), text) is not None


@attrs.frozen
class Mutation:
    """Params made invalid at ``path`` (a tuple of keys and indexes) in the way ``what`` says."""

    value: object
    path: tuple[str | int, ...]
    what: str


class SchemaStrategies:
    """Strategies for the subset of JSON Schema (draft 2020-12) that msgspec emits here.

    ``hints`` maps a path (a tuple of property names, ``"*"`` for any key or index) to a strategy
    that replaces the schema's one for valid values, for fields whose useful values are a tiny
    part of what the schema allows (component names, topic patterns).
    """

    def __init__(
        self,
        root: dict[str, Any],
        hints: dict[tuple[str, ...], st.SearchStrategy[Any]] | None = None,
    ) -> None:
        self.root = root
        self.defs: dict[str, Any] = root.get("$defs", {})
        self.hints = hints or {}
        self._memo: dict[tuple[str, tuple[str, ...]], st.SearchStrategy[Any]] = {}

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            ref = schema["$ref"]
            assert ref.startswith("#/$defs/"), ref
            schema = self.defs[ref[len("#/$defs/") :]]
        return schema

    # valid values ------------------------------------------------------------------------------

    def valid(self, schema: dict[str, Any], path: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
        key = (json.dumps(schema, sort_keys=True), path)
        strategy = self._memo.get(key)
        if strategy is None:
            strategy = self._memo[key] = self._valid(schema, path)
        return strategy

    def _valid(self, schema: dict[str, Any], path: tuple[str, ...]) -> st.SearchStrategy[Any]:
        hint = self.hints.get(path)
        if hint is not None:
            return hint
        schema = self.resolve(schema)
        if "anyOf" in schema:
            return st.one_of([self.valid(s, path) for s in schema["anyOf"]])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.valid({**schema, "type": k}, path) for k in kind])
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            low, high = self._int_bounds(schema)
            return st.integers(min_value=low, max_value=high)
        if kind == "number":
            low, high = self._int_bounds(schema)
            floats = st.floats(
                min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
                max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
                exclude_min="exclusiveMinimum" in schema,
                exclude_max="exclusiveMaximum" in schema,
                allow_nan=False,
                allow_infinity=False,
            )
            if low is not None and high is not None and low > high:
                return floats
            return st.one_of(floats, st.integers(min_value=low, max_value=high))
        if kind == "string":
            min_len: int = schema.get("minLength", 0)
            max_len: int | None = schema.get("maxLength")
            cap = max(min_len, MAX_TEXT)
            if max_len is not None:
                cap = min(max_len, cap)
            if "pattern" in schema:
                pattern = schema["pattern"]

                def fits(text: str) -> bool:
                    if not min_len <= len(text) <= (len(text) if max_len is None else max_len):
                        return False
                    return pattern_matches(pattern, text)

                return st.from_regex(pattern, fullmatch=True).filter(fits)
            return st.text(min_size=min_len, max_size=cap)
        if kind == "array":
            low = schema.get("minItems", 0)
            high = schema.get("maxItems")
            cap = max(low, MAX_ITEMS) if high is None else min(high, max(low, MAX_ITEMS))
            items = self.valid(schema.get("items", {}), (*path, "*"))
            return st.lists(items, min_size=low, max_size=cap)
        if kind == "object" or "properties" in schema:
            return self._valid_object(schema, path)
        return json_values  # no constraint at all

    @staticmethod
    def _int_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
        low = schema.get("minimum")
        if "exclusiveMinimum" in schema:
            low = int(schema["exclusiveMinimum"]) + 1
        high = schema.get("maximum")
        if "exclusiveMaximum" in schema:
            high = int(schema["exclusiveMaximum"]) - 1
        return (None if low is None else int(low)), (None if high is None else int(high))

    def _valid_object(
        self, schema: dict[str, Any], path: tuple[str, ...]
    ) -> st.SearchStrategy[Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        extra = schema.get("additionalProperties", True)
        if not properties and extra is True:
            return json_objects
        fields = [
            (name, name in required, self.valid(sub, (*path, name)))
            for name, sub in properties.items()
        ]
        more: st.SearchStrategy[dict[str, Any]] = st.just({})
        if isinstance(extra, dict):
            names = schema.get("propertyNames")
            keys = (
                self.valid({"type": "string", **names}, (*path, "*"))  # keys are strings
                if names
                else st.text(max_size=8)
            )
            more = st.dictionaries(keys, self.valid(extra, (*path, "*")), max_size=3)
        elif extra is True:
            more = json_objects
        return _object_of(fields, more)

    # wrong values ------------------------------------------------------------------------------

    def allowed_types(self, schema: dict[str, Any]) -> set[str]:
        """JSON types a value may have under ``schema`` (``enum`` counts as its members' types)."""
        schema = self.resolve(schema)
        if "anyOf" in schema:
            return set().union(*(self.allowed_types(s) for s in schema["anyOf"]))
        if "enum" in schema:
            return {json_type(v) for v in schema["enum"]}
        kind = schema.get("type")
        if kind is None:
            return {"object"} if "properties" in schema else set(_TYPES)
        kinds = set(kind) if isinstance(kind, list) else {kind}
        if "number" in kinds:
            kinds.add("integer")
        return kinds

    def wrong_here(self, schema: dict[str, Any]) -> st.SearchStrategy[tuple[object, str]]:
        """Values invalid under ``schema`` at its own level, each with a short description."""
        key = ("wrong:" + json.dumps(schema, sort_keys=True), ())
        strategy = self._memo.get(key)
        if strategy is None:
            strategy = self._memo[key] = self._wrong_here(schema)
        return strategy

    def _wrong_here(self, schema: dict[str, Any]) -> st.SearchStrategy[tuple[object, str]]:
        schema = self.resolve(schema)
        allowed = self.allowed_types(schema)
        options: list[st.SearchStrategy[tuple[object, str]]] = []
        for name, strategy in _TYPES.items():
            if name not in allowed:
                options.append(strategy.map(_described(f"a {name}")))
        if "integer" in allowed and "number" not in allowed and "string" not in allowed:
            # Strings are never coerced into numbers (PROTOCOL §2), nor fractions into integers.
            options.append(big_ints.map(lambda v: (str(v), "a numeric string")))
            options.append(
                st.floats(allow_nan=False, allow_infinity=False)
                .filter(lambda f: not f.is_integer())
                .map(lambda v: (v, "a fraction"))
            )
        if "boolean" in allowed and "string" not in allowed:
            options.append(
                st.sampled_from(["true", "false", "1", "0"]).map(lambda v: (v, "a boolean string"))
            )
        branches = schema.get("anyOf", [schema])
        for branch in branches:
            others = set().union(*(self.allowed_types(b) for b in branches if b is not branch))
            if not self.allowed_types(branch) & others:
                options += self._out_of_range(self.resolve(branch))
        if "enum" in schema:
            enum = schema["enum"]
            options.append(
                st.text(max_size=12)
                .filter(lambda s: s not in enum)
                .map(lambda v: (v, "not in the enum"))
            )
        return st.one_of(options)

    def _out_of_range(self, schema: dict[str, Any]) -> list[st.SearchStrategy[tuple[object, str]]]:
        out: list[st.SearchStrategy[tuple[object, str]]] = []
        kind = schema.get("type")
        if kind == "integer":
            low, high = self._int_bounds(schema)
            if low is not None:
                out.append(
                    st.integers(max_value=low - 1, min_value=low - 2**70).map(
                        lambda v: (v, "below minimum")
                    )
                )
            if high is not None:
                out.append(
                    st.integers(min_value=high + 1, max_value=high + 2**70).map(
                        lambda v: (v, "above maximum")
                    )
                )
        if kind == "number":
            if "exclusiveMinimum" in schema:
                bound = schema["exclusiveMinimum"]
                out.append(
                    st.sampled_from([bound, bound - 1, -1e300]).map(
                        lambda v: (v, "not above the exclusive minimum")
                    )
                )
            if "minimum" in schema:
                bound = schema["minimum"]
                out.append(
                    st.sampled_from([bound - 0.5, bound - 1, -1e300]).map(
                        lambda v: (v, "below minimum")
                    )
                )
            if "maximum" in schema:
                bound = schema["maximum"]
                out.append(
                    st.sampled_from([bound + 0.5, bound + 1, 1e300]).map(
                        lambda v: (v, "above maximum")
                    )
                )
        if kind == "string":
            if schema.get("minLength", 0) > 0:
                low = schema["minLength"]
                out.append(st.text(max_size=low - 1).map(lambda v: (v, "too short")))
            if "maxLength" in schema:
                high = schema["maxLength"]
                out.append(st.integers(high + 1, high + 5).map(lambda n: ("x" * n, "too long")))
            if "pattern" in schema:
                pattern = schema["pattern"]
                out.append(
                    st.text(min_size=1, max_size=8)
                    .filter(lambda s: not pattern_matches(pattern, s))
                    .map(lambda v: (v, "not matching the pattern"))
                )
        if kind == "array":
            if schema.get("minItems", 0) > 0:
                out.append(st.just(([], "too few items")))
            if "maxItems" in schema:
                item = self.valid(schema.get("items", {}), ("?",))
                high = schema["maxItems"]
                out.append(
                    st.lists(item, min_size=high + 1, max_size=high + 1).map(
                        lambda v: (v, "too many items")
                    )
                )
        return out

    def mutate(self, schema: dict[str, Any], value: object) -> st.SearchStrategy[Mutation]:
        """``value`` (valid under ``schema``) broken in exactly one place."""

        return _mutation_of(self, schema, value)

    def _branch(self, schema: dict[str, Any], value: object) -> dict[str, Any]:
        """The member of an ``anyOf`` that ``value`` was drawn from (by its JSON type)."""
        schema = self.resolve(schema)
        for branch in schema.get("anyOf", []):
            if json_type(value) in self.allowed_types(branch):
                return self._branch(branch, value)
        return schema

    def _mutate(
        self,
        draw: st.DrawFn,
        schema: dict[str, Any],
        value: object,
        path: tuple[str | int, ...],
        *,
        root: bool = False,
    ) -> Mutation:
        whole = schema
        schema = self._branch(schema, value)
        # At the root, a non-object is a frame-level problem (params) or another field's (config).
        choices = [] if root else ["here"]
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if isinstance(value, dict):
            if any(k in properties or isinstance(extra, dict) for k in value):
                choices += ["inside", "inside"]
            if extra is False:
                choices.append("unknown key")
            if any(k in value for k in schema.get("required", [])):
                choices.append("missing")
        if isinstance(value, list) and value and "items" in schema:
            choices += ["item", "item"]
        choice = draw(st.sampled_from(choices))
        if choice == "inside":
            assert isinstance(value, dict)
            keys = sorted(k for k in value if k in properties or isinstance(extra, dict))
            key = draw(st.sampled_from(keys))
            sub = properties.get(key, extra)
            inner = self._mutate(draw, sub, value[key], (*path, key))
            return attrs.evolve(inner, value={**value, key: inner.value})
        if choice == "item":
            assert isinstance(value, list)
            index = draw(st.integers(0, len(value) - 1))
            inner = self._mutate(draw, schema["items"], value[index], (*path, index))
            return attrs.evolve(inner, value=[*value[:index], inner.value, *value[index + 1 :]])
        if choice == "unknown key":
            assert isinstance(value, dict)
            key = draw(_KEYS)
            if key in properties:
                key = "x" + key + "?"
            return Mutation({**value, key: draw(json_scalars)}, (*path, key), "an unknown key")
        if choice == "missing":
            assert isinstance(value, dict)
            key = draw(st.sampled_from(sorted(k for k in schema["required"] if k in value)))
            return Mutation(
                {k: v for k, v in value.items() if k != key}, (*path, key), "a missing required key"
            )
        wrong, what = draw(self.wrong_here(whole))
        return Mutation(wrong, path, what)


def _described(what: str) -> Callable[[object], tuple[object, str]]:
    def describe(value: object) -> tuple[object, str]:
        return value, what

    return describe


@st.composite
def _object_of(
    draw: st.DrawFn,
    fields: list[tuple[str, bool, st.SearchStrategy[Any]]],
    more: st.SearchStrategy[dict[str, Any]],
) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name, required, strategy in fields:
        if required or draw(st.booleans()):
            doc[name] = draw(strategy)
    for key, value in draw(more).items():
        doc.setdefault(key, value)
    return doc


@st.composite
def _mutation_of(
    draw: st.DrawFn, strategies: SchemaStrategies, schema: dict[str, Any], value: object
) -> Mutation:
    return strategies._mutate(draw, schema, value, (), root=True)


_KEYS = st.text(min_size=1, max_size=10)

_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": big_ints,
    "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    "string": st.text(max_size=8),
    "array": st.lists(json_scalars, max_size=3),
    "object": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
}


def format_path(path: tuple[str | int, ...], root: str = "$") -> str:
    out = root
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
    return out


# -- per-method strategies ----------------------------------------------------------------------

TOPIC_PATTERNS = st.from_regex(
    r"(\*\*|[A-Za-z0-9_*-]{1,8})(\.(\*\*|[A-Za-z0-9_*-]{1,8})){0,3}", fullmatch=True
)


def _hints(name: str) -> dict[tuple[str, ...], st.SearchStrategy[Any]]:
    if name == "logs.set_level":
        known = ["gateway", "server", "auth", "events", "config", "rpc"]
        return {("component",): st.one_of(st.sampled_from(known), st.text(min_size=1, max_size=64))}
    if name == "events.subscribe":
        return {
            ("patterns", "*"): st.one_of(TOPIC_PATTERNS, TOPIC_PATTERNS, st.text(max_size=10)),
            ("since_seq",): st.one_of(st.none(), st.integers(0, 3), st.integers(min_value=0)),
        }
    if name == "events.unsubscribe":
        return {("patterns", "*"): st.one_of(TOPIC_PATTERNS, st.text(max_size=10))}
    return {}


@functools.cache
def method_strategies(name: str, schema_json: str) -> SchemaStrategies:
    return SchemaStrategies(json.loads(schema_json), _hints(name))


@attrs.frozen
class MethodInfo:
    name: str
    schema: dict[str, Any]
    has_params_class: bool

    @property
    def strategies(self) -> SchemaStrategies:
        return method_strategies(self.name, json.dumps(self.schema, sort_keys=True))


#: Parameters never drawn: a random absolute ``path`` would create that directory on this disk.
UNDRAWN = {"workspace.create": ("path",)}


def methods_of(gateway: Gateway) -> list[MethodInfo]:
    return [
        MethodInfo(m.name, _drawable(m.name, m.schema), m.params is not None)
        for m in gateway.registry
    ]


def _drawable(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    left_out = UNDRAWN.get(name, ())
    if not left_out:
        return schema
    properties = {k: v for k, v in schema["properties"].items() if k not in left_out}
    return {**schema, "properties": properties}


# -- what a reply must look like ----------------------------------------------------------------

Check = Callable[[dict[str, Any]], str | None]


def short(doc: object, limit: int = 300) -> str:
    text = dumps(doc) if not isinstance(doc, str) else doc
    return text if len(text) <= limit else text[:limit] + "…"


def response_problem(doc: object) -> str | None:
    """Why ``doc`` is not a well-formed JSON-RPC 2.0 response (``None`` when it is one)."""
    if not isinstance(doc, dict):
        return f"a response must be an object, got {json_type(doc)}"
    if doc.get("jsonrpc") != "2.0":
        return f'"jsonrpc" must be "2.0": {short(doc)}'
    if "id" not in doc:
        return f'a response must have an "id": {short(doc)}'
    id_ = doc["id"]
    if not (id_ is None or isinstance(id_, str) or _is_int(id_)):
        return f"bad id type in {short(doc)}"
    if ("result" in doc) == ("error" in doc):
        return f"exactly one of result/error expected: {short(doc)}"
    if set(doc) - {"jsonrpc", "id", "result", "error"}:
        return f"unexpected members in {short(doc)}"
    if "error" in doc:
        error = doc["error"]
        if not isinstance(error, dict):
            return f"error must be an object: {short(doc)}"
        if not _is_int(error.get("code")):
            return f"error.code must be an integer: {short(doc)}"
        if not isinstance(error.get("message"), str) or not error["message"]:
            return f"error.message must be a non-empty string: {short(doc)}"
        if set(error) - {"code", "message", "data"}:
            return f"unexpected members in error: {short(doc)}"
        if error["code"] == INTERNAL_ERROR:
            return f"internal error: {short(doc)}"
    return None


def id_key(id_: object) -> tuple[str, object]:
    return (json_type(id_), id_)


@attrs.frozen
class Expect:
    """One response the gateway owes: its id and what it may say."""

    id: object
    what: str
    check: Check
    #: ``"frame"``: decided while parsing the frame, so the same before authentication;
    #: ``"call"``: decided by running the call.
    stage: str = "call"

    def problem(self, reply: dict[str, Any]) -> str | None:
        if not same_json(reply.get("id"), self.id):
            return f"id {reply.get('id')!r} instead of {self.id!r}"
        problem = self.check(reply)
        return None if problem is None else f"{self.what}: {problem}"


def expect_error(*codes: int, path: str | None = None, message: str | None = None) -> Check:
    def check(reply: dict[str, Any]) -> str | None:
        if "error" not in reply:
            return f"expected error {codes}, got a result {reply.get('result')!r}"
        error = reply["error"]
        if error["code"] not in codes:
            return f"expected error {codes}, got {error!r}"
        if message is not None and error["message"] != message:
            return f"expected message {message!r}, got {error['message']!r}"
        if path is not None:
            data = error.get("data")
            errors = data.get("errors") if isinstance(data, dict) else None
            if not isinstance(errors, list) or not errors:
                return f"expected error.data.errors listing {path!r}, got {error!r}"
            for entry in errors:
                if not (
                    isinstance(entry, dict)
                    and isinstance(entry.get("path"), str)
                    and isinstance(entry.get("message"), str)
                ):
                    return f"malformed entry in error.data.errors: {entry!r}"
            if path not in [e["path"] for e in errors]:
                return f"expected {path!r} among the paths of {errors!r}"
        return None

    return check


def expect_result(
    check_result: Callable[[Any], str | None] | None = None, *, or_codes: tuple[int, ...] = ()
) -> Check:
    def check(reply: dict[str, Any]) -> str | None:
        if "error" in reply:
            if reply["error"]["code"] in or_codes:
                return None
            return f"expected a result, got error {reply['error']!r}"
        if check_result is not None:
            return check_result(reply["result"])
        return None

    return check


def echo_of(params: object) -> Callable[[Any], str | None]:
    expected = {} if params is None else params

    def check(result: Any) -> str | None:
        return None if same_json(result, expected) else f"echo answered {result!r} for {expected!r}"

    return check


def _health_ok(result: Any) -> str | None:
    if not (isinstance(result, dict) and result.get("status") == "ok"):
        return f"unhealthy: {result!r}"
    return None


def _connect_ok(result: Any) -> str | None:
    if not (
        isinstance(result, dict)
        and result.get("authenticated") is True
        and result.get("role") == "owner"
    ):
        return f"connect did not authenticate as owner: {result!r}"
    return None


RESULT_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "health": _health_ok,
    "connect": _connect_ok,
}


# -- frames -------------------------------------------------------------------------------------


@attrs.frozen
class Frame:
    """One WebSocket message to send and the answer it is owed.

    ``expects`` is ``None`` when no answer at all may come; a batch owes one array holding one
    response per entry of ``expects``.
    """

    payload: str | bytes
    batch: bool
    expects: tuple[Expect, ...] | None
    note: str

    def resolved(self, token: str) -> str | bytes:
        if isinstance(self.payload, str):
            return self.payload.replace(json.dumps(OWNER_TOKEN)[1:-1], token)
        return self.payload


@attrs.frozen
class Element:
    """One request, notification or invalid object, as it goes into a frame."""

    doc: object
    expect: Expect | None  # None: never answered
    note: str


class FrameBuilder:
    """Draws elements and frames; ids are unique within one builder (one example)."""

    def __init__(self, draw: st.DrawFn, methods: list[MethodInfo]) -> None:
        self.draw = draw
        self.methods = methods
        self.names = {m.name for m in methods}
        self.counter = 0
        self.bad_tokens = 0

    def new_id(self) -> object:
        self.counter += 1
        n = self.counter
        form = self.draw(
            st.sampled_from(["int", "int", "str", "str", "big", "neg", "null"]), label="id form"
        )
        if form == "int":
            return n
        if form == "neg":
            return -n
        if form == "big":
            return self.draw(st.sampled_from([2**64 + n, -(2**70) - n, 10**30 + n]), label="big id")
        if form == "str":
            return f"r{n}:" + self.draw(st.text(max_size=6), label="id text")
        return None

    def params_for(self, method: MethodInfo) -> tuple[str, object, Mutation | None]:
        """(mode, params or ABSENT, mutation) for a call of ``method``."""
        draw = self.draw
        modes = ["valid", "valid", "valid", "absent", "wrong", "wrong", "wrong", "array", "other"]
        mode = draw(st.sampled_from(modes), label="params mode")
        if mode == "absent" and method.name == "connect":
            # no params: an empty token, a failed connect that counts against the limit
            if self.bad_tokens < 3:
                self.bad_tokens += 1
            else:
                mode = "valid"
        if mode == "absent":
            return mode, ABSENT, None
        if mode == "array":
            return mode, draw(st.lists(json_values, max_size=3), label="array params"), None
        if mode == "other":
            return (
                mode,
                draw(
                    st.one_of(
                        st.none(), st.booleans(), big_ints, finite_floats, st.text(max_size=6)
                    )
                ),
                None,
            )
        valid = draw(method.strategies.valid(method.schema), label=f"{method.name} params")
        if method.name == "connect":
            valid = self._connect_token(valid)
        if mode == "valid" or not method.has_params_class:
            return "valid", valid, None
        mutation = draw(
            method.strategies.mutate(method.schema, valid), label=f"{method.name} broken"
        )
        return mode, mutation.value, mutation

    def _connect_token(self, params: dict[str, Any]) -> dict[str, Any]:
        # Five failed connects close the connection (PROTOCOL §4): stay below that.
        if self.bad_tokens < 3 and self.draw(st.integers(0, 4), label="bad token") == 0:
            self.bad_tokens += 1
            return {**params, "token": "wrong-" + str(params.get("token", ""))[:20]}
        return {**params, "token": OWNER_TOKEN}

    def call_element(self, *, notification: bool | None = None) -> Element:
        draw = self.draw
        pick_unknown = draw(st.integers(0, 7), label="unknown method?") == 0
        if notification is None:
            notification = draw(st.integers(0, 3), label="notification?") == 0
        if pick_unknown:
            name = draw(_UNKNOWN_METHODS, label="unknown method")
            while name in self.names:
                name += "?"
            method = None
        else:
            method = draw(st.sampled_from(self.methods), label="method")
            name = method.name
        if method is None:
            mode, params, mutation = draw(
                st.sampled_from([("absent", ABSENT, None), ("valid", {}, None)]), label="params"
            )
            if mode == "valid":
                params = draw(json_objects)
        else:
            mode, params, mutation = self.params_for(method)
        if (
            method is not None
            and method.name == "connect"
            and notification
            and mode in ("valid", "absent")
        ):
            notification = False  # a failed connect notification still counts against the limit
        doc: dict[str, Any] = {"jsonrpc": "2.0", "method": name}
        if params is not ABSENT:
            doc["params"] = params
        note = f"{name} params={mode}"
        if mutation is not None:
            note += f" ({mutation.what} at {format_path(mutation.path)})"
        if mode == "other":
            # params that are neither object nor array: invalid even as a notification (§2)
            if not notification:
                doc["id"] = self.new_id()
            return Element(doc, Expect(None, note, expect_error(INVALID_REQUEST), "frame"), note)
        if notification:
            return Element(doc, None, "notification " + note)
        id_ = self.new_id()
        doc["id"] = id_
        keys = draw(st.permutations(list(doc)), label="member order")
        doc = {k: doc[k] for k in keys}
        stage = "frame" if mode == "array" else "call"
        return Element(
            doc,
            Expect(id_, note, self._expected(method, name, mode, params, mutation), stage),
            note,
        )

    def _expected(
        self,
        method: MethodInfo | None,
        name: str,
        mode: str,
        params: object,
        mutation: Mutation | None,
    ) -> Check:
        if mode == "array":
            return expect_error(INVALID_PARAMS)
        if method is None:
            return expect_error(METHOD_NOT_FOUND, message=f"Method not found: {name}")
        if mutation is not None:
            return expect_error(INVALID_PARAMS, path=format_path(mutation.path))
        if name == "echo":
            return expect_result(echo_of(None if params is ABSENT else params))
        if name == "connect":
            if params is ABSENT or params.get("token") != OWNER_TOKEN:  # type: ignore[attr-defined]
                return expect_error(AUTH_FAILED)
            return expect_result(_connect_ok)
        if mode == "absent" and any(method.schema.get("required", [])):
            return expect_error(INVALID_PARAMS, path=f"$.{method.schema['required'][0]}")
        or_codes = (INVALID_PARAMS,) if name in SEMANTIC_CHECKS else ()
        if name in NAMES_A_RESOURCE:
            or_codes += (RESOURCE_NOT_FOUND,)
        if name in EXTERNAL:
            or_codes += (TOOL_ERROR,)
        return expect_result(RESULT_CHECKS.get(name), or_codes=or_codes)

    def invalid_element(self, *, in_batch: bool) -> Element:
        draw = self.draw
        kind = draw(
            st.sampled_from(["version", "method", "id", "not an object"]), label="invalid kind"
        )
        doc: dict[str, Any] = {"jsonrpc": "2.0", "method": "health"}
        if draw(st.booleans()):
            doc["id"] = self.new_id()
        if kind == "version":
            if draw(st.booleans()):
                del doc["jsonrpc"]
            else:
                doc["jsonrpc"] = draw(st.sampled_from(["2", "1.0", "2.0 ", "", 2, 2.0, None, True]))
        elif kind == "method":
            if draw(st.booleans()):
                del doc["method"]
            else:
                doc["method"] = draw(
                    st.sampled_from(["", None, 5, True, ["health"], {"m": "health"}])
                )
        elif kind == "id":
            doc["id"] = draw(st.sampled_from([True, False, 1.5, 2.0, [1], {"id": 1}, -0.5]))
        else:
            return Element(
                # (an array on its own would be a batch, not an element)
                draw(
                    st.one_of(json_scalars, st.lists(json_scalars, max_size=2))
                    if in_batch
                    else json_scalars,
                    label="element",
                ),
                Expect(None, "non-object element", expect_error(INVALID_REQUEST), "frame"),
                "non-object element",
            )
        return Element(
            doc,
            Expect(None, f"invalid ({kind})", expect_error(INVALID_REQUEST), "frame"),
            f"invalid ({kind})",
        )

    def element(self, *, in_batch: bool = False) -> Element:
        if self.draw(st.integers(0, 5), label="invalid element?") == 0:
            return self.invalid_element(in_batch=in_batch)
        return self.call_element()

    def frame(self) -> Frame:
        draw = self.draw
        kind = draw(
            st.sampled_from(
                ["single"] * 6
                + ["batch"] * 3
                + ["notifications"]
                + ["empty batch", "garbage", "binary", "json"]
            ),
            label="frame kind",
        )
        if kind == "single":
            element = self.element()
            expects = None if element.expect is None else (element.expect,)
            return Frame(dumps(element.doc), False, expects, element.note)
        if kind in ("batch", "notifications"):
            size = draw(st.integers(1, 6), label="batch size")
            if kind == "notifications":
                elements = [self.call_element(notification=True) for _ in range(size)]
            else:
                elements = [self.element(in_batch=True) for _ in range(size)]
            owed = tuple(e.expect for e in elements if e.expect is not None)
            return Frame(
                dumps([e.doc for e in elements]),
                True,
                owed or None,
                "batch: " + "; ".join(e.note for e in elements),
            )
        if kind == "empty batch":
            text = draw(st.sampled_from(["[]", " [ ] ", "[\n]"]))
            return Frame(
                text,
                False,
                (Expect(None, "empty batch", expect_error(INVALID_REQUEST), "frame"),),
                "empty batch",
            )
        if kind == "garbage":
            text = draw(_GARBAGE, label="garbage")
            return Frame(
                text,
                False,
                (Expect(None, "garbage", expect_error(PARSE_ERROR), "frame"),),
                f"garbage {text!r}",
            )
        if kind == "binary":
            data = draw(
                st.one_of(
                    st.binary(max_size=30), st.just(b'{"jsonrpc":"2.0","id":1,"method":"health"}')
                ),
                label="binary",
            )
            return Frame(
                data,
                False,
                (Expect(None, "binary frame", expect_error(INVALID_REQUEST), "frame"),),
                f"binary {data!r}",
            )
        value = draw(json_scalars, label="json scalar")
        return Frame(
            dumps(value),
            False,
            (Expect(None, "json scalar", expect_error(INVALID_REQUEST), "frame"),),
            f"json {value!r}",
        )


ABSENT = object()
_UNKNOWN_METHODS = st.one_of(
    st.sampled_from(["rpc.discover", "Health", "health ", "echo.", "events", "config"]),
    st.text(min_size=1, max_size=12),
)


@st.composite
def _truncated_request(draw: st.DrawFn) -> str:
    text = dumps(
        {"jsonrpc": "2.0", "id": draw(big_ints), "method": "echo", "params": draw(json_objects)}
    )
    return text[: draw(st.integers(1, len(text) - 1))]


def _not_json(text: str) -> bool:
    def no_constants(name: str) -> object:
        raise ValueError(name)

    try:
        json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return True
    return False


_GARBAGE = st.one_of(st.text(max_size=30), _truncated_request()).filter(_not_json)


@st.composite
def frames_for(
    draw: st.DrawFn, methods: list[MethodInfo], *, min_size: int = 1, max_size: int = 12
) -> list[Frame]:
    builder = FrameBuilder(draw, methods)
    count = draw(st.integers(min_size, max_size), label="frames")
    return [builder.frame() for _ in range(count)]


# -- a raw WebSocket client ---------------------------------------------------------------------


class RawClient:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.sentinels = 0
        #: Set once a subscribe with since_seq may have been sent: its replay goes back in seq.
        self.replaying = False

    async def send(self, payload: str | bytes) -> None:
        if isinstance(payload, str) and "since_seq" in payload:
            self.replaying = True
        with trio.fail_after(WAIT_S):
            await self.ws.send_message(payload)

    async def receive(self) -> object:
        """The next message that is not an event (events are checked and kept)."""
        while True:
            with trio.fail_after(WAIT_S):
                text = await self.ws.get_message()
            assert isinstance(text, str), f"the gateway sent a binary frame: {text!r}"
            doc = json.loads(text)
            if isinstance(doc, dict) and "method" in doc and "id" not in doc:
                check_event(doc, self.events, ordered=not self.replaying)
                self.events.append(doc)
                continue
            return doc

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request with a fresh sentinel id; the next non-event message must answer it."""
        self.sentinels += 1
        id_ = f"sentinel-{self.sentinels}"
        doc: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            doc["params"] = params
        await self.send(dumps(doc))
        reply = await self.receive()
        problem = response_problem(reply)
        assert problem is None, problem
        assert isinstance(reply, dict)
        assert reply["id"] == id_, f"expected the answer to {method} ({id_}), got {short(reply)}"
        return reply


def check_event(doc: dict[str, Any], seen: list[dict[str, Any]], *, ordered: bool) -> None:
    """A message without id from the gateway can only be an ``event`` notification (§6.1).

    Events reach a connection at most once (§6.2), in increasing ``seq`` (§6.1) except that a
    replay for newly added patterns (§6.4) may go back to events older than ones already seen.
    """
    assert doc.get("jsonrpc") == "2.0", doc
    assert doc.get("method") == "event", f"unexpected notification from the gateway: {doc!r}"
    params = doc.get("params")
    assert isinstance(params, dict), doc
    assert isinstance(params.get("topic"), str), doc
    assert _is_int(params.get("seq")), doc
    assert isinstance(params.get("ts"), str), doc
    assert isinstance(params.get("data"), dict), doc
    assert params["seq"] not in {e["params"]["seq"] for e in seen}, (
        f"event delivered twice: {doc!r}"
    )
    if seen and ordered:
        assert params["seq"] > seen[-1]["params"]["seq"], f"event seq went backwards: {doc!r}"


@contextlib.asynccontextmanager
async def raw_connection(
    gateway: Gateway, *, authenticate: bool = True
) -> AsyncIterator[RawClient]:
    """A raw WebSocket client served by ``gateway`` over a socket pair.

    An exception escaping the gateway's connection task (which must never happen) ends the
    example with one AssertionError raised from here, so that every example failing that way
    fails the same way and Hypothesis can shrink it.
    """
    a, b = trio.socket.socketpair()
    client_stream, server_stream = trio.SocketStream(a), trio.SocketStream(b)
    crashed: list[BaseException] = []

    async def serve(cancel_scope: trio.CancelScope) -> None:
        try:
            await gateway.serve_stream(server_stream)
        except Exception as exc:
            crashed.append(exc)
            cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, nursery.cancel_scope)
            with trio.fail_after(WAIT_S):
                ws = await trio_websocket.wrap_client_stream(
                    nursery, client_stream, "localhost", "/", max_message_size=16 * 1024 * 1024
                )
            try:
                client = RawClient(ws)
                if authenticate:
                    reply = await client.call("connect", {"token": gateway.owner_token})
                    assert "result" in reply, reply
                yield client
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(WAIT_S):
                    await ws.aclose()
                nursery.cancel_scope.deadline = trio.current_time() + WAIT_S
    except BaseException:
        if crashed:  # whatever the client saw next is a consequence
            raise AssertionError(f"the connection task crashed: {crashed[0]!r}") from crashed[0]
        raise
    finally:
        a.close()
        b.close()
    if crashed:
        raise AssertionError(f"the connection task crashed: {crashed[0]!r}") from crashed[0]


@contextlib.asynccontextmanager
async def fresh_gateway() -> AsyncIterator[Gateway]:
    """A new gateway per example; log levels the example changes are put back afterwards."""
    loggers = [logging.getLogger("aleph_trio")] + [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("aleph_trio.")
    ]
    levels = {lg.name: lg.level for lg in loggers}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Commands are refused by policy: an approval request never waits for a human here.
            (Path(tmp) / "exec-approvals.toml").write_text('mode = "deny"\n')
            config = Config(browser=BrowserConfig(executable=str(Path(tmp) / "no-browser")))
            async with open_gateway(config, data_dir=tmp) as gateway:
                yield gateway
    finally:
        for lg in loggers:
            lg.setLevel(levels[lg.name])


# -- matching replies to what was owed ----------------------------------------------------------


def perfect_matching(left: list[Any], right: list[Any], fits: Callable[[Any, Any], bool]) -> bool:
    """Can every item of ``left`` be paired with its own item of ``right`` (same sizes)?"""
    if len(left) != len(right):
        return False
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(len(right)):
            if j in seen or not fits(left[i], right[j]):
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    return all(augment(i, set()) for i in range(len(left)))


def match_responses(expects: list[Expect], replies: list[dict[str, Any]]) -> list[str]:
    """Problems pairing ``replies`` one-to-one with ``expects`` (by id, then by content for null ids)."""
    problems: list[str] = []
    by_id: dict[tuple[str, object], Expect] = {id_key(e.id): e for e in expects if e.id is not None}
    answered: Counter[tuple[str, object]] = Counter()
    null_replies: list[dict[str, Any]] = []
    for reply in replies:
        if reply["id"] is None:
            null_replies.append(reply)
            continue
        key = id_key(reply["id"])
        answered[key] += 1
        expect = by_id.get(key)
        if expect is None:
            problems.append(f"answer to an id that was never sent (or a notification): {reply!r}")
            continue
        if answered[key] > 1:
            problems.append(f"answered more than once: {reply!r}")
            continue
        problem = expect.problem(reply)
        if problem is not None:
            problems.append(problem)
    for key, expect in by_id.items():
        if not answered[key]:
            problems.append(f"never answered: {expect.what} (id {expect.id!r})")
    null_expects = [e for e in expects if e.id is None]
    if not perfect_matching(null_expects, null_replies, lambda e, r: e.problem(r) is None):
        problems.append(
            "replies with id null do not match what was owed:\n  owed: "
            + "; ".join(e.what for e in null_expects)
            + "\n  got: "
            + "; ".join(dumps(r) for r in null_replies)
        )
    return problems


def check_replies(frames: list[Frame], replies: list[object]) -> None:
    problems: list[str] = []
    for reply in replies:
        parts = reply if isinstance(reply, list) else [reply]
        if isinstance(reply, list) and not reply:
            problems.append("an empty array was sent as a batch answer")
        for part in parts:
            problem = response_problem(part)
            if problem is not None:
                problems.append(problem)
    if problems:
        raise AssertionError("\n".join(problems))
    singles_owed = [e for f in frames if not f.batch and f.expects for e in f.expects]
    singles_got = [r for r in replies if isinstance(r, dict)]
    problems += match_responses(singles_owed, singles_got)

    batches_owed = [f for f in frames if f.batch and f.expects]
    batches_got = [r for r in replies if isinstance(r, list)]
    if len(batches_owed) != len(batches_got):
        problems.append(
            f"{len(batches_got)} batch answers for {len(batches_owed)} batches that owed one"
        )
    # A batch answer belongs to the batch that sent one of its non-null ids.
    owner_of: dict[tuple[str, object], int] = {}
    for index, frame in enumerate(batches_owed):
        for e in frame.expects or ():
            if e.id is not None:
                owner_of[id_key(e.id)] = index
    unclaimed_frames = set(range(len(batches_owed)))
    anonymous: list[list[dict[str, Any]]] = []
    for answer in batches_got:
        ids = [id_key(p["id"]) for p in answer if p["id"] is not None]
        owners = {owner_of.get(k) for k in ids}
        if not ids:
            anonymous.append(answer)
            continue
        if len(owners) != 1 or None in owners:
            problems.append(f"a batch answer mixes or invents ids: {dumps(answer)}")
            continue
        owner = owners.pop()
        assert owner is not None
        index = owner
        if index not in unclaimed_frames:
            problems.append(f"a batch was answered twice: {dumps(answer)}")
            continue
        unclaimed_frames.discard(index)
        frame = batches_owed[index]
        for problem in match_responses(list(frame.expects or ()), answer):
            problems.append(f"in the answer to [{frame.note}]: {problem}")
    rest = [batches_owed[i] for i in sorted(unclaimed_frames)]
    if not perfect_matching(
        rest, anonymous, lambda f, a: not match_responses(list(f.expects or ()), a)
    ):
        problems.append(
            "batch answers without ids do not match the batches that owed them:\n  owed: "
            + " | ".join(f.note for f in rest)
            + "\n  got: "
            + " | ".join(dumps(a) for a in anonymous)
        )
    if problems:
        raise AssertionError("\n".join(problems))


async def push_frames(client: RawClient, frames: list[Frame], token: str) -> list[object]:
    """Send every frame, collect the answers owed, then prove nothing else is on its way."""
    for frame in frames:
        await client.send(frame.resolved(token))
    owed = sum(1 for f in frames if f.expects)
    replies: list[object] = []
    try:
        while len(replies) < owed:
            replies.append(await client.receive())
    except trio.TooSlowError:
        raise AssertionError(
            f"only {len(replies)} of {owed} answers arrived within {WAIT_S}s:\n  "
            + "\n  ".join(dumps(r) for r in replies)
            + "\nframes:\n  "
            + "\n  ".join(f.note for f in frames)
        ) from None
    # Every owed answer is in: whatever arrives before the sentinel's answer was not owed.
    health = await client.call("health")
    assert "result" in health, health
    return replies


# -- the properties -----------------------------------------------------------------------------


@given(st.data())
@settings(phases=PHASES)
async def test_random_frames_are_answered_exactly_as_owed(data: st.DataObject) -> None:
    async with fresh_gateway() as gateway:
        methods = methods_of(gateway)
        frames = data.draw(frames_for(methods), label="frames")
        async with raw_connection(gateway) as client:
            replies = await push_frames(client, frames, gateway.owner_token)
            check_replies(frames, replies)
            # still healthy, and still the same (single) connection
            health = await client.call("health")
            assert _health_ok(health["result"]) is None
            assert health["result"]["connections"] == 1
            assert not [e for e in gateway.logs.tail(1000) if e["level"] in ("error", "critical")]


@given(st.data())
# Each example calls every method (about 95) on a gateway of its own; a sixth of the profile's
# examples makes as many calls as a third did when there were half as many methods.
@settings(max_examples=examples(1 / 6), phases=PHASES)
async def test_every_method_valid_and_wrong_params(data: st.DataObject) -> None:
    """For each registered method: schema-valid params, then params broken in one place."""
    async with fresh_gateway() as gateway:
        methods = methods_of(gateway)
        assert methods
        async with raw_connection(gateway) as client:
            for method in methods:
                strategies = method.strategies
                valid = data.draw(strategies.valid(method.schema), label=f"{method.name} params")
                if method.name == "connect":
                    valid = {**valid, "token": gateway.owner_token}
                reply = await client.call(method.name, valid)
                if "error" in reply:
                    code = reply["error"]["code"]
                    assert (
                        (code == INVALID_PARAMS and method.name in SEMANTIC_CHECKS)
                        or (code == RESOURCE_NOT_FOUND and method.name in NAMES_A_RESOURCE)
                        or (code == TOOL_ERROR and method.name in EXTERNAL)
                    ), f"{method.name} refused schema-valid params {valid!r}: {reply['error']!r}"
                elif method.name == "echo":
                    assert same_json(reply["result"], valid)
                if not method.has_params_class:
                    continue
                broken = data.draw(
                    strategies.mutate(method.schema, valid), label=f"{method.name} broken"
                )
                reply = await client.call(method.name, broken.value)  # type: ignore[arg-type]
                problem = expect_error(INVALID_PARAMS, path=format_path(broken.path))(reply)
                assert problem is None, (
                    f"{method.name} with {broken.what} at {format_path(broken.path)}: {problem}"
                )
            health = await client.call("health")
            assert _health_ok(health["result"]) is None


@given(st.data())
@settings(max_examples=examples(1 / 6), phases=PHASES)
async def test_numeric_strings_are_never_coerced(data: st.DataObject) -> None:
    """A string where the schema says integer is -32602 naming that field (§2)."""
    async with fresh_gateway() as gateway:
        cases = []
        for method in methods_of(gateway):
            schema = method.strategies.resolve(method.schema)
            for name, sub in schema.get("properties", {}).items():
                if "integer" in method.strategies.allowed_types(
                    sub
                ) and "string" not in method.strategies.allowed_types(sub):
                    cases.append((method, name))
        assert cases, "no method takes an integer parameter any more"
        async with raw_connection(gateway) as client:
            for method, name in cases:
                valid = data.draw(
                    method.strategies.valid(method.schema), label=f"{method.name} params"
                )
                number = data.draw(st.one_of(st.integers(0, 1000), big_ints), label="number")
                text = data.draw(
                    st.sampled_from([str(number), f" {number}", f"{number}.0", hex(abs(number))])
                )
                reply = await client.call(method.name, {**valid, name: text})
                problem = expect_error(INVALID_PARAMS, path=f"$.{name}")(reply)
                assert problem is None, f"{method.name} {name}={text!r}: {problem}"


def _bytes(payload: str | bytes) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


@given(st.data())
@settings(max_examples=examples(1 / 3), phases=PHASES)
async def test_before_authentication_only_connect_runs(data: st.DataObject) -> None:
    """§4: before connect every request gets -32000 (nothing runs), notifications get nothing."""
    async with fresh_gateway() as gateway:
        methods = [m for m in methods_of(gateway) if m.name != "connect"]
        frames = data.draw(frames_for(methods, max_size=8), label="frames")
        # Frames beyond the pre-auth size limit close the connection (tested elsewhere).
        assume(all(len(_bytes(f.payload)) <= PRE_AUTH_MAX_MESSAGE for f in frames))
        # Recompute what is owed before authentication: any well-formed request → -32000.
        pre_auth: list[Frame] = []
        for frame in frames:
            if frame.expects is None:
                pre_auth.append(frame)
                continue
            expects = tuple(
                e
                if e.stage == "frame"
                else Expect(e.id, e.what + " (before connect)", expect_error(AUTH_REQUIRED))
                for e in frame.expects
            )
            pre_auth.append(attrs.evolve(frame, expects=expects))
        async with raw_connection(gateway, authenticate=False) as client:
            for frame in pre_auth:
                await client.send(frame.resolved(gateway.owner_token))
            owed = sum(1 for f in pre_auth if f.expects)
            replies = [await client.receive() for _ in range(owed)]
            reply = await client.call("connect", {"token": gateway.owner_token})
            assert _connect_ok(reply.get("result")) is None, reply
            check_replies(pre_auth, replies)
            assert not client.events, "events were sent before authentication"
            health = await client.call("health")
            assert _health_ok(health["result"]) is None


# -- config.validate against the schema config.schema publishes ---------------------------------


@functools.cache
def config_strategies(schema_json: str) -> SchemaStrategies:
    return SchemaStrategies(json.loads(schema_json))


@given(st.data())
@settings(max_examples=examples(1 / 3), phases=PHASES)
async def test_config_validate_agrees_with_config_schema(data: st.DataObject) -> None:
    """A document valid under ``config.schema`` validates; one broken in one place does not,
    and the error names the broken path (PROTOCOL §9: errors with a path)."""
    async with fresh_gateway() as gateway, raw_connection(gateway) as client:
        reply = await client.call("config.schema")
        schema = reply["result"]
        strategies = config_strategies(json.dumps(schema, sort_keys=True))
        for _ in range(3):
            doc = data.draw(strategies.valid(schema), label="config")
            result = (await client.call("config.validate", {"config": doc}))["result"]
            assert result["valid"] is True, f"schema-valid {doc!r} refused: {result['errors']!r}"
            assert result["errors"] == []
            broken = data.draw(strategies.mutate(schema, doc), label="broken config")
            result = (await client.call("config.validate", {"config": broken.value}))["result"]
            where = format_path(broken.path, root="")
            assert result["valid"] is False, (
                f"{broken.what} at {where!r} was accepted: {broken.value!r}"
            )
            paths = [e["path"] for e in result["errors"]]
            assert where in paths, f"{broken.what} at {where!r}: errors name {paths}"


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        # a bad value in a plain table of levels: the error must name the key
        ({"logging": {"components": {"cron": "loud"}}}, "logging.components.cron"),
        ({"logging": {"components": {"cron": 5}}}, "logging.components.cron"),
        # the schema's pattern ^[A-Za-z_][A-Za-z0-9_]*$ does not match a trailing newline
        ({"auth": {"token": {"env": "TOKEN\n"}}}, "auth.token.env"),
        (
            {"providers": {"p": {"kind": "openai", "api_key": {"env": "KEY\n"}}}},
            "providers.p.api_key.env",
        ),
    ],
)
async def test_config_validate_names_the_broken_path(
    gateway: Gateway, doc: dict[str, Any], path: str
) -> None:
    async with raw_connection(gateway) as client:
        result = (await client.call("config.validate", {"config": doc}))["result"]
        assert result["valid"] is False, f"{doc!r} was accepted"
        paths = [e["path"] for e in result["errors"]]
        assert path in paths, f"{doc!r}: errors name {paths}"
