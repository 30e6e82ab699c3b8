"""Topic pattern semantics (PROTOCOL §6.3)."""

from __future__ import annotations

import pytest

from aleph_trio.kernel import TopicPattern, pattern_error


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("*", "stream.chunk", True),
        ("**", "a.b.c", True),
        ("stream.*", "stream.chunk", True),
        ("stream.*", "stream", False),
        ("stream.*", "stream.a.b", False),
        ("stream.tool_*", "stream.tool_end", True),
        ("stream.tool_*", "stream.chunk", False),
        ("agent.**", "agent.started", True),
        ("agent.**", "agent", True),
        ("agent.**", "agent.x.y", True),
        ("agent.**", "agents.x", False),
        ("**.end", "stream.end", True),
        ("**.end", "end", True),
        ("a.**.z", "a.z", True),
        ("a.**.z", "a.b.c.z", True),
        ("a.**.z", "a.b.c", False),
        ("*.chunk", "stream.chunk", True),
        ("stream.chunk", "stream.chunk", True),
        ("stream.chunk", "stream.chunks", False),
        ("s*m.*", "stream.chunk", True),
    ],
)
def test_matching(pattern: str, topic: str, expected: bool) -> None:
    assert TopicPattern(pattern).matches(topic) is expected
    assert TopicPattern(pattern).matches(topic) is expected  # from the cache


@pytest.mark.parametrize("bad", ["", "a" * 129, "a b", "a/b", "a..b", ".a", "a.", "é"])
def test_invalid_patterns(bad: str) -> None:
    assert pattern_error(bad) is not None
    with pytest.raises(ValueError, match="pattern"):
        TopicPattern(bad)


def test_longest_valid_pattern() -> None:
    assert pattern_error("a" * 128) is None
