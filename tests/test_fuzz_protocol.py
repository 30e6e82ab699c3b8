"""Property-based tests of the sans-IO JSON-RPC framing (PROTOCOL §2-3).

``parse_message`` is checked against an independent model of the rules written from the spec
(:func:`expected_item`), on arbitrary JSON values, request-shaped objects, batches, arbitrary text
and bytes, truncated documents and deep nesting. The ``encode_*`` functions are checked by decoding
their output with the standard library (which keeps integers of any size exactly).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, example, given, strategies as st

from aleph_trio.protocol import (
    MAX_ID_DIGITS,
    AlephError,
    Dropped,
    ErrorCode,
    Id,
    Invalid as InvalidItem,
    InvalidParams,
    InvalidRequest,
    Message,
    Notification,
    Request,
    encode_batch,
    encode_error,
    encode_notification,
    encode_result,
    parse_message,
)
from jsonvalues import finite_floats, json_values as json_values_of, same_json

PARSE_ERROR = int(ErrorCode.PARSE_ERROR)
INVALID_REQUEST = int(ErrorCode.INVALID_REQUEST)
INVALID_PARAMS = int(ErrorCode.INVALID_PARAMS)
PROTOCOL_CODES = {PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS}
MEMBERS = ("jsonrpc", "method", "params", "id")

# -- strategies ---------------------------------------------------------------------------------

#: Integers well beyond 64 bits in both directions (but short of the 4300-digit str limit).
big_ints = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(2**64) - 2, max_value=-(2**63) + 2),
    st.integers(min_value=-(10**80), max_value=10**80),
)
json_scalars, json_values, json_objects = json_values_of(
    ints=big_ints, text_size=20, key_size=10, width=5, leaves=25
)
#: Lighter values for strategies that draw many of them (requests in batches, params).
_, small_values, small_objects = json_values_of(
    ints=big_ints, text_size=20, key_size=6, width=3, leaves=6
)

valid_ids = st.one_of(st.none(), st.text(max_size=30), big_ints)
bad_ids = st.one_of(
    st.booleans(),
    finite_floats,
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)
methods = st.one_of(
    st.sampled_from(["echo", "health", "connect", "events.subscribe", "rpc.discover", "a.b.c"]),
    st.text(min_size=1, max_size=30),
)
bad_methods = st.one_of(
    st.just(""), st.none(), st.booleans(), big_ints, finite_floats, st.lists(st.text(), max_size=2)
)
bad_versions = st.one_of(
    st.sampled_from(["2", "2.00", "1.0", "2.0 ", " 2.0", "", "2.1"]),
    st.none(),
    st.booleans(),
    st.just(2),
    st.just(2.0),
    st.text(max_size=5).filter(lambda s: s != "2.0"),
)
non_object_params = st.one_of(
    st.none(), st.booleans(), big_ints, finite_floats, st.text(max_size=10)
)
array_params = st.lists(small_values, max_size=4)


@st.composite
def request_like(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object that looks like a request or notification, valid or not in any member."""
    doc: dict[str, Any] = {}
    version = draw(st.sampled_from(["ok", "ok", "ok", "ok", "missing", "bad"]))
    if version == "ok":
        doc["jsonrpc"] = "2.0"
    elif version == "bad":
        doc["jsonrpc"] = draw(bad_versions)
    method = draw(st.sampled_from(["ok", "ok", "ok", "ok", "missing", "bad"]))
    if method == "ok":
        doc["method"] = draw(methods)
    elif method == "bad":
        doc["method"] = draw(bad_methods)
    id_kind = draw(st.sampled_from(["ok", "ok", "missing", "missing", "bad"]))
    if id_kind == "ok":
        doc["id"] = draw(valid_ids)
    elif id_kind == "bad":
        doc["id"] = draw(bad_ids)
    params_kind = draw(
        st.sampled_from(["object", "object", "missing", "missing", "array", "other"])
    )
    if params_kind == "object":
        doc["params"] = draw(small_objects)
    elif params_kind == "array":
        doc["params"] = draw(array_params)
    elif params_kind == "other":
        doc["params"] = draw(non_object_params)
    if draw(st.integers(0, 9)) == 0:
        extra = draw(st.text(max_size=8).filter(lambda k: k not in MEMBERS))
        doc[extra] = draw(json_scalars)
    keys = draw(st.permutations(list(doc)))
    return {k: doc[k] for k in keys}


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": draw(valid_ids), "method": draw(methods)}
    if draw(st.booleans()):
        doc["params"] = draw(small_objects)
    return doc


