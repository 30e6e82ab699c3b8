"""A POE spec (PROTOCOL §16): the objective, the instruction, the criteria and the budget.

``{"objective","instruction","criteria":[rule…],"max_attempts"?,"max_tokens"?,"agent_id"?}``,
validated strictly: unknown keys, wrong types, blank text, an unknown rule type and a pattern that
is not a regular expression are each reported with the path of the field at fault
(``$.spec.criteria[1].pattern``).

Patterns (``file_contains``, ``output_contains``) are Python regular expressions, searched
anywhere in the text with ``re.MULTILINE`` (``^``/``$`` match at line ends); a literal string
needs its metacharacters escaped. Relative paths are taken from the gateway's working directory,
where ``exec`` runs commands by default; ``~`` is expanded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

import attrs
from msgspec import Meta

from ..kernel import AgentId, FieldProblem, InvalidArgument, ValidationFailed, convert

__all__ = ["RULE_TYPES", "Rule", "Spec", "describe_rule", "parse_criteria", "parse_spec"]

#: At most this many criteria per spec, and this many attempts per run.
MAX_CRITERIA: Final = 32
MAX_ATTEMPTS: Final = 20

FilePath = Annotated[str, Meta(min_length=1, max_length=4096)]
Pattern = Annotated[str, Meta(min_length=1, max_length=4096, description="a regular expression")]


@attrs.frozen
class FileExists:
    type: Literal["file_exists"]
    path: FilePath


@attrs.frozen
class FileContains:
    type: Literal["file_contains"]
    path: FilePath
    pattern: Pattern


@attrs.frozen
class CommandSucceeds:
    type: Literal["command_succeeds"]
    command: Annotated[str, Meta(min_length=1, max_length=100_000)]
    timeout_ms: Annotated[int, Meta(ge=100, le=3_600_000)] | None = None


@attrs.frozen
class OutputContains:
    type: Literal["output_contains"]
    pattern: Pattern


@attrs.frozen
class Judge:
    type: Literal["judge"]
    prompt: Annotated[str, Meta(min_length=1, max_length=10_000)]


Rule = FileExists | FileContains | CommandSucceeds | OutputContains | Judge
RULES: Final[dict[str, type[Rule]]] = {
    "file_exists": FileExists,
    "file_contains": FileContains,
    "command_succeeds": CommandSucceeds,
    "output_contains": OutputContains,
    "judge": Judge,
}
RULE_TYPES: Final = tuple(RULES)


@attrs.frozen
class _SpecFields:
    objective: Annotated[str, Meta(min_length=1, max_length=10_000)]
    instruction: Annotated[str, Meta(min_length=1, max_length=100_000)]
    criteria: Annotated[list[Any], Meta(max_length=MAX_CRITERIA)] | None = None
    max_attempts: Annotated[int, Meta(ge=1, le=MAX_ATTEMPTS)] = 3
    max_tokens: Annotated[int, Meta(ge=1, le=1_000_000_000)] | None = None
    agent_id: AgentId | None = None


@attrs.frozen
class Spec:
    """A validated spec; ``criteria`` may be empty only before ``poe.prepare`` drafts them."""

    objective: str
    instruction: str
    criteria: tuple[Rule, ...]
    max_attempts: int = 3
    max_tokens: int | None = None
    agent_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The normalised spec: every key present, each rule with only the fields it has."""
        return {
            "objective": self.objective,
            "instruction": self.instruction,
            "criteria": [rule_json(rule) for rule in self.criteria],
            "max_attempts": self.max_attempts,
            "max_tokens": self.max_tokens,
            "agent_id": self.agent_id,
        }


def rule_json(rule: Rule) -> dict[str, Any]:
    return {k: v for k, v in attrs.asdict(rule).items() if v is not None}


def describe_rule(rule: Rule) -> str:
    """The rule in a few words, for prompts and feedback."""
    match rule:
        case FileExists(path=path):
            return f"the file {path} exists"
        case FileContains(path=path, pattern=pattern):
            return f"the file {path} contains a match for the regular expression {pattern!r}"
        case CommandSucceeds(command=command):
            return f"the command `{command}` exits with code 0"
        case OutputContains(pattern=pattern):
            return f"your final answer contains a match for the regular expression {pattern!r}"
        case Judge(prompt=prompt):
            return f"a reviewer agrees: {prompt}"


def _failed(problems: Sequence[FieldProblem]) -> InvalidArgument:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidArgument(f"{first.path}: {first.message}{more}", problems=problems)


def _blank(value: dict[str, Any], path: str, fields: Sequence[str]) -> list[FieldProblem]:
    return [
        FieldProblem(f"{path}.{name}", "must not be blank")
        for name in fields
        if isinstance(value.get(name), str) and not value[name].strip()
    ]


def _rule_problems(value: object, path: str) -> tuple[Rule | None, list[FieldProblem]]:
    if not isinstance(value, dict):
        return None, [FieldProblem(path, "expected a rule object with a type")]
    kind = value.get("type")
    if kind is None:
        return None, [FieldProblem(f"{path}.type", "missing required field")]
    cls = RULES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None, [
            FieldProblem(
                f"{path}.type", f"unknown rule type {kind!r} (one of {', '.join(RULE_TYPES)})"
            )
        ]
    try:
        rule = convert(value, cls)
    except ValidationFailed as exc:
        return None, [FieldProblem(e["path"], e["message"]) for e in exc.errors(root=path)]
    problems = _blank(value, path, ("path", "pattern", "command", "prompt"))
    pattern = getattr(rule, "pattern", None)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(
                FieldProblem(f"{path}.pattern", f"not a valid regular expression: {exc}")
            )
    return (None if problems else rule), problems


def parse_criteria(values: Sequence[object], root: str) -> tuple[Rule, ...]:
    """Validate a list of rules; :class:`InvalidArgument` names every field at fault."""
    rules: list[Rule] = []
    problems: list[FieldProblem] = []
    for index, value in enumerate(values):
        rule, found = _rule_problems(value, f"{root}[{index}]")
        problems += found
        if rule is not None:
            rules.append(rule)
    if problems:
        raise _failed(problems)
    return tuple(rules)


def parse_spec(value: object, *, root: str = "$.spec", require_criteria: bool = True) -> Spec:
    """Validate a spec; :class:`InvalidArgument` names every field at fault.

    ``require_criteria=False`` (``poe.prepare``) accepts a spec without criteria."""
    problems: list[FieldProblem] = []
    fields: _SpecFields | None = None
    try:
        fields = convert(value, _SpecFields)
    except ValidationFailed as exc:
        problems += [FieldProblem(e["path"], e["message"]) for e in exc.errors(root=root)]
    if not isinstance(value, dict):
        raise _failed(problems)
    problems += _blank(value, root, ("objective", "instruction"))
    given = value.get("criteria")
    criteria: tuple[Rule, ...] = ()
    if isinstance(given, list):
        try:
            criteria = parse_criteria(given[:MAX_CRITERIA], f"{root}.criteria")
        except InvalidArgument as exc:
            problems += exc.problems
    if problems or fields is None:
        raise _failed(problems)
    if require_criteria and not criteria:
        raise _failed(
            [
                FieldProblem(
                    f"{root}.criteria",
                    "needs at least one rule (poe.prepare drafts them when there are none)",
                )
            ]
        )
    return Spec(
        objective=fields.objective.strip(),
        instruction=fields.instruction.strip(),
        criteria=criteria,
        max_attempts=fields.max_attempts,
        max_tokens=fields.max_tokens,
        agent_id=fields.agent_id,
    )
