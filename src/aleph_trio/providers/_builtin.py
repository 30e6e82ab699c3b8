"""The built-in offline model: deterministic, streams word by word, calls tools when asked.

It needs no network, so every gateway feature can be shown and tested out of the box. It reads
the last message and follows simple directives (case does not matter):

==========================  =====================================================================
``echo: <text>``            answers exactly ``<text>``
``count to <n>``            answers ``1 2 … n`` (n ≤ 1000)
``long answer``             a long answer, streamed slowly (about 20 words a second)
``run <command>``           calls the ``exec`` tool with that command (backticks are stripped)
``ask me <question>``       calls ``ask_user`` with that question
``remember <fact>``         calls ``memory_store`` with that fact
``recall <topic>``          calls ``memory_search`` for that topic
==========================  =====================================================================

Asked to summarise a conversation (the request compaction sends, starting with
:data:`SUMMARY_REQUEST`), it summarises what the user wrote and lists facts the user stated about
themselves ("my name is …", "I live in …", "remember that …").

Words stream at :data:`WORDS_PER_SECOND` (a fast local model), one delta per word: a batch holds
the words that came due together, so even ``count to 1000`` never floods a client.

With thinking on it first streams a short reasoning. After a tool result it reports what the tool
returned. Anything else gets an answer that says it is the offline built-in model and lists
these directives.
"""

from __future__ import annotations

import contextlib
import json
import re
import zlib
from collections.abc import AsyncGenerator
from typing import final

import trio

