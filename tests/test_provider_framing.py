"""The sans-I/O decoders of provider bodies: HTTP/1.1 body framing (chunked, content-length,
until close) and the server-sent events and JSON lines inside. However the bytes are cut, the
result is the same; garbage decodes or raises the decoder's own error, never another one."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import aleph_trio.providers as providers
from aleph_trio.providers._body_decoders import (
    MAX_SIZE_LINE,
    MAX_TRAILER,
    BodyError,
    ChunkedDecoder,
    CloseDecoder,
    LengthDecoder,
    body_decoder,
)
from aleph_trio.providers._framing import NDJSONDecoder, SSEDecoder

cuts = st.lists(st.integers(min_value=0), max_size=16)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (taken modulo its length), with no empty piece."""
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# --- chunked ---------------------------------------------------------------------------------

line_end = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A chunked encoding of random payloads: any hex case, leading zeros, extensions,
    whitespace before them, bare LF line ends and trailer fields."""
    payloads = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=8))
    wire = b""
    for payload in payloads:
        size = b"%x" % len(payload)
        size = draw(st.sampled_from([size, size.upper(), b"00" + size]))
        ext = draw(st.sampled_from([b"", b";a=b", b' \t;q="x y"', b";" + b"e" * 300]))
        wire += size + ext + draw(line_end) + payload + draw(line_end)
    wire += draw(st.sampled_from([b"0", b"000", b"0;last"])) + draw(line_end)
    for _ in range(draw(st.integers(0, 3))):
        wire += b"X-Field-%d: value" % draw(st.integers(0, 99)) + draw(line_end)
    wire += draw(line_end)
    return wire, payloads


def feed_all(decoder: ChunkedDecoder | LengthDecoder | CloseDecoder, pieces: list[bytes]) -> bytes:
    return b"".join(decoder.feed(piece) for piece in pieces)


@given(body=chunked_bodies(), extra=st.binary(max_size=20), points=cuts)
def test_chunked_decodes_any_split(
    body: tuple[bytes, list[bytes]], extra: bytes, points: list[int]
) -> None:
    wire, payloads = body
    decoder = ChunkedDecoder()
    out = b""
    fed = 0
    for piece in cut(wire + extra, points):
        out += decoder.feed(piece)
        fed += len(piece)
        # Never before the terminator is complete, and as soon as it is.
        assert decoder.done == (fed >= len(wire))
    assert out == b"".join(payloads)
    assert decoder.leftover == extra
    decoder.eof()  # a body that ended: the connection closing is no error


@given(body=chunked_bodies(), points=cuts)
def test_chunked_feeds_hand_out_the_data_as_it_comes(
    body: tuple[bytes, list[bytes]], points: list[int]
) -> None:
    """Each feed gives every data byte it brought, so a reader never holds data back: what has
    come out after a feed is the payload bytes among the bytes fed so far."""
    wire, payloads = body
    data = b"".join(payloads)
    decoder = ChunkedDecoder()
    out = b""
    fed = b""
    for piece in cut(wire, points):
        out += decoder.feed(piece)
        fed += piece
        assert data.startswith(out)
        # The payload bytes already fed: decode the fed prefix with a whole-buffer reference.
        assert out == _reference_chunk_data(fed)


def _reference_chunk_data(wire: bytes) -> bytes:
    """The chunk data within a prefix of a valid chunked body, decoded the slow way."""
    out = b""
    pos = 0
    while True:
        eol = wire.find(b"\n", pos)
        if eol < 0:
            return out
        size = int(re.split(rb"[ \t;\r]", wire[pos:eol], maxsplit=1)[0], 16)
        if not size:
            return out
        start = eol + 1
        out += wire[start : start + size]
        if start + size >= len(wire):
            return out
        pos = start + size + (2 if wire.startswith(b"\r\n", start + size) else 1)


fragments = st.sampled_from(
    [
        b"0",
        b"5",
        b"a",
        b"F",
        b"zz",
        b" ",
        b";x=1",
        b"\r",
        b"\n",
        b"\r\n",
        b"hello",
        b"X: 1",
        b"\x00",
    ]
)
garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(fragments, max_size=40).map(b"".join),
)


def _outcome(decoder_type: type[ChunkedDecoder], pieces: list[bytes]) -> tuple[object, ...]:
    decoder = decoder_type()
    out = b""
    try:
        for piece in pieces:
            out += decoder.feed(piece)
    except BodyError:
        return ("error",)
    return out, decoder.done, decoder.leftover


@settings(max_examples=300)
@given(data=garbage, points=cuts)
def test_chunked_garbage_decodes_or_raises_body_error_whatever_the_split(
    data: bytes, points: list[int]
) -> None:
    # Only BodyError may escape: anything else fails the test.
    whole = _outcome(ChunkedDecoder, [data])
    assert _outcome(ChunkedDecoder, cut(data, points)) == whole
    if whole != ("error",):
        decoder = ChunkedDecoder()
        decoder.feed(data)
        try:
            decoder.eof()
        except BodyError:
            assert not decoder.done


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", "malformed chunk size line: b'zz"),
        (b"-5\r\nhello\r\n", "malformed chunk size line"),
        (b"5 x\r\nhello\r\n", "malformed chunk size line"),
        (b"1234567890abcdef0\r\n", "malformed chunk size line"),  # 17 digits
        (b"2\r\nhello\r\n0\r\n\r\n", "no CRLF after a chunk"),
        (b"5\r\nhello\rX", "no CRLF after a chunk"),
        (b"5;" + b"e" * MAX_SIZE_LINE, f"chunk size line longer than {MAX_SIZE_LINE} bytes"),
        (b"0\r\nX: " + b"v" * MAX_TRAILER, f"trailer section larger than {MAX_TRAILER} bytes"),
        (b"0\r\n" + b"X: v\r\n" * (MAX_TRAILER // 6 + 1), "trailer section larger"),
    ],
)
def test_chunked_malformed(wire: bytes, message: str) -> None:
    with pytest.raises(BodyError, match=re.escape(message)):
        ChunkedDecoder().feed(wire)
    # The same, a few bytes at a time.
    with pytest.raises(BodyError, match=re.escape(message)):
        feed_all(ChunkedDecoder(), [wire[i : i + 7] for i in range(0, len(wire), 7)])


@pytest.mark.parametrize("wire", [b"", b"5\r\nhel", b"5\r\nhello\r\n", b"0\r\n", b"0\r\nX: 1\r\n"])
def test_chunked_eof_before_the_end_is_an_error(wire: bytes) -> None:
    decoder = ChunkedDecoder()
    decoder.feed(wire)
    assert not decoder.done
    with pytest.raises(BodyError, match="in the middle of the body"):
        decoder.eof()


def test_chunked_after_the_end_everything_is_leftover() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r\n0\r\n\r\nHTTP") == b"abc"
    assert decoder.feed(b"/1.1 200") == b""
    assert decoder.done
    assert decoder.leftover == b"HTTP/1.1 200"


def test_chunked_one_feed_of_many_chunks_is_one_piece() -> None:
    wire = b"".join(b"3\r\n%03d\r\n" % i for i in range(300))
    assert ChunkedDecoder().feed(wire) == b"".join(b"%03d" % i for i in range(300))


# --- content-length and until close ----------------------------------------------------------


@given(body=st.binary(max_size=100), extra=st.binary(max_size=20), points=cuts)
def test_length_decodes_any_split(body: bytes, extra: bytes, points: list[int]) -> None:
    decoder = LengthDecoder(len(body))
    out = b""
    fed = 0
    for piece in cut(body + extra, points):
        out += decoder.feed(piece)
        fed += len(piece)
        assert decoder.done == (fed >= len(body))
        assert decoder.remaining == max(0, len(body) - fed)
    assert decoder.done
    assert out == body
    assert decoder.leftover == extra
    decoder.eof()


def test_length_eof_before_the_end_is_an_error() -> None:
    decoder = LengthDecoder(10)
    assert decoder.feed(b"12345") == b"12345"
    with pytest.raises(BodyError, match="in the middle of the body"):
        decoder.eof()


def test_empty_length_body_is_done_at_once() -> None:
    decoder = LengthDecoder(0)
    assert decoder.done
    assert decoder.feed(b"junk") == b""
    assert decoder.leftover == b"junk"


@given(pieces=st.lists(st.binary(min_size=1, max_size=30), max_size=8))
def test_close_delimited_body_is_every_byte_until_eof(pieces: list[bytes]) -> None:
    decoder = CloseDecoder()
    assert [decoder.feed(p) for p in pieces] == pieces
    before = decoder.done
    decoder.eof()
    assert (before, decoder.done) == (False, True)
    assert decoder.leftover == b""


Headers = list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("head_only", "status", "version", "headers", "kind", "length", "reusable"),
    [
        (False, 200, 1, [(b"Content-Length", b"12")], LengthDecoder, 12, True),
        (False, 200, 1, [(b"content-length", b"5, 5")], LengthDecoder, 5, True),
        (False, 200, 1, [(b"Transfer-Encoding", b"chunked")], ChunkedDecoder, None, True),
        (False, 200, 1, [(b"transfer-encoding", b"gzip, Chunked")], ChunkedDecoder, None, True),
        (False, 200, 1, [(b"transfer-encoding", b"gzip")], CloseDecoder, None, False),
        # A length next to an encoding: the encoding wins, the connection is not reused.
        (
            False,
            200,
            1,
            [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")],
            ChunkedDecoder,
            None,
            False,
        ),
        (False, 200, 1, [], CloseDecoder, None, False),
        (False, 200, 0, [(b"content-length", b"2")], LengthDecoder, 2, False),
        (
            False,
            200,
            1,
            [(b"Connection", b"keep-alive, Close"), (b"content-length", b"2")],
            LengthDecoder,
            2,
            False,
        ),
        (True, 200, 1, [(b"content-length", b"100")], LengthDecoder, 0, True),
        (False, 204, 1, [], LengthDecoder, 0, True),
        (False, 304, 1, [(b"transfer-encoding", b"chunked")], LengthDecoder, 0, True),
    ],
)
def test_body_decoder_follows_the_head(
    head_only: bool,
    status: int,
    version: int,
    headers: Headers,
    kind: type[object],
    length: int | None,
    reusable: bool,
) -> None:
    decoder, can_reuse = body_decoder(head_only, status, version, headers)
    assert type(decoder) is kind
    if length is not None:
        assert isinstance(decoder, LengthDecoder)
        assert decoder.remaining == length
        assert decoder.done == (length == 0)
    assert can_reuse is reusable


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([(b"content-length", b"2"), (b"content-length", b"3")], "conflicting content-length"),
        ([(b"content-length", b"-1")], "invalid content-length"),
        ([(b"content-length", b"1e3")], "invalid content-length"),
        ([(b"content-length", b"9" * 19)], "invalid content-length"),
    ],
)
def test_body_decoder_refuses_lengths_it_cannot_trust(headers: Headers, message: str) -> None:
    with pytest.raises(BodyError, match=message):
        body_decoder(False, 200, 1, headers)


# --- server-sent events ----------------------------------------------------------------------

sse_line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])
sse_value = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=12).map(
    str.encode
)


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Events of one or more data lines among comments and other fields, each line with a
    line end of its own, and the data each event carries."""
    wire = b""
    expected: list[bytes] = []

    def line(text: bytes) -> None:
        nonlocal wire
        wire += text
        # A CR line end and an LF line end after it would be a single CRLF line end.
        if text == b"" and wire.endswith(b"\r"):
            wire += draw(st.sampled_from([b"\r", b"\r\n"]))
        else:
            wire += draw(sse_line_end)

    for _ in range(draw(st.integers(0, 6))):
        values = draw(st.lists(sse_value, min_size=1, max_size=3))
        for value in values:
            if draw(st.booleans()):
                line(draw(st.sampled_from([b": comment", b"event: delta", b"id: 7", b"retry: 5"])))
            if value == b"" and draw(st.booleans()):
                line(b"data")  # no colon: an empty line of data
            else:
                space = b" " if value.startswith(b" ") else draw(st.sampled_from([b" ", b""]))
                line(b"data:" + space + value)
        line(b"")
        expected.append(b"\n".join(values))
        if draw(st.booleans()):  # an event without data is no event
            line(b": keep-alive")
            line(b"")
    return wire, expected


