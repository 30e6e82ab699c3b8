"""Sans-IO JSON-RPC 2.0 framing: text in, items out; results in, bytes out.

``parse_message`` turns one WebSocket text message into a :class:`Message`: a list of items
(:class:`Request`, :class:`Notification` or :class:`Invalid`) and whether it was a batch. The
``encode_*`` functions build the bytes of responses and notifications. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

import attrs
import msgspec

from ._errors import AlephError, InvalidParams, InvalidRequest, ParseError
from ._reread import HugeInt, reread

__all__ = [
    "MAX_ID_DIGITS",
    "Dropped",
    "Id",
    "Invalid",
    "Item",
    "Message",
    "Notification",
    "Request",
    "encode_batch",
    "encode_error",
    "encode_event",
    "encode_notification",
    "encode_result",
    "parse_message",
]

Id = str | int | None

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@attrs.frozen
class Request:
    """A call that expects exactly one response."""

    id: Id
    method: str
    params: dict[str, Any] | None


@attrs.frozen
class Notification:
    """A call that is executed and never answered."""

    method: str
    params: dict[str, Any] | None


@attrs.frozen
class Invalid:
    """Something that must be answered with ``error`` (and never executed)."""

    id: Id
    error: AlephError


@attrs.frozen
class Dropped:
    """A notification that cannot be executed (bad params); there is nobody to tell."""

    method: str
    reason: str


Item = Request | Notification | Invalid | Dropped


@attrs.frozen
class Message:
    items: list[Item]
    batch: bool


def parse_message(text: str | bytes, *, max_batch: int | None = None) -> Message:
    """Parse one frame. Never raises: every problem becomes an :class:`Invalid` item.

    A batch of more than ``max_batch`` elements is answered as a whole with one ``-32600``
    (``data.max_batch``), like an empty one: none of its elements runs.
    """
    try:
        doc = _decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError) as exc:
        doc = reread(text, exc)
        if isinstance(doc, ParseError):
            return Message([Invalid(None, doc)], batch=False)
    except RecursionError:
        return Message([Invalid(None, ParseError("Parse error: nesting too deep"))], batch=False)
    if isinstance(doc, list):
        if not doc:
            return Message([Invalid(None, InvalidRequest("Invalid request: empty batch"))], False)
        if max_batch is not None and len(doc) > max_batch:
            error = InvalidRequest(
                f"Invalid request: a batch may hold at most {max_batch} elements"
                f" (this one has {len(doc)})",
                {"max_batch": max_batch},
            )
            return Message([Invalid(None, error)], batch=False)
        return Message([parse_item(element) for element in doc], batch=True)
    return Message([parse_item(doc)], batch=False)


def parse_item(doc: object) -> Item:
    """Classify one decoded JSON value as a request, a notification or an invalid item."""
    if not isinstance(doc, dict):
        return _invalid("a request must be a JSON object")
    if doc.get("jsonrpc") != "2.0":
        return _invalid('"jsonrpc" must be exactly "2.0"')
    method = doc.get("method")
    if not isinstance(method, str) or not method:
        return _invalid('"method" must be a non-empty string')
    has_id = "id" in doc
    id_ = doc.get("id")
    if isinstance(id_, HugeInt) or (_is_int(id_) and not -_ID_BOUND < id_ < _ID_BOUND):
        return _invalid(f'an integer "id" may have at most {MAX_ID_DIGITS} digits')
    if has_id and not (id_ is None or isinstance(id_, str) or _is_int(id_)):
        return _invalid('"id" must be a string, an integer or null')
    for key in doc:
        if key not in _MEMBERS:
            return _invalid(f"unknown member {key!r}")
    params = doc.get("params")
    if "params" in doc and not isinstance(params, dict):
        if isinstance(params, list):
            if not has_id:
                # Never answered, not even to say its params are wrong; never executed either.
                return Dropped(method, "params must be an object")
            return Invalid(id_, InvalidParams("Invalid params: params must be an object"))
        return _invalid('"params" must be an object when present')
    if has_id:
        return Request(id_, method, params)
    return Notification(method, params)


_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})
#: Integer ids are echoed exactly up to this many digits (the sign not counted); longer ones
#: make the request invalid. 100 digits hold any 64-, 128- or 256-bit counter.
MAX_ID_DIGITS = 100
_ID_BOUND = 10**MAX_ID_DIGITS


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(why: str) -> Invalid:
    return Invalid(None, InvalidRequest(f"Invalid request: {why}"))


def encode_result(id_: Id, result: object) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "id": id_, "result": result})


def encode_error(id_: Id, error: AlephError) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "id": id_, "error": error.to_object()})


def encode_notification(method: str, params: object) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "method": method, "params": params})


def encode_event(topic: str, seq: int, ts: str, data: object) -> bytes:
    """The ``event`` notification of one published event (PROTOCOL §6)."""
    return _encoder.encode(
        {
            "jsonrpc": "2.0",
            "method": "event",
            "params": {"topic": topic, "seq": seq, "ts": ts, "data": data},
        }
    )


def encode_batch(parts: list[bytes]) -> bytes:
    return b"[" + b",".join(parts) + b"]"
