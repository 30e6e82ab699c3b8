"""The tool framework (PROTOCOL §7): what an agent may call, and how a call is carried out.

A :class:`Tool` declares its arguments as an attrs class. The same class gives the JSON Schema
the model sees and strictly validates what the model sends back, so the two cannot drift. A tool
that cannot do what was asked raises :class:`ToolFailed`; like bad arguments or an unknown tool,
that becomes an error *result* handed back to the model, and the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar, final

import attrs

from ..kernel import ValidationFailed, convert, format_path, json_schema
from ..providers import ToolSpec

__all__ = [
    "AnyTool",
    "Tool",
    "ToolBox",
    "ToolContext",
    "ToolFailed",
    "ToolResult",
    "ToolRun",
    "parse_arguments",
]

P = TypeVar("P")

#: Tool output handed back to the model is cut here (the model's context is precious). Tools
#: with limits of their own (exec's output cap) stay under it with their defaults.
MAX_OUTPUT_CHARS = 256 * 1024


class ToolFailed(Exception):
    """A tool could not do what was asked; the message is shown to the model as the result."""


class ToolRun(Protocol):
    """The run calling a tool, as far as a tool may see it."""

    @property
    def run_id(self) -> str: ...

    @property
    def session_key(self) -> str: ...

    @property
    def agent_id(self) -> str: ...

    @property
    def cwd(self) -> str | None:
        """The run's working directory (its workspace's), where ``exec`` runs by default;
        ``None`` outside a workspace."""
        ...

    async def set_status(self, status: str) -> None:
        """Move the run to ``status`` (``waiting_approval`` while a tool waits for a person,
        ``running`` again after)."""
        ...

    async def ask_user(self, question: str, options: list[str] | None) -> str:
        """Ask the run's user a question and wait for the answer (``waiting_input``)."""
        ...


@attrs.frozen
class ToolContext:
    """What a tool call is made in: the run calling it.

    A tool gets everything else it uses (the store, approvals, the host program's own
    objects) when it is built, as the built-in tools do in ``tools/_builtin.py``.
    """

    run: ToolRun


@attrs.frozen
class ToolResult:
    output: str
    is_error: bool = False


@final
@attrs.frozen
class Tool(Generic[P]):
    name: str
    description: str
    params: type[P]
    run: Callable[[ToolContext, P], Awaitable[str]]
    #: The JSON Schema the model sees, when it is not derived from ``params`` (an MCP server's
    #: tool brings its own; its arguments then arrive as ``params = dict``).
    schema: Mapping[str, Any] | None = None
    #: Offered only to agents whose ``tools`` name it, not with the default (every tool).
    opt_in: bool = False

    def spec(self) -> ToolSpec:
        schema = dict(self.schema) if self.schema is not None else json_schema(self.params)
        return ToolSpec(self.name, self.description, schema)

    async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        try:
            params: Any = arguments if self.schema is not None else convert(arguments, self.params)
        except ValidationFailed as exc:
            problems = "; ".join(
                f"{format_path(p.path, root='')}: {p.message}" if p.path else p.message
                for p in exc.problems
            )
            return ToolResult(f"invalid arguments for {self.name}: {problems}", is_error=True)
        try:
            output = await self.run(ctx, params)
        except ToolFailed as exc:
            return ToolResult(str(exc) or f"{self.name} failed", is_error=True)
        if len(output) > MAX_OUTPUT_CHARS:
            cut = len(output) - MAX_OUTPUT_CHARS
            output = output[:MAX_OUTPUT_CHARS] + f"\n[… {cut} more characters cut]"
        return ToolResult(output)


#: A tool whose argument class is known only to itself.
AnyTool = Tool[Any]


@final
class ToolBox:
    """The tools the gateway offers, by name."""

    def __init__(self, tools: Iterable[AnyTool] = ()) -> None:
        self._tools: dict[str, AnyTool] = {}
        #: Each tool's spec, built once: deriving a JSON Schema costs more than a model call's
        #: whole prompt assembly.
        self._specs: dict[str, ToolSpec] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: AnyTool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        self._specs[tool.name] = tool.spec()

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)
        self._specs.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def opt_in(self) -> frozenset[str]:
        """The tools an agent gets only by naming them (``Tool.opt_in``)."""
        return frozenset(name for name, tool in self._tools.items() if tool.opt_in)

    def get(self, name: str) -> AnyTool | None:
        return self._tools.get(name)

    def specs(self, names: Iterable[str]) -> tuple[ToolSpec, ...]:
        return tuple(self._specs[n] for n in names if n in self._specs)


def parse_arguments(text: str) -> dict[str, Any] | str:
    """A tool call's arguments as an object, or a message saying why they are not one."""
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        return f"the arguments are not valid JSON ({exc})"
    if not isinstance(value, dict):
        return "the arguments must be a JSON object"
    return value