@st.composite
def valid_notifications(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "method": draw(methods)}
    if draw(st.booleans()):
        doc["params"] = draw(small_objects)
    return doc


batch_elements = st.one_of(request_like(), valid_requests(), valid_notifications(), small_values)

# -- the model ----------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def expected_item(doc: object) -> set[tuple[Any, ...]]:
    """What PROTOCOL §2 says one decoded element is, as a set of acceptable outcomes.

    Outcomes: ``("request", id, method, params)``, ``("notification", method, params)``,
    ``("silent",)`` (never executed, never answered) and ``("error", code, id)``.
    The spec is silent on members other than jsonrpc/method/params/id: rejecting such an object
    with -32600 and ignoring the extra member are both accepted.
    """
    invalid = {("error", INVALID_REQUEST, None)}
    if not isinstance(doc, dict):
        return invalid
    if doc.get("jsonrpc") != "2.0" or type(doc.get("jsonrpc")) is not str:
        return invalid
    method = doc.get("method")
    if not isinstance(method, str) or not method:
        return invalid
    has_id = "id" in doc
    id_ = doc.get("id")
    if has_id and not (id_ is None or isinstance(id_, str) or _is_int(id_)):
        return invalid
    if _is_int(id_) and len(str(abs(id_))) > MAX_ID_DIGITS:
        return invalid  # the gateway's documented limit (docs/design.md)
    outcomes: set[tuple[Any, ...]] = set()
    if any(key not in MEMBERS for key in doc):
        outcomes |= invalid
    params = doc.get("params")
    if "params" in doc and not isinstance(params, dict):
        if isinstance(params, list):
            outcomes.add(("error", INVALID_PARAMS, id_) if has_id else ("silent",))
        else:
            outcomes |= invalid
    elif has_id:
        outcomes.add(("request", _Id(id_), method, _Frozen(params)))
    else:
        outcomes.add(("notification", method, _Frozen(params)))
    return outcomes


class _Id:
    """An id compared by type and value (``1``, ``True`` and ``1.0`` are three different ids)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Id)
            and type(self.value) is type(other.value)
            and self.value == other.value
        )

    def __hash__(self) -> int:
        return hash((type(self.value).__name__, self.value))

    def __repr__(self) -> str:
        return f"_Id({self.value!r})"


class _Frozen:
    """A JSON value compared exactly (types included), hashable for the outcome sets."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and same_json(self.value, other.value)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"_Frozen({self.value!r})"


def outcome_of(item: object) -> tuple[Any, ...]:
    """The parsed item in the model's terms; fails on anything that is not one of the four kinds."""
    if isinstance(item, Request):
        assert isinstance(item.method, str)
        assert item.method
        assert item.params is None or isinstance(item.params, dict)
        return ("request", _Id(item.id), item.method, _Frozen(item.params))
    if isinstance(item, Notification):
        assert isinstance(item.method, str)
        assert item.method
        assert item.params is None or isinstance(item.params, dict)
        return ("notification", item.method, _Frozen(item.params))
    if isinstance(item, Dropped):
        return ("silent",)
    assert isinstance(item, InvalidItem), f"unexpected item type {type(item).__name__}: {item!r}"
    assert isinstance(item.error, AlephError)
    assert item.error.code in PROTOCOL_CODES, item
    assert isinstance(item.error.message, str)
    assert item.error.message
    assert item.id is None or isinstance(item.id, str) or _is_int(item.id)
    return ("error", int(item.error.code), item.id)


def check_message(message: Message, doc: object) -> None:
    """``message`` is what PROTOCOL §2 says the frame holding ``doc`` parses to."""
    assert isinstance(message, Message)
    if isinstance(doc, list) and not doc:
        assert not message.batch
        assert [outcome_of(i) for i in message.items] == [("error", INVALID_REQUEST, None)]
        return
    if isinstance(doc, list):
        assert message.batch
        assert len(message.items) == len(doc)
        for item, element in zip(message.items, doc, strict=True):
            outcome = outcome_of(item)
            assert outcome in expected_item(element), (element, item)
        return
    assert not message.batch
    assert len(message.items) == 1
    outcome = outcome_of(message.items[0])
    assert outcome in expected_item(doc), (doc, message.items[0])


