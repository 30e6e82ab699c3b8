"""The sans-IO JSON-RPC core: classification of frames and exact encodings."""

from __future__ import annotations

import json

import pytest

from aleph_trio.protocol import (
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