from ._types import (
    Delta,
    Finish,
    ModelInfo,
    ModelRequest,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["BUILTIN_MODEL", "HELP_TEXT", "SUMMARY_REQUEST", "BuiltinProvider"]

BUILTIN_MODEL = "offline"
WORDS_PER_SECOND = 2000.0
SLOW_WORDS_PER_SECOND = 20.0
LONG_ANSWER_WORDS = 120

HELP_TEXT = (
    "I am the offline built-in model of aleph_trio, so I can only follow simple directives: "
    "'echo: <text>', 'count to <n>', 'long answer', 'run <command>', 'ask me <question>', "
    "'remember <fact>' and 'recall <topic>'. Configure a provider to talk to a real model."
)

_TOOL_DIRECTIVES = [
    (re.compile(r"^\s*run\s+(?P<arg>.+?)\s*$", re.I | re.S), "exec", "command"),
    (re.compile(r"^\s*ask me\s+(?P<arg>.+?)\s*$", re.I | re.S), "ask_user", "question"),
    (
        re.compile(r"^\s*remember(?: that)?\s+(?P<arg>.+?)\s*$", re.I | re.S),
        "memory_store",
        "content",
    ),
    (re.compile(r"^\s*recall\s+(?P<arg>.+?)\s*$", re.I | re.S), "memory_search", "query"),
]
#: The first line of a request to summarise a conversation transcript (session compaction).
SUMMARY_REQUEST = "Summarise the conversation transcript below."
_CLAUSE = r"([^.!?,;\n]+?)(?=\s+and\s|\s+but\s|[.!?,;\n]|$)"
_FACTS = [
    (re.compile(rf"\bremember (?:that )?+(?!my |I ){_CLAUSE}", re.I), "{}"),
    (
        re.compile(rf"\bmy ((?:[a-z]+ ){{0,3}}[a-z]+) (?:is|are) {_CLAUSE}", re.I),
        "The user's {} is {}",
    ),
    (re.compile(rf"\bI(?: am|'m) ((?:from|in|a|an|the)\b{_CLAUSE})", re.I), "The user is {}"),
    (re.compile(rf"\bI (live|work|like|love|prefer|use|study) {_CLAUSE}", re.I), "The user {}s {}"),
]
_ECHO = re.compile(r"^\s*echo:\s?(?P<text>.*)$", re.I | re.S)
_COUNT = re.compile(r"\bcount to (?P<n>\d{1,4})\b", re.I)


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _words(text: str) -> list[str]:
    """Split keeping the spaces, so the chunks join back into ``text`` exactly."""
    return re.findall(r"\S+\s*|\s+", text)


async def _paced(words: list[str], per_second: float) -> AsyncGenerator[list[str], None]:
    """``words`` at ``per_second``: word k is due ``k / per_second`` after the start, and each
    batch is every word due by the time the previous one was taken."""
    start = trio.current_time()
    sent = 0
    while sent < len(words):
        due = int((trio.current_time() - start) * per_second) + 1
        batch = words[sent : max(due, sent + 1)]
        sent += len(batch)
        yield batch
        if sent < len(words):
            await trio.sleep_until(start + sent / per_second)


@final
class BuiltinProvider:
    """A provider whose every model is the offline built-in model."""

    def __init__(self, name: str = "builtin", models: tuple[str, ...] = (BUILTIN_MODEL,)) -> None:
        self.name = name
        self._models = models or (BUILTIN_MODEL,)

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=f"{self.name}/{model}",
                provider=self.name,
                name=model,
                context_window=32_768,
                max_output_tokens=4_096,
                tools=True,
                thinking=True,
            )
            for model in self._models
        ]

    async def stream(self, request: ModelRequest) -> AsyncGenerator[list[Delta], None]:
        prompt_tokens = sum(_tokens(m.content) for m in request.messages)
        last = request.messages[-1] if request.messages else None
        offered = {tool.name for tool in request.tools}
        text = last.content if last is not None else ""

        if request.thinking != "off" and last is not None and last.role == "user":
            reasoning = f"The user wrote {len(text)} characters; following my directives."
            async with contextlib.aclosing(_paced(_words(reasoning), WORDS_PER_SECOND)) as paced:
                async for words in paced:
                    yield [ThinkingDelta(word) for word in words]

        if last is not None and last.role == "tool":
            answer = f"The tool returned: {text[:500]}"
        elif text.startswith(SUMMARY_REQUEST):
            answer = self._summary(text)
        elif (call := self._tool_call(text, offered)) is not None:
            name, arguments = call
            encoded = json.dumps(arguments)
            # Arguments arrive in pieces, as real providers send them.
            # Deterministic, and distinct for each turn of a conversation.
            call_id = f"call_{zlib.crc32(f'{len(request.messages)}:{name}:{encoded}'.encode()):08x}"
            yield [ToolCallDelta(0, id=call_id, name=name)]
            for start in range(0, len(encoded), 8):
                yield [ToolCallDelta(0, arguments=encoded[start : start + 8])]
                await trio.lowlevel.checkpoint()
            yield [Usage(prompt_tokens, _tokens(encoded)), Finish("tool_calls")]
            return
        else:
            answer = self._answer(text, offered)

        slow = bool(re.search(r"\blong answer\b", text, re.I)) and (
            last is None or last.role == "user"
        )
        pace = SLOW_WORDS_PER_SECOND if slow else WORDS_PER_SECOND
        # Closed with the stream, also when the caller stops reading early.
        async with contextlib.aclosing(_paced(_words(answer), pace)) as paced:
            async for words in paced:
                yield [TextDelta(word) for word in words]
        yield [Usage(prompt_tokens, _tokens(answer)), Finish("stop")]

    @staticmethod
    def _tool_call(text: str, offered: set[str]) -> tuple[str, dict[str, str]] | None:
        for pattern, tool, argument in _TOOL_DIRECTIVES:
            match = pattern.match(text)
            if match and tool in offered:
                value = match.group("arg").strip()
                if tool == "exec" and len(value) > 1 and value[0] == value[-1] == "`":
                    value = value[1:-1]
                return tool, {argument: value}
        return None

    @staticmethod
    def _summary(request: str) -> str:
        transcript = request.partition("TRANSCRIPT:")[2]
        said = [line[6:].strip() for line in transcript.splitlines() if line.startswith("user: ")]
        topics = "; ".join(" ".join(line.split()[:8]) for line in said[:10]) or "nothing"
        facts: list[str] = []
        for line in said:
            for pattern, template in _FACTS:
                for match in pattern.finditer(line):
                    groups = [g for g in match.groups() if g is not None]
                    fact = template.format(*(g.strip() for g in groups[: template.count("{}")]))
                    if fact not in facts:
                        facts.append(fact)
        lines = [
            "SUMMARY:",
            f"The user sent {len(said)} messages, about: {topics}.",
            "FACTS:",
            *(f"- {fact}" for fact in facts),
        ]
        return "\n".join(lines)

    @staticmethod
    def _answer(text: str, offered: set[str]) -> str:
        if (echo := _ECHO.match(text)) is not None:
            return echo.group("text")
        if (count := _COUNT.search(text)) is not None:
            n = min(int(count.group("n")), 1000)
            return " ".join(str(i) for i in range(1, n + 1))
        if re.search(r"\blong answer\b", text, re.I):
            return " ".join(f"word{i}" for i in range(1, LONG_ANSWER_WORDS + 1))
        for pattern, tool, _ in _TOOL_DIRECTIVES:
            if pattern.match(text) and tool not in offered:
                return f"I would use the {tool} tool for that, but this agent may not. {HELP_TEXT}"
        return HELP_TEXT