def check_well_formed(message: Message) -> None:
    """Invariants that hold for any input at all."""
    assert isinstance(message, Message)
    assert isinstance(message.batch, bool)
    assert message.items
    for item in message.items:
        outcome = outcome_of(item)
        if outcome[0] == "error" and outcome[1] == PARSE_ERROR:
            assert not message.batch
            assert len(message.items) == 1
            assert outcome[2] is None
        if outcome[0] == "error" and outcome[1] == INVALID_REQUEST:
            assert outcome[2] is None  # a request that is invalid has no usable id


def dumps(doc: object, *, compact: bool = True) -> str:
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(doc, separators=separators, ensure_ascii=False, allow_nan=False)


def strict_json_loads(text: str | bytes) -> object:
    def no_constants(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=no_constants)


def first_code(message: Message) -> int | None:
    item = message.items[0]
    return int(item.error.code) if isinstance(item, InvalidItem) else None


# -- parse_message: never raises, always well formed -------------------------------------------


@given(st.text())
@example("")
@example(" ")
@example("null")
@example("[]")
@example("[[]]")
@example("{}")
@example("\ufeff{}")
@example('{"jsonrpc":"2.0","method":"x"} {}')
@example('{"jsonrpc":"2.0","method":"x","id":1e999}')
@example('"\\ud800"')
@example("1" * 5000)
def test_parse_arbitrary_text_never_raises(text: str) -> None:
    message = parse_message(text)
    check_well_formed(message)
    try:
        doc = strict_json_loads(text)
    except (ValueError, RecursionError):
        assert first_code(message) == PARSE_ERROR, (text, message)
        return
    if first_code(message) == PARSE_ERROR and not message.batch:
        # Valid JSON that the decoder still refuses (numbers out of double range, lone
        # surrogate escapes, integers of more than 4300 digits): a parse error is acceptable.
        return
    check_message(message, doc)


@given(
    st.text(max_size=8),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(max_size=8),
    st.sampled_from(["params", "method", "key", "batch"]),
)
@example("", "\ud800", "", "params")
@example("x", "\udfff", "y", "key")
def test_lone_surrogate_escape_is_named_with_its_place(
    before: str, surrogate: str, after: str, where: str
) -> None:
    """An escaped surrogate without its partner is valid JSON grammar but no Unicode text: the
    parse error says which one and where, whatever the decoder stumbled on first."""
    text = before + surrogate + after
    doc: Any = {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"t": text}}
    path = "$.params.t"
    if where == "method":
        doc["method"], path = text, "$.method"
    elif where == "key":
        doc["params"], path = {text: 1}, "in a member name at $.params"
    elif where == "batch":
        doc, path = [{"jsonrpc": "2.0", "method": "x"}, doc], "$[1].params.t"
    frame = json.dumps(doc)  # ensure_ascii: the surrogate goes out as a \u escape
    assume(not any(0xD800 <= ord(c) <= 0xDFFF for c in before + after))
    message = parse_message(frame)
    assert [outcome_of(i) for i in message.items] == [("error", PARSE_ERROR, None)]
    error = message.items[0].error  # type: ignore[union-attr]
    unit = f"\\u{ord(surrogate):04x}"
    place = path if path.startswith("in ") else f"at {path}"
    assert error.message == (
        f"Parse error: the text contains an unpaired surrogate ({unit}) {place}"
    )


@given(st.integers(min_value=MAX_ID_DIGITS + 1, max_value=6000), st.booleans(), st.booleans())
@example(MAX_ID_DIGITS + 1, False, False)
@example(4300, True, False)
@example(4301, False, True)
def test_integer_ids_past_the_limit_are_invalid_requests(
    digits: int, negative: bool, in_batch: bool
) -> None:
    id_text = ("-" if negative else "") + "9" * digits
    element = '{"jsonrpc":"2.0","method":"echo","id":' + id_text + "}"
    text = f'[{element},{{"jsonrpc":"2.0","id":1,"method":"echo"}}]' if in_batch else element
    message = parse_message(text)
    assert message.batch is in_batch
    assert outcome_of(message.items[0]) == ("error", INVALID_REQUEST, None)
    if in_batch:
        assert outcome_of(message.items[1]) == ("request", _Id(1), "echo", _Frozen(None))


