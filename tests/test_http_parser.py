"""The HTTP request reader: strict, sans-IO, and never surprised by what it is fed."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from aleph_trio.web._parser import HttpRequest, Refusal, RequestReader


def read_all(data: bytes, *, chunk: int | None = None) -> list[HttpRequest | Refusal]:
    reader = RequestReader(max_head=1024, max_body=100)
    out: list[HttpRequest | Refusal] = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        reader.feed(piece)
        while (item := reader.next()) is not None:
            out.append(item)
    return out


def test_pipelined_requests_with_a_skipped_body_byte_by_byte() -> None:
    data = (
        b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /ready HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /"
        b"\r\nHEAD /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization:  Bearer t  \r\n\r\n"
    )
    for chunk in (None, 1, 7):
        requests = read_all(data, chunk=chunk)
        assert [(r.method, r.target) for r in requests if isinstance(r, HttpRequest)] == [
            ("GET", "/health"),
            ("POST", "/ready"),
            ("HEAD", "/metrics?x=1"),
        ]
        last = requests[-1]
        assert isinstance(last, HttpRequest)
        assert last.header(b"authorization") == b"Bearer t"  # surrounding whitespace dropped


def test_connection_persistence() -> None:
    def keep(head: bytes) -> bool:
        (request,) = read_all(head + b"\r\n")
        assert isinstance(request, HttpRequest)
        return request.keep_alive

    assert keep(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert not keep(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n")
    assert not keep(b"GET / HTTP/1.0\r\n")
    assert keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n")


def test_what_is_refused() -> None:
    cases = {
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n": 501,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n": 413,
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\nHost: a\nX: smuggled\r\n\r\n": 400,
        b"GET / HTTP/1.1\r\n\r\n": 400,  # no Host
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n": 505,
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n": 400,
        b"NONSENSE\r\n\r\n": 400,
        b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n": 431,
    }
    for data, status in cases.items():
        items = read_all(data + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        # Refused, and nothing after the refusal is read as a request.
        assert items == [Refusal(status, items[0].message)], data  # type: ignore[union-attr]


def test_an_unfinished_head_past_the_limit_is_refused_before_it_ends() -> None:
    reader = RequestReader(max_head=1024, max_body=0)
    reader.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000)
    item = reader.next()
    assert isinstance(item, Refusal) and item.status == 431


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=64))
def test_any_bytes_give_requests_refusals_or_a_wait(data: bytes, chunk: int) -> None:
    items = read_all(data, chunk=chunk)
    for item in items[:-1]:
        assert isinstance(item, HttpRequest)  # a refusal is always the last thing read
    assert read_all(data) == items  # how the bytes were cut changes nothing