def sse_feed_all(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    found = [data for piece in pieces for data in decoder.feed(piece)]
    return found + decoder.flush()


@settings(max_examples=300)
@given(stream=sse_streams(), points=cuts)
def test_sse_decodes_any_split(stream: tuple[bytes, list[bytes]], points: list[int]) -> None:
    wire, expected = stream
    assert sse_feed_all(cut(wire, points)) == expected


@given(stream=sse_streams())
def test_sse_byte_by_byte(stream: tuple[bytes, list[bytes]]) -> None:
    """Every boundary at once, a CR at the end of one feed and its LF in the next among them."""
    wire, expected = stream
    assert sse_feed_all([wire[i : i + 1] for i in range(len(wire))]) == expected


def test_sse_cr_then_lf_in_the_next_feed_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == []  # the blank line may yet be a CRLF
    assert decoder.feed(b"\n") == [b"a\nb"]
    assert decoder.flush() == []


def test_sse_an_event_is_out_in_the_feed_that_completes_it() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: tw") == [b"one"]
    assert decoder.feed(b"o\n") == []
    assert decoder.feed(b"\ndata:three\n\n: ping\n\n") == [b"two", b"three"]


def test_sse_flush_gives_an_event_left_without_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:one\n\ndata:") == [b"one"]
    assert decoder.feed(b" two\r") == []
    assert decoder.flush() == [b"two"]
    assert decoder.flush() == []


def _reference_sse(wire: bytes) -> list[bytes]:
    """The event stream algorithm of the HTML standard, line by line, with the decoder's
    leniency at the end (an event the body left without its blank line still counts)."""
    found: list[bytes] = []
    data: list[bytes] = []
    for line in re.split(rb"\r\n|\r|\n", wire):
        if not line:
            if data:
                found.append(b"\n".join(data))
            data = []
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
    if data:
        found.append(b"\n".join(data))
    return found


sse_garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            [
                b"data",
                b"data:",
                b"data: ",
                b":",
                b" ",
                b"x",
                b"event",
                b"\r",
                b"\n",
                b"\r\n",
                b"\x00",
            ]
        ),
        max_size=50,
    ).map(b"".join),
)


