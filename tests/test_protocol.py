"""The sans-IO JSON-RPC core: classification of frames and exact encodings."""

from __future__ import annotations

import json

import pytest

from aleph_trio.protocol import (
    MAX_ID_DIGITS,
    Dropped,
    ErrorCode,
    Invalid,
    InvalidParams,
    Notification,
    Request,
    encode_batch,
    encode_error,
    encode_notification,
    encode_result,
    parse_message,
)


def one(text: str) -> object:
    message = parse_message(text)
    assert not message.batch
    assert len(message.items) == 1
    return message.items[0]


def test_request_and_notification() -> None:
    assert one('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}') == Request(
        1, "echo", {"a": 1}
    )
    assert one('{"jsonrpc":"2.0","method":"echo"}') == Notification("echo", None)
    assert one('{"jsonrpc":"2.0","id":null,"method":"echo"}') == Request(None, "echo", None)
    assert one('{"jsonrpc":"2.0","id":"abc","method":"echo"}') == Request("abc", "echo", None)


def test_large_integer_id_is_exact() -> None:
    big = 2**100 + 7
    item = one(f'{{"jsonrpc":"2.0","id":{big},"method":"echo"}}')
    assert isinstance(item, Request) and item.id == big
    assert f'"id":{big}'.encode() in encode_result(item.id, {})


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", ErrorCode.PARSE_ERROR),
        ("", ErrorCode.PARSE_ERROR),
        ('{"a": NaN}', ErrorCode.PARSE_ERROR),
        ("[]", ErrorCode.INVALID_REQUEST),
        ("1", ErrorCode.INVALID_REQUEST),
        ('"x"', ErrorCode.INVALID_REQUEST),
        ('{"id":1,"method":"echo"}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"1.0","id":1,"method":"echo"}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":""}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":5}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1.5,"method":"echo"}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":true,"method":"echo"}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":[1],"method":"echo"}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":"echo","params":"x"}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":"echo","params":null}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","method":"echo","params":5}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":1,"method":"echo","extra":1}', ErrorCode.INVALID_REQUEST),
    ],
)
def test_invalid_frames_answer_with_null_id(frame: str, code: int) -> None:
    item = one(frame)
    assert isinstance(item, Invalid)
    assert item.error.code == code
    assert item.id is None


def test_array_params_on_request_is_invalid_params_with_its_id() -> None:
    item = one('{"jsonrpc":"2.0","id":7,"method":"echo","params":[1,2]}')
    assert isinstance(item, Invalid)
    assert item.id == 7
    assert isinstance(item.error, InvalidParams)


def test_array_params_on_notification_is_dropped_silently() -> None:
    item = one('{"jsonrpc":"2.0","method":"echo","params":[1]}')
    assert isinstance(item, Dropped)


def test_batch_items_are_classified_individually() -> None:
    message = parse_message(
        '[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"},5,{"foo":"bar"}]'
    )
    assert message.batch
    kinds = [type(item) for item in message.items]
    assert kinds == [Request, Notification, Invalid, Invalid]


def test_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    item = one("[" * 100_000 + "]" * 100_000)
    assert isinstance(item, Invalid)


def test_encodings_are_valid_json_rpc() -> None:
    assert json.loads(encode_result("x", {"a": [1]})) == {
        "jsonrpc": "2.0",
        "id": "x",
        "result": {"a": [1]},
    }
    err = json.loads(
        encode_error(None, InvalidParams("bad", errors=[{"path": "$.a", "message": "m"}]))
    )
    assert err == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32602,
            "message": "bad",
            "data": {"errors": [{"path": "$.a", "message": "m"}]},
        },
    }
    assert json.loads(encode_notification("event", {"seq": 1})) == {
        "jsonrpc": "2.0",
        "method": "event",
        "params": {"seq": 1},
    }
    assert json.loads(encode_batch([encode_result(1, 1), encode_result(2, 2)])) == [
        {"jsonrpc": "2.0", "id": 1, "result": 1},
        {"jsonrpc": "2.0", "id": 2, "result": 2},
    ]


