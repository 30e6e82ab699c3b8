"""The HTTP part every remote provider shares: one streaming POST, failures as ProviderError."""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import attrs
import httpx
import msgspec
import trio

from ..kernel import component_logger
from ._errors import ProviderError
from ._framing import NDJSONDecoder, SSEDecoder
from ._read_watchdog import open_watchdog
from ._transport import LeanTransport, env_proxy_mounts
from ._types import Delta, TextDelta, ToolSpec

__all__ = [
    "AnswerReader",
    "Endpoint",
    "decoded_batches",
    "drain",
    "error_detail",
    "function_tools",
    "joined_text",
    "ndjson_lines",
    "open_http_client",
    "post_stream",
    "retry_after",
    "sse_data",
    "tool_arguments",
]

T = TypeVar("T")

log = component_logger("providers")
T_contra = TypeVar("T_contra", contravariant=True)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


@contextlib.asynccontextmanager
async def open_http_client() -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client every provider shares, for as long as the block: direct connections
    through :class:`LeanTransport` (keep-alive, cheap streamed reads), proxies from the
    environment as httpx would set them.

    The transport's read watchdog is a task of a nursery opened here, so the caller owns it:
    on the way out the client is closed, then the watchdog cancelled. An exception from the
    block comes out as it is, not in an exception group."""
    async with open_watchdog() as watchdog:
        client = httpx.AsyncClient(
            transport=LeanTransport(watchdog=watchdog),
            mounts=env_proxy_mounts(),
            follow_redirects=False,
        )
        async with client:
            yield client


def _shown(url: str) -> str:
    """``url`` as logs may show it: no user info, no query (either may carry a key)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None))


@contextlib.asynccontextmanager
async def post_stream(
    http: httpx.AsyncClient,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: httpx.Timeout,
    where: str,
) -> AsyncIterator[httpx.Response]:
    """POST ``body`` and yield the streaming response; every failure, also while it is being
    read, becomes a :class:`ProviderError` that names ``where`` (never the headers)."""
    if log.isEnabledFor(logging.DEBUG):  # the URL and the shape of the request, never headers
        log.debug(
            "%s: POST %s (model %s, %d messages, %d tools)",
            where,
            _shown(url),
            body.get("model"),
            len(body.get("messages") or ()),
            len(body.get("tools") or ()),
        )
    try:
        async with http.stream(
            "POST", url, json=body, headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                detail = error_detail(await response.aread())
                suffix = f": {detail}" if detail else ""
                raise ProviderError(
                    f"{where} answered HTTP {response.status_code}{suffix}",
                    status=response.status_code,
                    retryable=response.status_code in RETRYABLE_STATUS
                    or response.status_code >= 500,
                    retry_after=retry_after(response.headers.get("retry-after")),
                )
            yield response
    except httpx.TimeoutException:
        raise ProviderError(f"{where} timed out", retryable=True) from None
    except httpx.ConnectError as exc:
        raise ProviderError(
            f"{where} could not be reached ({_reason(exc)})", retryable=True
        ) from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise ProviderError(
            f"{where} dropped the connection mid-answer ({_reason(exc)})", retryable=True
        ) from None
    except httpx.HTTPError as exc:
        raise ProviderError(f"{where} failed: {type(exc).__name__}") from None


@attrs.frozen
class Endpoint:
    """Where a remote provider sends its requests, and how long it waits."""

    provider: str
    url: str
    http: httpx.AsyncClient
    timeout_s: float

    @property
    def where(self) -> str:
        return f"provider {self.provider!r}"

    def post(
        self, body: dict[str, Any], headers: dict[str, str]
    ) -> AbstractAsyncContextManager[httpx.Response]:
        return post_stream(
            self.http,
            self.url,
            body=body,
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, connect=10.0),
            where=self.where,
        )

    async def answer(
        self,
        body: dict[str, Any],
        headers: dict[str, str],
        split: Callable[[httpx.Response], AsyncGenerator[list[T], None]],
        reader: AnswerReader[T],
    ) -> AsyncGenerator[list[Delta], None]:
        """POST ``body`` and stream the answer: ``split`` cuts the body into wire items (events,
        lines) per read and ``reader`` turns them into deltas. An answer the body ended before
        ``reader`` saw it finish is a retryable failure."""
        async with (
            self.post(body, headers) as response,
            contextlib.aclosing(split(response)) as items,
            contextlib.aclosing(decoded_batches(items, reader.read)) as batches,
        ):
            async for batch in batches:
                yield batch
        if not reader.finished:
            raise ProviderError(
                f"{self.where} ended the stream without finishing the answer", retryable=True
            )