@settings(max_examples=300)
@given(wire=sse_garbage, points=cuts)
def test_sse_any_bytes_decode_as_the_standard_says(wire: bytes, points: list[int]) -> None:
    assert sse_feed_all(cut(wire, points)) == _reference_sse(wire)


# --- JSON lines ------------------------------------------------------------------------------

ndjson_line = st.binary(max_size=30).filter(lambda b: b"\n" not in b and b.strip() != b"")


@given(
    lines=st.lists(st.tuples(ndjson_line, st.sampled_from([b"\n", b"\r\n"])), max_size=8),
    blanks=st.lists(st.sampled_from([b"\n", b"\r\n", b"  \n", b"\t\r\n"]), max_size=3),
    last=st.one_of(st.just(b""), ndjson_line.filter(lambda b: not b.endswith(b"\r"))),
    points=cuts,
)
def test_ndjson_decodes_any_split(
    lines: list[tuple[bytes, bytes]], blanks: list[bytes], last: bytes, points: list[int]
) -> None:
    # A line's own CR (not part of its line end) stays in it.
    lines = [(line, end) for line, end in lines if not (end == b"\n" and line.endswith(b"\r"))]
    wire = b"".join(blanks) + b"".join(line + end for line, end in lines) + last
    decoder = NDJSONDecoder()
    found = [line for piece in cut(wire, points) for line in decoder.feed(piece)]
    assert found == [line for line, _ in lines]
    assert decoder.flush() == ([last] if last else [])
    assert decoder.flush() == []


