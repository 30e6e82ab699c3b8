"""Agents as configured in ``[agents.<id>]`` (PROTOCOL §7), with the implicit ``main`` agent.

An :class:`Agent` is what a run needs to know about its agent: the prompt, the default model and
thinking level, and which tools it may use. ``tools`` in the config is a list of globs over tool
names (``["exec", "memory_*"]``); leaving it out allows every built-in tool but the opt-in
ones (the browser's), which an agent gets only when a glob names them (``"browser_*"``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable
from typing import Any

import attrs

from ..kernel import AgentConfig, Config, NotFound

__all__ = ["DEFAULT_AGENT", "Agent", "agents_of", "resolve_agent"]

DEFAULT_AGENT = "main"


@attrs.frozen
class Agent:
    id: str
    name: str
    description: str
    model: str | None
    tool_globs: tuple[str, ...] | None
    system_prompt: str
    thinking: str

    def may_use(self, tool: str, opt_in: Collection[str] = ()) -> bool:
        """Whether this agent may call ``tool``; ``opt_in`` tools only if a glob names them."""
        if self.tool_globs is None:
            return tool not in opt_in
        return any(fnmatch.fnmatchcase(tool, glob) for glob in self.tool_globs)

    def allowed(self, tools: Iterable[str], opt_in: Collection[str] = ()) -> list[str]:
        return [name for name in tools if self.may_use(name, opt_in)]

    def to_json(
        self, *, model: str, tools: Iterable[str], opt_in: Collection[str] = ()
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "model": model,
            "tools": self.allowed(tools, opt_in),
        }


def _agent(agent_id: str, config: AgentConfig) -> Agent:
    return Agent(
        id=agent_id,
        name=config.name or agent_id,
        description=config.description,
        model=config.model,
        tool_globs=config.tools,
        system_prompt=config.system_prompt,
        thinking=config.thinking,
    )


def agents_of(config: Config) -> list[Agent]:
    """Every configured agent, ``main`` first (it exists even when not configured)."""
    agents = {DEFAULT_AGENT: AgentConfig(description="The default agent."), **config.agents}
    ordered = [DEFAULT_AGENT, *sorted(k for k in agents if k != DEFAULT_AGENT)]
    return [_agent(agent_id, agents[agent_id]) for agent_id in ordered]


def resolve_agent(config: Config, agent_id: str) -> Agent:
    """The agent ``agent_id``; raises ``-32004`` when there is no such agent."""
    if agent_id in config.agents:
        return _agent(agent_id, config.agents[agent_id])
    if agent_id == DEFAULT_AGENT:
        return agents_of(config)[0]
    raise NotFound("agent", agent_id)