class AnswerReader(Protocol[T_contra]):
    """What a provider's wire items have said so far (see :meth:`Endpoint.answer`)."""

    finished: bool

    def read(self, item: T_contra, out: list[Delta | str], /) -> bool:
        """Append what ``item`` says to ``out`` (text as bare strings); true once finished."""
        ...


def function_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """Tools in the ``{"type": "function", "function": {...}}`` shape (OpenAI, Ollama)."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def tool_arguments(text: str) -> dict[str, Any]:
    """A tool call's JSON arguments as an object (``{}`` when they are not one)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text[:200] if text else type(exc).__name__


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def error_detail(body: bytes) -> str:
    """The human part of an error body: ``error.message``, ``error`` or the text itself."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:200]
    if isinstance(error, str):
        return error[:200]
    return ""


async def sse_data(response: httpx.Response) -> AsyncGenerator[list[bytes], None]:
    """The ``data`` of the server-sent events each network read completed, one list per read
    (never empty); see :class:`SSEDecoder`."""
    decoder = SSEDecoder()
    feed = decoder.feed
    async for raw in response.aiter_bytes():
        batch = feed(raw)
        if batch:
            yield batch
    last = decoder.flush()
    if last:
        yield last


async def ndjson_lines(
    response: httpx.Response, where: str
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The JSON objects of the lines each network read completed, one list per read (never
    empty); see :class:`NDJSONDecoder`. A line that is not a JSON object fails the stream,
    after the lines before it."""
    decoder = NDJSONDecoder()
    feed = decoder.feed
    async for raw in response.aiter_bytes():
        lines = feed(raw)
        if not lines:
            continue
        batch: list[dict[str, Any]] = []
        try:
            for line in lines:
                batch.append(_ndjson(line, where))
        except ProviderError:
            if batch:  # the lines before the broken one are shown first
                yield batch
            raise
        yield batch
    for line in decoder.flush():
        yield [_ndjson(line, where)]


def _ndjson(line: bytes, where: str) -> dict[str, Any]:
    try:
        doc = _decode_json(line)
    except msgspec.DecodeError:
        raise ProviderError(f"{where} sent a malformed stream line") from None
    if not isinstance(doc, dict):
        raise ProviderError(f"{where} sent a malformed stream line")
    return doc


_decode_json = msgspec.json.Decoder().decode


async def decoded_batches(
    raw_batches: AsyncIterator[list[T]], read: Callable[[T, list[Delta | str]], bool]
) -> AsyncGenerator[list[Delta], None]:
    """Each batch of wire items (events, lines) as one batch of deltas: ``read`` appends what
    one item says (text as bare strings) and answers true once the answer is complete, which
    ends the stream. When an item fails, what the items before it said goes out first, then
    the failure."""
    async for batch in raw_batches:
        out: list[Delta | str] = []
        try:
            done = any(read(item, out) for item in batch)
        except ProviderError:
            if out:
                yield joined_text(out)
            raise
        if out:
            yield joined_text(out)
        if done:
            await drain(raw_batches)
            return


#: How long the rest of a body may take to arrive once the answer is complete (the end marker
#: is usually followed at once by the body's end).
DRAIN_GRACE_S = 0.5


async def drain(items: AsyncIterator[object]) -> None:
    """Read what follows an answer's end marker until the body ends, for at most
    :data:`DRAIN_GRACE_S`: a body read to its end lets its connection go back to the pool,
    one left early is closed. Whatever comes after the answer cannot fail it."""
    with trio.move_on_after(DRAIN_GRACE_S):
        try:
            async for _ in items:
                pass
        except (ProviderError, httpx.HTTPError):
            pass


def joined_text(out: list[Delta | str]) -> list[Delta]:
    """Each run of text pieces (appended as bare strings) as one :class:`TextDelta`: a read of
    300 chunks is one delta, not 300 for the agent loop to handle one by one."""
    result: list[Delta] = []
    texts: list[str] = []
    for item in out:
        if isinstance(item, str):
            texts.append(item)
        else:
            if texts:
                result.append(TextDelta("".join(texts)))
                texts = []
            result.append(item)
    if texts:
        result.append(TextDelta("".join(texts)))
    return result
