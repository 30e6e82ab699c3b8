"""Evaluating the criteria of a POE run against an attempt (PROTOCOL §16).

Each rule gives a :class:`CriterionResult`: passed or not, a score from 0 to 1 (1 or 0 for the
machine checks, the judge's own score for ``judge``) and a detail a person, and the next attempt's
prompt, can read. ``command_succeeds`` goes through exec approvals exactly as the ``exec`` tool
does: the policy decides or a human is asked (``exec.approval_requested``), and only an approved
command runs, in its own process group under the gateway's :class:`ProcessGuard`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from ..approvals import Approvals, ProcessGuard, child_environment, run_command
from ..kernel import Config, secret_env_names
from ..providers import ModelCatalog, ModelInfo
from ._model import JUDGE_SYSTEM, ModelUnavailable, ask_model, judge_prompt, read_verdict
from ._spec import CommandSucceeds, FileContains, FileExists, Judge, OutputContains, Rule

__all__ = ["Attempt", "CriterionResult", "Evaluator"]

#: A file is read up to this many bytes for ``file_contains``.
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
#: A command's output shown in a criterion's detail is cut to this many characters (its end).
DETAIL_OUTPUT_CHARS: Final = 2000


@attrs.frozen
class CriterionResult:
    index: int
    type: str
    passed: bool
    score: float
    detail: str

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Attempt:
    """What one attempt produced, as the criteria see it."""

    objective: str
    output: str
    agent_id: str
    model: ModelInfo


def _resolve(path: str) -> trio.Path:
    return trio.Path(Path(path).expanduser())


def _tail(text: str) -> str:
    return text if len(text) <= DETAIL_OUTPUT_CHARS else "[…]" + text[-DETAIL_OUTPUT_CHARS:]


class Evaluator:
    """Checks rules; bound to the approvals, the process guard, the config and the models."""

    def __init__(
        self,
        *,
        approvals: Approvals,
        guard: ProcessGuard,
        models: ModelCatalog,
        config: Callable[[], Config],
    ) -> None:
        self._approvals = approvals
        self._guard = guard
        self._models = models
        self._config = config

    async def check(self, index: int, rule: Rule, attempt: Attempt) -> tuple[CriterionResult, int]:
        """The rule's result, and the tokens a model call for it used (the judge's)."""
        tokens: list[int] = []
        passed, score, detail = await self._check(rule, attempt, tokens)
        return CriterionResult(index, rule.type, passed, score, detail), sum(tokens)

    async def _check(
        self, rule: Rule, attempt: Attempt, tokens: list[int]
    ) -> tuple[bool, float, str]:
        match rule:
            case FileExists(path=path):
                exists = await _resolve(path).exists()
                return _bool(exists, f"{path} exists" if exists else f"{path} does not exist")
            case FileContains(path=path, pattern=pattern):
                return await self._file_contains(path, pattern)
            case OutputContains(pattern=pattern):
                found = re.search(pattern, attempt.output, re.M) is not None
                return _bool(
                    found,
                    f"the final answer matches {pattern!r}"
                    if found
                    else f"the final answer has no match for {pattern!r}",
                )
            case CommandSucceeds(command=command, timeout_ms=timeout_ms):
                return await self._command(command, timeout_ms, attempt.agent_id)
            case Judge(prompt=prompt):
                return await self._judge(prompt, attempt, tokens)

    async def _file_contains(self, path: str, pattern: str) -> tuple[bool, float, str]:
        file = _resolve(path)
        try:
            async with await file.open("rb") as handle:
                data = await handle.read(MAX_FILE_BYTES)
        except FileNotFoundError:
            return _bool(False, f"{path} does not exist")
        except OSError as exc:
            return _bool(False, f"{path} cannot be read: {exc.strerror or exc}")
        found = re.search(pattern, data.decode("utf-8", errors="replace"), re.M) is not None
        return _bool(
            found,
            f"{path} matches {pattern!r}" if found else f"{path} has no match for {pattern!r}",
        )

    async def _command(
        self, command: str, timeout_ms: int | None, agent_id: str
    ) -> tuple[bool, float, str]:
        cwd = await trio.Path.cwd()
        ticket = await self._approvals.submit(command, str(cwd), agent_id)
        try:
            decision = await ticket.wait()
        except BaseException:
            await ticket.withdraw()
            raise
        if not decision.approved:
            return _bool(False, f"`{command}` was not run: exec approval {decision.decision}")
        config = self._config()  # read after the wait: a reload meanwhile applies
        timeout_s = timeout_ms / 1000 if timeout_ms else config.exec.timeout_s
        try:
            result = await run_command(
                command,
                cwd=Path(cwd),
                timeout_s=timeout_s,
                max_output_bytes=config.exec.max_output_bytes,
                env=child_environment(secret_env_names(config)),
                guard=self._guard,
            )
        except OSError as exc:
            return _bool(False, f"`{command}` could not be started: {exc}")
        if result.timed_out:
            return _bool(False, f"`{command}` timed out after {timeout_s:g} s")
        ok = result.exit_code == 0
        return _bool(ok, f"`{command}`: {_tail(result.describe())}")

    async def _judge(
        self, prompt: str, attempt: Attempt, tokens: list[int]
    ) -> tuple[bool, float, str]:
        try:
            answer = await ask_model(
                self._models,
                attempt.model,
                JUDGE_SYSTEM,
                judge_prompt(attempt.objective, prompt, attempt.output),
            )
        except ModelUnavailable as exc:
            return _bool(False, f"the judge could not be asked: {exc}")
        tokens.append(answer.tokens)
        verdict = read_verdict(answer.text)
        if verdict is None:
            said = answer.text[:200]
            return _bool(False, f"the judge's answer said neither pass nor fail: {said!r}")
        word = "pass" if verdict.passed else "fail"
        reason = f": {verdict.reason}" if verdict.reason else ""
        return verdict.passed, verdict.score, f"judge: {word} ({verdict.score:.2f}){reason}"


def _bool(passed: bool, detail: str) -> tuple[bool, float, str]:
    return passed, 1.0 if passed else 0.0, detail