# -- naming the fault ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "where", "unit"),
    [
        (
            '{"jsonrpc":"2.0","id":1,"method":"echo","params":{"text":"\\ud800"}}',
            "at $.params.text",
            "\\ud800",
        ),
        (
            '{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":["x\\udc00y"]}}',
            "at $.params.a[0]",
            "\\udc00",
        ),
        (
            '{"jsonrpc":"2.0","id":1,"method":"echo","params":{"\\ud83d":1}}',
            "in a member name at $.params",
            "\\ud83d",
        ),
        ('[{"jsonrpc":"2.0","id":1,"method":"echo\\udbff"}]', "at $[0].method", "\\udbff"),
        ('"\\ud800"', "at $", "\\ud800"),
    ],
)
def test_unpaired_surrogate_is_named(frame: str, where: str, unit: str) -> None:
    item = one(frame)
    assert isinstance(item, Invalid)
    assert item.error.code == ErrorCode.PARSE_ERROR
    assert item.error.message == (
        f"Parse error: the text contains an unpaired surrogate ({unit}) {where}"
    )


def test_paired_surrogates_are_one_character() -> None:
    item = one('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"t":"\\ud83d\\ude00"}}')
    assert isinstance(item, Request) and item.params == {"t": "\U0001f600"}


@pytest.mark.parametrize("digits", [MAX_ID_DIGITS + 1, 400, 4300, 5000, 100_000])
@pytest.mark.parametrize("sign", ["", "-"])
def test_integer_id_past_the_limit_is_an_invalid_request(digits: int, sign: str) -> None:
    item = one(f'{{"jsonrpc":"2.0","id":{sign}{"7" * digits},"method":"echo"}}')
    assert isinstance(item, Invalid)
    assert item.id is None
    assert item.error.code == ErrorCode.INVALID_REQUEST
    assert item.error.message == (
        f'Invalid request: an integer "id" may have at most {MAX_ID_DIGITS} digits'
    )


@pytest.mark.parametrize("digits", [1, 19, 20, 39, 40, 81, MAX_ID_DIGITS])
def test_integer_ids_up_to_the_limit_are_echoed_exactly(digits: int) -> None:
    id_ = -int("9" * digits)
    item = one(f'{{"jsonrpc":"2.0","id":{id_},"method":"echo"}}')
    assert isinstance(item, Request) and item.id == id_
    assert f'"id":{id_}'.encode() in encode_result(item.id, {})


def test_huge_id_in_a_batch_spoils_only_its_element() -> None:
    message = parse_message(
        '[{"jsonrpc":"2.0","id":' + "1" * 5000 + ',"method":"echo"},'
        '{"jsonrpc":"2.0","id":2,"method":"echo","params":{"n":' + "3" * 200 + "}}]"
    )
    assert message.batch
    first, second = message.items
    assert isinstance(first, Invalid) and first.error.code == ErrorCode.INVALID_REQUEST
    assert second == Request(2, "echo", {"n": int("3" * 200)})


def test_huge_number_elsewhere_is_a_parse_error_naming_it() -> None:
    item = one('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"n":[-' + "4" * 5000 + "]}}")
    assert isinstance(item, Invalid)
    assert item.error.code == ErrorCode.PARSE_ERROR
    assert item.error.message == (
        "Parse error: the integer at $.params.n[0] is too long to read (5000 digits)"
    )


def test_other_parse_errors_keep_the_decoder_message() -> None:
    item = one('{"jsonrpc":"2.0","id":1,"method":"echo"')
    assert isinstance(item, Invalid)
    assert item.error.message == "Parse error: Input data was truncated"


# -- batch size ----------------------------------------------------------------------------------


def test_batch_up_to_the_limit_is_a_batch() -> None:
    text = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "echo"} for i in range(5)])
    message = parse_message(text, max_batch=5)
    assert message.batch and len(message.items) == 5


def test_batch_over_the_limit_is_one_invalid_request() -> None:
    text = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "echo"} for i in range(6)])
    message = parse_message(text, max_batch=5)
    assert not message.batch
    [item] = message.items
    assert isinstance(item, Invalid) and item.id is None
    assert item.error.code == ErrorCode.INVALID_REQUEST
    assert (
        item.error.message
        == "Invalid request: a batch may hold at most 5 elements (this one has 6)"
    )
    assert item.error.data == {"max_batch": 5}
