"""Session compaction (PROTOCOL §8): a model-written summary replaces older messages.

All but the newest ``sessions.compact_keep`` messages are shown to the model as a transcript; it
answers with a summary and a list of durable facts. The facts go to memory (source = the session
key) and the summary replaces the older messages in one transaction, so a reader sees either the
old history or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Final, final

import attrs

from ..kernel import EventBus, NotFound, SessionsConfig, component_logger
from ..providers import (
    SUMMARY_REQUEST,
    ChatMessage,
    ModelCatalog,
    ModelInfo,
    ModelRequest,
    ProviderError,
    TextDelta,
)
from ..store import Message, Store
from ._service import estimate_tokens

__all__ = ["CompactionResult", "Compactor", "parse_summary"]

log = component_logger("sessions")

#: At most this many of the older messages are read for the transcript.
WINDOW: Final = 2000
#: A transcript line is cut to this many characters.
LINE_CHARS: Final = 2000
SUMMARY_PREFIX: Final = "Summary of the earlier conversation:\n"

INSTRUCTIONS: Final = (
    f"{SUMMARY_REQUEST}\n"
    "Write a concise summary that keeps every decision, open question, name, number and "
    "commitment a continuation of this conversation would need. Then list the durable facts "
    "about the user or their work worth remembering in later conversations, one per line. "
    "Answer in exactly this form:\n"
    "SUMMARY:\n<the summary>\n"
    "FACTS:\n- <fact>\n- <fact>\n"
    "(write 'FACTS:' with no lines after it when there are none)"
)


class CompactionFailed(Exception):
    """The model could not write a summary; the history was left as it was."""


@attrs.frozen
class CompactionResult:
    tokens_before: int
    tokens_after: int
    facts_extracted: int

    def to_json(self) -> dict[str, int]:
        return attrs.asdict(self)


def parse_summary(answer: str) -> tuple[str, list[str]]:
    """Split a model's answer into the summary and the facts (tolerant of loose formatting)."""
    match = re.search(r"^\s*FACTS\s*:\s*$", answer, re.M | re.I)
    body, facts_text = (answer[: match.start()], answer[match.end() :]) if match else (answer, "")
    summary = re.sub(r"^\s*SUMMARY\s*:\s*", "", body.strip(), flags=re.I).strip()
    facts: list[str] = []
    for line in facts_text.splitlines():
        fact = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip()
        if fact and fact.lower() not in ("none", "(none)") and fact not in facts:
            facts.append(fact)
    return summary, facts


def _transcript(messages: list[Message], budget: int) -> str:
    lines = []
    for m in messages:
        content = m.content if len(m.content) <= LINE_CHARS else m.content[:LINE_CHARS] + " […]"
        if m.tool_calls:
            names = ", ".join(str(call.get("name")) for call in m.tool_calls)
            content = f"{content} [called {names}]".strip()
        lines.append(f"{m.role}: {content}")
    used = 0
    start = len(lines)
    while start > 0 and used + estimate_tokens(lines[start - 1]) <= budget:
        start -= 1
        used += estimate_tokens(lines[start])
    omitted = f"({start} earlier messages omitted)\n" if start else ""
    return omitted + "\n".join(lines[start:])


@final
class Compactor:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        models: ModelCatalog,
        settings: Callable[[], SessionsConfig],
    ) -> None:
        self._store = store
        self._bus = bus
        self._models = models
        self._settings = settings

    async def compact(self, session_key: str, *, model: ModelInfo) -> CompactionResult:
        """Compact a session now; the caller makes sure no run holds it."""
        store = self._store
        keep = self._settings().compact_keep
        session, recent = await store.session_history(session_key, limit=WINDOW + keep)
        if session is None:
            raise NotFound("session", session_key)
        older = recent[: len(recent) - keep] if keep else list(recent)
        kept = recent[len(older) :]
        while older and kept and kept[0].role == "tool":  # keep a result next to its call
            kept.insert(0, older.pop())
        if not older or (len(older) == 1 and older[0].content.startswith(SUMMARY_PREFIX)):
            return CompactionResult(session.token_count, session.token_count, 0)
        budget = model.context_window - model.max_output_tokens - estimate_tokens(INSTRUCTIONS)
        transcript = _transcript(older, max(256, budget))
        answer = await self._ask(model, transcript)
        summary, facts = parse_summary(answer)
        if not summary:
            raise CompactionFailed(f"model {model.id} wrote no summary")
        for fact in facts:
            await store.store_memory(
                fact, source=session_key, metadata={"kind": "fact", "from": "compaction"}
            )
        text = SUMMARY_PREFIX + summary
        if estimate_tokens(text) >= sum(m.tokens for m in older):
            # Nothing to gain: the summary is no shorter than what it would replace.
            return CompactionResult(session.token_count, session.token_count, len(facts))
        before, after = await store.replace_range(
            session_key, upto_id=older[-1].id, summary=text, summary_tokens=estimate_tokens(text)
        )
        result = CompactionResult(before, after, len(facts))
        self._bus.publish(
            "session.compacted",
            {"session_key": session_key, **result.to_json()},
            principal_id=session.owner_id,
        )
        log.info("compacted %s: %d -> %d tokens", session_key, before, after)
        return result

    async def _ask(self, model: ModelInfo, transcript: str) -> str:
        provider = self._models.provider_for(model)
        request = ModelRequest(
            model.name,
            (
                ChatMessage("system", "You summarise conversations faithfully."),
                ChatMessage("user", f"{INSTRUCTIONS}\n\nTRANSCRIPT:\n{transcript}"),
            ),
            max_tokens=model.max_output_tokens,
        )
        parts: list[str] = []
        try:
            async with contextlib.aclosing(provider.stream(request)) as deltas:
                async for batch in deltas:
                    parts.extend(delta.text for delta in batch if isinstance(delta, TextDelta))
        except ProviderError as exc:
            raise CompactionFailed(f"model {model.id}: {exc.message}") from None
        return "".join(parts)
