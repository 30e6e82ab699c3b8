"""An HTTP answer, and the headers every answer carries."""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

__all__ = ["COMMON_HEADERS", "METRICS_TYPE", "Response"]

#: Sent with every response: nothing here is to be sniffed, framed or cached.
COMMON_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
)
#: The Prometheus text exposition format.
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@attrs.frozen
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def text(
        cls,
        status: int,
        text: str,
        *,
        content_type: str = "text/plain; charset=utf-8",
        **extra: str,
    ) -> Response:
        headers = (("content-type", content_type), *COMMON_HEADERS, *_extra(extra))
        return cls(status, headers, text.encode())

    @classmethod
    def json(cls, status: int, value: object) -> Response:
        body = json.dumps(value, separators=(",", ":")).encode()
        return cls(status, (("content-type", "application/json"), *COMMON_HEADERS), body)


def _extra(extra: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((name.replace("_", "-"), value) for name, value in extra.items())
