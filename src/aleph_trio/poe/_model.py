"""What POE asks the model directly, outside any agent run: a verdict on a result (the ``judge``
rule) and a draft of criteria for a spec that has none (``poe.prepare``). Answers are read
robustly: JSON where the model wrote JSON (also inside a code fence or amid prose), else the words
it used.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any, Final

import attrs

from ..providers import (
    ChatMessage,
    ModelCatalog,
    ModelInfo,
    ModelRequest,
    ProviderError,
    TextDelta,
    Usage,
)
from ._spec import RULE_TYPES

__all__ = [
    "Answer",
    "Verdict",
    "ask_model",
    "draft_prompt",
    "judge_prompt",
    "read_criteria",
    "read_verdict",
]

#: The result shown to the judge is cut to this many characters (its end is kept).
RESULT_CHARS: Final = 20_000


class ModelUnavailable(Exception):
    """The model could not be asked (the provider failed); the message says why."""


@attrs.frozen
class Answer:
    text: str
    tokens: int


@attrs.frozen
class Verdict:
    passed: bool
    score: float
    reason: str


async def ask_model(models: ModelCatalog, model: ModelInfo, system: str, user: str) -> Answer:
    """One model call without tools; :class:`ModelUnavailable` if the provider fails."""
    provider = models.provider_for(model)
    request = ModelRequest(
        model.name,
        (ChatMessage("system", system), ChatMessage("user", user)),
        max_tokens=model.max_output_tokens,
    )
    parts: list[str] = []
    tokens = 0
    try:
        async with contextlib.aclosing(provider.stream(request)) as deltas:
            async for batch in deltas:
                for delta in batch:
                    if isinstance(delta, TextDelta):
                        parts.append(delta.text)
                    elif isinstance(delta, Usage):
                        tokens += delta.prompt_tokens + delta.completion_tokens
    except ProviderError as exc:
        raise ModelUnavailable(f"model {model.id}: {exc.message}") from None
    return Answer("".join(parts), tokens)


JUDGE_SYSTEM: Final = "You review work strictly and fairly, and answer only in the form asked."


def judge_prompt(objective: str, question: str, result: str) -> str:
    if len(result) > RESULT_CHARS:
        result = "[…]" + result[-RESULT_CHARS:]
    return (
        f"OBJECTIVE:\n{objective}\n\nQUESTION:\n{question}\n\nRESULT (the worker's final answer):\n"
        f"{result or '(no text)'}\n\n"
        'Grade the result against the question. Answer with one JSON object: {"verdict": '
        '"pass" or "fail", "score": a number from 0 to 1, "reason": "one sentence"}.'
    )


_VERDICT_WORD = re.compile(r"\bverdict\W{0,3}(pass(?:ed)?|fail(?:ed)?)\b", re.I)
_SCORE = re.compile(r"\bscore\W{0,3}(\d+(?:\.\d+)?)\s*(%|/\s*(?:10|100|1)\b)?", re.I)
_NEGATION = re.compile(r"\b(?:not|never)\s+$|n't\s+$", re.I)
_BARE = re.compile(r"\b(pass(?:ed|es)?|fail(?:ed|s)?)\b", re.I)


def _json_values(text: str) -> list[Any]:
    """JSON values found in ``text``: the whole of it, fenced blocks, then each ``{``/``[``."""
    found: list[Any] = []
    candidates = [text, *re.findall(r"```(?:json)?\s*(.*?)```", text, re.S)]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            found.append(json.loads(candidate))
        except ValueError:
            pass
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        found.append(value)
    return found


def _score(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                value = float(value.strip().rstrip("%"))
            except ValueError:
                return None
        else:
            return None
    score = float(value)
    if score > 1:
        score = score / 100 if score <= 100 else 1.0
    return max(0.0, min(1.0, score))


def read_verdict(text: str) -> Verdict | None:
    """The judge's verdict, or ``None`` when the answer says neither pass nor fail."""
    for value in _json_values(text):
        if isinstance(value, dict) and "verdict" in value:
            word = str(value["verdict"]).strip().lower()
            if word in ("pass", "passed", "yes", "true") or value["verdict"] is True:
                passed = True
            elif word in ("fail", "failed", "no", "false") or value["verdict"] is False:
                passed = False
            else:
                continue
            given = _score(value.get("score"))
            reason = str(value.get("reason") or "").strip()
            return Verdict(passed, (1.0 if passed else 0.0) if given is None else given, reason)
    said = _VERDICT_WORD.search(text) or _BARE.search(text)
    if said is None:
        return None
    passed = said.group(1).lower().startswith("pass")
    if _NEGATION.search(text[max(0, said.start() - 16) : said.start()]):
        passed = not passed  # "does not pass", "didn't fail"
    found = _SCORE.search(text)
    score: float | None = None
    if found:
        number = float(found.group(1))
        scale = (found.group(2) or "").replace(" ", "")
        if scale in ("%", "/100"):
            number /= 100
        elif scale == "/10":
            number /= 10
        score = _score(number)
    reason = text.strip().splitlines()[-1][:500] if text.strip() else ""
    return Verdict(passed, (1.0 if passed else 0.0) if score is None else score, reason)


DRAFT_SYSTEM: Final = (
    "You turn a task into machine-checkable success criteria and answer only with JSON."
)


def draft_prompt(objective: str, instruction: str) -> str:
    return (
        f"OBJECTIVE:\n{objective}\n\nINSTRUCTION:\n{instruction}\n\n"
        "Write the success criteria that show the task was done, as a JSON array of rules. "
        "Rule forms:\n"
        '{"type": "file_exists", "path": "<file>"}\n'
        '{"type": "file_contains", "path": "<file>", "pattern": "<regular expression>"}\n'
        '{"type": "command_succeeds", "command": "<shell command that exits 0 on success>"}\n'
        '{"type": "output_contains", "pattern": "<regular expression in the final answer>"}\n'
        '{"type": "judge", "prompt": "<question a reviewer answers about the result>"}\n'
        "Prefer rules a machine checks. Answer with the JSON array only."
    )


def read_criteria(text: str) -> list[Any] | None:
    """The list of rule objects the model drafted (not yet validated), or ``None``."""
    for value in _json_values(text):
        if isinstance(value, dict) and isinstance(value.get("criteria"), list):
            value = value["criteria"]
        if (
            isinstance(value, list)
            and value
            and all(isinstance(item, dict) and item.get("type") in RULE_TYPES for item in value)
        ):
            return value
    return None
