"""What every provider speaks: a request in, a stream of deltas out (PROTOCOL §14).

A provider turns a :class:`ModelRequest` into an async stream of batches of :class:`Delta`
values: text and thinking as they arrive, tool calls (whose arguments may come in pieces), usage,
and one final :class:`Finish`. A batch is what arrived together (for a remote provider, what one
network read decoded): the agent loop publishes each batch's text as one event and takes one
scheduler pass per batch, not per delta. It never sees a provider's wire format.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal, Protocol

import attrs

__all__ = [
    "ChatMessage",
    "Delta",
    "Finish",
    "ModelInfo",
    "ModelRequest",
    "Provider",
    "TextDelta",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
]

Thinking = Literal["off", "minimal", "low", "medium", "high", "xhigh"]


@attrs.frozen
class ToolCall:
    id: str
    name: str
    arguments: str  #: JSON text, as the model wrote it


@attrs.frozen
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@attrs.frozen
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  #: JSON Schema of the arguments


@attrs.frozen
class ModelRequest:
    model: str  #: the provider's own model name (without the ``<provider>/`` prefix)
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    thinking: Thinking = "off"
    max_tokens: int | None = None


@attrs.frozen
class TextDelta:
    text: str


@attrs.frozen
class ThinkingDelta:
    text: str


@attrs.frozen
class ToolCallDelta:
    """A piece of a tool call; ``index`` says which call of this turn it belongs to."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen
class Usage:
    prompt_tokens: int
    completion_tokens: int


@attrs.frozen
class Finish:
    reason: Literal["stop", "tool_calls", "length", "error"] = "stop"


Delta = TextDelta | ThinkingDelta | ToolCallDelta | Usage | Finish


@attrs.frozen
class ModelInfo:
    id: str  #: ``<provider>/<name>``
    provider: str
    name: str
    context_window: int
    max_output_tokens: int
    streaming: bool = True
    tools: bool = True
    thinking: bool = False
    vision: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "name": self.name,
            "context_window": self.context_window,
            "capabilities": self.capabilities(),
        }

    def capabilities(self) -> dict[str, Any]:
        return {
            "streaming": self.streaming,
            "tools": self.tools,
            "thinking": self.thinking,
            "vision": self.vision,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
        }


class Provider(Protocol):
    name: str

    def models(self) -> list[ModelInfo]: ...

    def stream(self, request: ModelRequest) -> AsyncGenerator[list[Delta], None]:
        """The answer as batches of deltas; never an empty batch."""
        ...