def _reference_ndjson(wire: bytes) -> list[bytes]:
    lines = wire.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    return [line for line in lines if line.strip()]


@settings(max_examples=300)
@given(
    wire=st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.sampled_from([b"{}", b" ", b"\r", b"\n", b"\r\n", b"x", b"\t"]), max_size=50
        ).map(b"".join),
    ),
    points=cuts,
)
def test_ndjson_any_bytes_split_like_the_whole(wire: bytes, points: list[int]) -> None:
    decoder = NDJSONDecoder()
    found = [line for piece in cut(wire, points) for line in decoder.feed(piece)]
    assert found + decoder.flush() == _reference_ndjson(wire)


def test_ndjson_a_line_is_out_in_the_feed_that_ends_it() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert decoder.feed(b": 2}\r") == []
    assert decoder.feed(b"\n\n  \n") == [b'{"b": 2}']
    assert decoder.flush() == []


# --- no I/O ----------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["_body_decoders", "_framing"])
def test_the_decoders_do_no_io(module: str) -> None:
    """Plain objects: only the standard library's pure modules, nothing async."""
    path = Path(providers.__file__).parent / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or "").split(".")[0])
        assert not isinstance(node, ast.AsyncFunctionDef | ast.Await), module
    assert imported <= {"__future__", "re", "typing", "collections"}, imported