@given(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), st.text(max_size=10))
@example("\ud800", "")
def test_parse_str_with_lone_surrogate_never_raises(surrogate: str, rest: str) -> None:
    """``parse_message`` accepts ``str``; one that is not encodable as UTF-8 is a parse error.

    Such a ``str`` cannot come out of the WebSocket layer (it decodes UTF-8 strictly), but the
    function promises to never raise on any ``str``.
    """
    text = '{"jsonrpc":"2.0","id":1,"method":"' + surrogate + rest + '"}'
    message = parse_message(text)
    check_well_formed(message)
    assert first_code(message) == PARSE_ERROR


@given(st.binary())
@example(b"\xff")
@example(b"\xef\xbb\xbf{}")
@example(b'{"jsonrpc":"2.0","id":1,"method":"\xc3"}')
@example(b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":"\xed\xa0\x80"}}')
def test_parse_arbitrary_bytes_never_raises(data: bytes) -> None:
    message = parse_message(data)
    check_well_formed(message)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert first_code(message) == PARSE_ERROR
        return
    try:
        doc = strict_json_loads(text)
    except (ValueError, RecursionError):
        assert first_code(message) == PARSE_ERROR
        return
    if first_code(message) == PARSE_ERROR and not message.batch:
        return
    check_message(message, doc)


@given(json_values, st.booleans())
def test_parse_any_json_value_matches_the_model(doc: object, compact: bool) -> None:
    text = dumps(doc, compact=compact)
    message = parse_message(text)
    check_well_formed(message)
    check_message(message, doc)
    # bytes and str give the same answer
    assert [outcome_of(i) for i in parse_message(text.encode()).items] == [
        outcome_of(i) for i in message.items
    ]


@given(request_like())
def test_parse_request_like_objects(doc: dict[str, Any]) -> None:
    message = parse_message(dumps(doc))
    check_well_formed(message)
    check_message(message, doc)


@given(st.lists(batch_elements, min_size=1, max_size=12))
def test_parse_batches_keep_order_and_classify_each_element(batch: list[object]) -> None:
    message = parse_message(dumps(batch))
    check_well_formed(message)
    check_message(message, batch)
    assert message.batch
    # a batch never yields a parse error for one of its elements
    assert all(outcome_of(i)[1] != PARSE_ERROR for i in message.items if isinstance(i, InvalidItem))


@given(st.sampled_from(["[]", " []", "[ ]", "\n[\n]\n", "\t[\r\n ]"]))
def test_empty_batch_is_one_invalid_request_not_a_batch(text: str) -> None:
    message = parse_message(text)
    assert not message.batch
    assert len(message.items) == 1
    assert outcome_of(message.items[0]) == ("error", INVALID_REQUEST, None)


# -- ids ----------------------------------------------------------------------------------------


@given(valid_ids, methods, st.one_of(st.none(), json_objects))
@example(2**64, "echo", None)
@example(-(2**64) - 1, "echo", None)
@example(10**80 + 1, "echo", None)
@example(9007199254740993, "echo", None)  # 2**53 + 1: lost by anything that goes through a double
def test_ids_survive_parse_and_encode_exactly(id_: object, method: str, params: object) -> None:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        doc["params"] = params
    message = parse_message(dumps(doc))
    assert not message.batch
    [item] = message.items
    assert isinstance(item, Request)
    assert _Id(item.id) == _Id(id_)
    assert same_json(item.params, params)

    reply = json.loads(encode_result(item.id, {"ok": True}))
    assert reply == {"jsonrpc": "2.0", "id": id_, "result": {"ok": True}}
    assert _Id(reply["id"]) == _Id(id_)
    error = json.loads(encode_error(item.id, InvalidParams("Invalid params: x", errors=[])))
    assert _Id(error["id"]) == _Id(id_)
    assert error["jsonrpc"] == "2.0"
    assert "result" not in error


@given(valid_ids, json_values)
def test_encode_result_round_trips(id_: Id, result: object) -> None:
    reply = json.loads(encode_result(id_, result))
    assert set(reply) == {"jsonrpc", "id", "result"}
    assert reply["jsonrpc"] == "2.0"
    assert _Id(reply["id"]) == _Id(id_)
    assert same_json(reply["result"], result)


@given(bad_ids, methods)
def test_bad_id_types_are_invalid_requests_with_null_id(id_: object, method: str) -> None:
    message = parse_message(dumps({"jsonrpc": "2.0", "id": id_, "method": method}))
    assert [outcome_of(i) for i in message.items] == [("error", INVALID_REQUEST, None)]


@given(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from(["{}.0", "{}e0", "{}.000", "{}E+0"]),
)
def test_integral_float_id_is_not_an_integer(value: int, form: str) -> None:
    """``"id": 1.0`` is not an integer: not a valid id (§2: string, integer or null)."""
    text = '{"jsonrpc":"2.0","method":"echo","id":' + form.format(value) + "}"
    message = parse_message(text)
    assert [outcome_of(i) for i in message.items] == [("error", INVALID_REQUEST, None)]


# -- params -------------------------------------------------------------------------------------


@given(valid_ids, methods, array_params)
def test_array_params_on_a_request_is_invalid_params_with_its_id(
    id_: object, method: str, params: list[object]
) -> None:
    message = parse_message(
        dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
    )
    [item] = message.items
    assert isinstance(item, InvalidItem)
    assert isinstance(item.error, InvalidParams)
    assert item.error.code == INVALID_PARAMS
    assert _Id(item.id) == _Id(id_)


@given(st.one_of(st.none(), valid_ids), methods, non_object_params, st.booleans())
def test_non_object_params_is_invalid_request_with_null_id(
    id_: object, method: str, params: object, with_id: bool
) -> None:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if with_id:
        doc["id"] = id_
    message = parse_message(dumps(doc))
    [item] = message.items
    assert isinstance(item, InvalidItem)
    assert isinstance(item.error, InvalidRequest)
    assert item.id is None


# -- notifications ------------------------------------------------------------------------------


@given(st.lists(valid_notifications(), min_size=1, max_size=10), st.booleans())
def test_valid_notifications_are_never_invalid(notes: list[dict[str, Any]], as_batch: bool) -> None:
    frames = [dumps(notes)] if as_batch else [dumps(n) for n in notes]
    items = [item for frame in frames for item in parse_message(frame).items]
    assert len(items) == len(notes)
    for item, note in zip(items, notes, strict=True):
        assert isinstance(item, Notification)
        assert item.method == note["method"]
        assert same_json(item.params, note.get("params"))


@given(methods, array_params)
def test_notification_with_array_params_is_silent(method: str, params: list[object]) -> None:
    """Bad params on a notification: not executed, and nobody to answer (never Invalid)."""
    message = parse_message(dumps({"jsonrpc": "2.0", "method": method, "params": params}))
    [item] = message.items
    assert isinstance(item, Dropped)
    assert not isinstance(item, InvalidItem)


# -- malformed frames ---------------------------------------------------------------------------


@given(st.one_of(request_like(), st.lists(batch_elements, min_size=1, max_size=4)), st.data())
def test_truncated_documents_are_parse_errors(doc: object, data: st.DataObject) -> None:
    text = dumps(doc)
    cut = data.draw(st.integers(min_value=1, max_value=len(text) - 1), label="cut")
    truncated = text[:cut]
    assume(truncated.strip())
    message = parse_message(truncated)
    check_well_formed(message)
    assert [outcome_of(i) for i in message.items] == [("error", PARSE_ERROR, None)]


@given(
    st.integers(min_value=1, max_value=20_000),
    st.sampled_from(["[", '{"a":', '{"jsonrpc":"2.0","id":1,"method":"echo","params":{"p":[']),
)
def test_deep_nesting_never_raises(depth: int, opener: str) -> None:
    closers = {"[": "]", '{"a":': "}"}
    if opener.startswith('{"jsonrpc"'):
        text = opener + "[" * depth + "]" * depth + "]}}"
    else:
        text = opener * depth + "0" + closers[opener] * depth
    message = parse_message(text)
    check_well_formed(message)
    if first_code(message) == PARSE_ERROR:
        return  # too deep for the decoder: refused, not crashed
    if opener.startswith('{"jsonrpc"'):
        assert isinstance(message.items[0], Request)


@given(
    st.lists(
        st.sampled_from(["[", "]", "{", "}", ",", ":", '"', "0", "null", '"a"', " "]), max_size=200
    )
)
def test_json_punctuation_soup_never_raises(tokens: list[str]) -> None:
    text = "".join(tokens)
    message = parse_message(text)
    check_well_formed(message)


# -- encoders -----------------------------------------------------------------------------------


@given(st.lists(st.tuples(valid_ids, small_values), max_size=8))
def test_encode_batch_is_a_json_array_of_its_parts(parts: list[tuple[Id, object]]) -> None:
    encoded = [encode_result(id_, result) for id_, result in parts]
    decoded = json.loads(encode_batch(encoded))
    assert isinstance(decoded, list)
    assert len(decoded) == len(parts)
    for reply, (id_, result) in zip(decoded, parts, strict=True):
        assert _Id(reply["id"]) == _Id(id_)
        assert same_json(reply["result"], result)


@given(
    valid_ids,
    st.sampled_from([c for c in ErrorCode]),
    st.text(max_size=40),
    st.one_of(st.none(), json_objects),
)
def test_encode_error_is_a_well_formed_error_response(
    id_: Id, code: ErrorCode, message: str, data: dict[str, Any] | None
) -> None:
    error = AlephError(message, data)
    error.code = code  # type: ignore[misc]
    reply = json.loads(encode_error(id_, error))
    assert set(reply) == {"jsonrpc", "id", "error"}
    assert reply["jsonrpc"] == "2.0"
    assert _Id(reply["id"]) == _Id(id_)
    assert type(reply["error"]["code"]) is int
    assert reply["error"]["code"] == int(code)
    assert reply["error"]["message"] == message
    if data is None:
        assert "data" not in reply["error"]
    else:
        assert same_json(reply["error"]["data"], data)


@given(methods, json_values)
def test_encode_notification_has_no_id(method: str, params: object) -> None:
    doc = json.loads(encode_notification(method, params))
    assert set(doc) == {"jsonrpc", "method", "params"}
    assert doc["jsonrpc"] == "2.0"
    assert doc["method"] == method
    assert same_json(doc["params"], params)
    # what the server sends as a notification parses back as one when its params are an object
    if isinstance(params, dict):
        [item] = parse_message(encode_notification(method, params)).items
        assert isinstance(item, Notification)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"jsonrpc":"2.0","method":"x","id":true}', ("error", INVALID_REQUEST, None)),
        ('{"jsonrpc":"2.0","method":"x","id":1.5}', ("error", INVALID_REQUEST, None)),
        ('{"jsonrpc":"2.0","method":"x","id":null}', ("request", _Id(None), "x", _Frozen(None))),
        ('{"jsonrpc":"2.0","method":"x","params":null}', ("error", INVALID_REQUEST, None)),
        ('{"jsonrpc":"2.0","method":"x","id":7,"params":null}', ("error", INVALID_REQUEST, None)),
        ('{"jsonrpc":"2.0","method":"x","id":7,"params":[1]}', ("error", INVALID_PARAMS, 7)),
        ('{"jsonrpc":"2.0","method":"x","params":[1]}', ("silent",)),
        ('{"jsonrpc":2.0,"method":"x","id":7}', ("error", INVALID_REQUEST, None)),
        ('{"jsonrpc":"2.0","method":"","id":7}', ("error", INVALID_REQUEST, None)),
        ('{"jsonrpc":"2.0","id":7}', ("error", INVALID_REQUEST, None)),
        ('{"method":"x","id":7}', ("error", INVALID_REQUEST, None)),
        ("[1]", ("error", INVALID_REQUEST, None)),
        ('{"jsonrpc":"2.0","method":"x"', ("error", PARSE_ERROR, None)),
    ],
)
def test_spec_examples(text: str, expected: tuple[Any, ...]) -> None:
    message = parse_message(text)
    assert outcome_of(message.items[0]) == expected
