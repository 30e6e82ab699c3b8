"""Splitting streamed bodies into events: however the bytes are cut, the events are the same."""

from __future__ import annotations

import datetime
import email.utils
import itertools
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from hypothesis import given, strategies as st

from aleph_trio.providers._errors import ProviderError
from aleph_trio.providers._http import ndjson_lines, retry_after, sse_data


def response(parts: list[bytes]) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    return httpx.Response(200, content=body())


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


async def sse_events(parts: list[bytes]) -> list[list[bytes]]:
    return [batch async for batch in sse_data(response(parts))]


event_data = st.lists(
    st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=12),
    min_size=1,
    max_size=3,
)


@given(
    events=st.lists(event_data, min_size=1, max_size=8),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    extras=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_sse_events_survive_any_cut(
    events: list[list[str]], newline: str, extras: bool, cuts: list[int]
) -> None:
    text = ""
    for lines in events:
        if extras:
            text += f": a comment{newline}event: message{newline}"
        text += "".join(f"data: {line}{newline}" for line in lines) + newline
    parts = cut(text.encode(), cuts)
    batches = trio.run(sse_events, parts)
    assert all(batches)
    assert len(batches) <= len(parts) + 1
    got = [data for batch in batches for data in batch]
    assert got == ["\n".join(lines).encode() for lines in events]


async def test_sse_last_event_without_blank_line_and_no_space_after_colon() -> None:
    batches = await sse_events([b"data:one\n\ndata:", b" two\r"])
    assert batches == [[b"one"], [b"two"]]


async def test_sse_one_read_is_one_batch() -> None:
    body = b"".join(f"data: {i}\n\n".encode() for i in range(100))
    assert await sse_events([body]) == [[str(i).encode() for i in range(100)]]


@given(
    docs=st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), max_size=8),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_ndjson_lines_survive_any_cut(docs: list[dict[str, int]], cuts: list[int]) -> None:
    body = b"".join(json.dumps(d).encode() + b"\r\n\n" for d in docs)

    async def read() -> list[list[dict[str, object]]]:
        return [b async for b in ndjson_lines(response(cut(body, cuts)), "provider 'x'")]

    batches = trio.run(read)
    assert all(batches)
    assert [d for batch in batches for d in batch] == docs


async def test_ndjson_shows_the_lines_before_a_broken_one() -> None:
    got: list[dict[str, object]] = []
    broken = httpx.Response(200, content=b'{"a": 1}\n{"b": 2}\n{oops\n')

    async def read() -> None:
        async for batch in ndjson_lines(broken, "p"):
            got.extend(batch)

    with pytest.raises(ProviderError, match="malformed stream line"):
        await read()
    assert got == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("120", 120, 120),
        (" 0 ", 0, 0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0, 0),  # in the past: at once
        ("soon", None, None),
        ("-5", None, None),
    ],
)
def test_retry_after_header(header: str, low: float | None, high: float | None) -> None:
    got = retry_after(header)
    if low is None:
        assert got is None
    else:
        assert got is not None and low <= got <= high  # type: ignore[operator]


def test_retry_after_as_a_date_ahead() -> None:
    ahead = email.utils.format_datetime(
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=90), usegmt=True
    )
    got = retry_after(ahead)
    assert got is not None and 80 <= got <= 91
