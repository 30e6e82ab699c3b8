"""How a provider's answer body is cut into messages, without any I/O: server-sent events
(:class:`SSEDecoder`, OpenAI and Anthropic) and JSON lines (:class:`NDJSONDecoder`, Ollama).

Each decoder is fed the body's bytes as they arrive, cut anywhere, and answers with what those
bytes completed. They split whole buffers (``bytes.split``, ``bytes.replace``) rather than
walking bytes or lines one at a time, and nothing here imports trio or httpx: httpx's text and
line decoders cost more per event than everything else the gateway does with it.
"""

from __future__ import annotations

from typing import final

__all__ = ["NDJSONDecoder", "SSEDecoder"]


@final
class SSEDecoder:
    """The ``data`` of each server-sent event, as the event's blank line arrives.

    Lines may end in ``\\n``, ``\\r\\n`` or ``\\r`` (a ``\\r`` at the end of one feed and a
    ``\\n`` at the start of the next are one line end). An event's ``data`` lines are joined
    with ``\\n``; one space after the colon is dropped; ``data`` without a colon is an empty
    line of data. Comments and other fields (``event``, ``id``, ``retry``) are ignored, and an
    event without data is no event. The usual event, a single ``data:`` line, takes a fast
    path."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""  # the unfinished event, its line ends already made \n

    def feed(self, data: bytes) -> list[bytes]:
        """The data of the events ``data`` completed, in order (often none)."""
        rest = self._rest
        buffer = rest + data if rest else data
        if b"\r" in buffer:
            held = buffer.endswith(b"\r")  # maybe half of a \r\n
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buffer += b"\r"
        events = buffer.split(b"\n\n")
        self._rest = events.pop()
        found: list[bytes] = []
        for event in events:
            if event.startswith(b"data:") and b"\n" not in event:
                found.append(event[6:] if event[5:6] == b" " else event[5:])
            elif (payload := _event_data(event)) is not None:
                found.append(payload)
        return found

    def flush(self) -> list[bytes]:
        """The body has ended: the data of an event it left without its blank line, if any
        (lenient: the standard drops it, servers that forget the last blank line mean it)."""
        rest, self._rest = self._rest, b""
        payload = _event_data(rest.rstrip(b"\r"))
        return [] if payload is None else [payload]


def _event_data(event: bytes) -> bytes | None:
    """The ``data`` of one event's lines, or ``None`` when it has none (comments, ``event:``)."""
    data = [
        line[6:] if line[5:6] == b" " else line[5:]
        for line in event.split(b"\n")
        if line.startswith(b"data:") or line == b"data"
    ]
    return b"\n".join(data) if data else None


@final
class NDJSONDecoder:
    """The lines of a newline-delimited body (JSON lines), without their ``\\n`` or
    ``\\r\\n``; blank lines are skipped."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""  # the unfinished line

    def feed(self, data: bytes) -> list[bytes]:
        """The lines ``data`` completed, in order (often none)."""
        rest = self._rest
        buffer = rest + data if rest else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        lines = buffer.split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if not line.strip():  # rare: copy the list without the blank lines
                return [line for line in lines if line.strip()]
        return lines

    def flush(self) -> list[bytes]:
        """The body has ended: its last line, if it had no line end."""
        rest, self._rest = self._rest, b""
        if rest.endswith(b"\r"):
            rest = rest[:-1]
        return [rest] if rest.strip() else []
