"""Prompt assembly (PROTOCOL §7): system prompt, extra sections, session history, in budget.

History always comes from the store (the single source of truth); nothing is kept in memory
between turns. The store reads only the newest messages that fit the model's context window
(after its output budget, the tool definitions and the system prompt), so a prompt costs what
the window holds, however long the session. Other services add system-prompt sections
(identity, workspace, skills) through :meth:`PromptBuilder.add_section`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, final

import attrs

from ..providers import ChatMessage, ModelInfo, ToolCall
from ..sessions import estimate_tokens
from ..store import Message, Store
from ._agents import Agent

__all__ = ["PromptBuilder", "PromptSection", "to_chat_messages", "tool_call_json"]

#: A section of the system prompt: given the agent and session, some text or ``None``.
PromptSection = Callable[[Agent, str], Awaitable[str | None]]

MISSING_RESULT = "(no result: the run ended before this tool finished)"


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    """A tool call as stored with its message: arguments as an object when they are JSON."""
    try:
        arguments: object = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = call.arguments
    return {"id": call.id, "name": call.name, "arguments": arguments}


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    arguments = raw.get("arguments", {})
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(str(raw.get("id", "")), str(raw.get("name", "")), text)


def to_chat_messages(messages: Sequence[Message]) -> list[ChatMessage]:
    """Stored messages as a provider conversation, repaired so every tool call has its result.

    A run that was cancelled (or a gateway that died) mid-tool leaves a call without a result,
    and a history window may start with results whose call fell outside it; providers reject both.
    """
    out: list[ChatMessage] = []
    open_calls: list[str] = []

    def close_open_calls() -> None:
        for call_id in open_calls:
            out.append(ChatMessage("tool", MISSING_RESULT, tool_call_id=call_id))
        open_calls.clear()

    for message in messages:
        if message.role == "tool":
            if message.tool_call_id in open_calls:
                open_calls.remove(message.tool_call_id)
                out.append(ChatMessage("tool", message.content, tool_call_id=message.tool_call_id))
            continue  # a result whose call is not in the window
        close_open_calls()
        calls = tuple(_tool_call(raw) for raw in message.tool_calls or ())
        if message.role == "assistant" and calls:
            out.append(ChatMessage("assistant", message.content, tool_calls=calls))
            open_calls.extend(call.id for call in calls)
        else:
            out.append(ChatMessage(message.role, message.content))
    close_open_calls()
    return out


@final
@attrs.define(eq=False)
class PromptBuilder:
    store: Store
    _sections: list[PromptSection] = attrs.Factory(list)

    def add_section(self, section: PromptSection) -> None:
        self._sections.append(section)

    def remove_section(self, section: PromptSection) -> None:
        self._sections.remove(section)

    async def system_prompt(self, agent: Agent, session_key: str) -> str:
        parts = [agent.system_prompt.strip()] if agent.system_prompt.strip() else []
        for section in self._sections:
            text = await section(agent, session_key)
            if text and text.strip():
                parts.append(text.strip())
        return "\n\n".join(parts)

    async def build(
        self, agent: Agent, session_key: str, model: ModelInfo, *, reserved_tokens: int = 0
    ) -> tuple[ChatMessage, ...]:
        """The conversation for the next model call: system prompt, then the newest messages
        whose tokens fit what is left of the context window (the newest always goes, even when
        it alone is too long).

        ``reserved_tokens`` is room kept for what the caller adds (tool definitions).
        """
        system = await self.system_prompt(agent, session_key)
        budget = model.context_window - model.max_output_tokens - reserved_tokens
        budget -= estimate_tokens(system) if system else 0
        messages = await self.store.recent_history(session_key, max_tokens=max(0, budget))
        conversation = to_chat_messages(messages)
        if system:
            conversation.insert(0, ChatMessage("system", system))
        return tuple(conversation)
