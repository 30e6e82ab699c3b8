"""Event topic patterns (PROTOCOL §6.3).

Topics are dot-separated segments. In a pattern ``*`` matches any characters within one segment,
``**`` (as a whole segment) matches any number of whole segments including none, and the patterns
``*`` and ``**`` alone match every topic.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MAX_PATTERN_LENGTH", "TopicPattern", "pattern_error"]

MAX_PATTERN_LENGTH = 128
_ALLOWED = re.compile(r"[A-Za-z0-9_.*\-]+")


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid pattern, or ``None`` when it is."""
    if not 1 <= len(pattern) <= MAX_PATTERN_LENGTH:
        return f"a pattern is 1 to {MAX_PATTERN_LENGTH} characters"
    if not _ALLOWED.fullmatch(pattern):
        return "a pattern may only hold letters, digits and the characters _ . * -"
    if "" in pattern.split("."):
        return "a pattern may not have an empty segment"
    return None


class TopicPattern:
    """A compiled pattern; ``matches(topic)`` answers from a per-pattern cache."""

    __slots__ = ("_cache", "_segments", "text")

    def __init__(self, text: str) -> None:
        problem = pattern_error(text)
        if problem is not None:
            raise ValueError(problem)
        self.text = text
        self._segments: tuple[re.Pattern[str] | None, ...] = tuple(
            None if seg == "**" else _segment_regex(seg) for seg in text.split(".")
        )
        self._cache: dict[str, bool] = {}

    def matches(self, topic: str) -> bool:
        hit = self._cache.get(topic)
        if hit is None:
            if self.text in ("*", "**"):
                hit = True
            else:
                hit = _match(self._segments, tuple(topic.split(".")))
            if len(self._cache) < 4096:
                self._cache[topic] = hit
        return hit

    def __repr__(self) -> str:
        return f"TopicPattern({self.text!r})"


@functools.cache
def _segment_regex(segment: str) -> re.Pattern[str]:
    return re.compile("[^.]*".join(re.escape(part) for part in segment.split("*")))


def _match(pattern: tuple[re.Pattern[str] | None, ...], topic: tuple[str, ...]) -> bool:
    if not pattern:
        return not topic
    head, rest = pattern[0], pattern[1:]
    if head is None:  # ``**``: swallow 0..n whole segments
        return any(_match(rest, topic[i:]) for i in range(len(topic) + 1))
    return bool(topic) and head.fullmatch(topic[0]) is not None and _match(rest, topic[1:])
