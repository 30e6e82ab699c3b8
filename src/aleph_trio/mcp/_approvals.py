"""MCP tool calls that wait for the owner's approval (PROTOCOL §15).

A call to a tool its server's ``require_approval`` names waits here: the run is
``waiting_approval`` and ``mcp.approval_requested`` goes out (owner connections only). The
owner answers with ``mcp.respond_approval`` (approve or deny) or withdraws the request with
``mcp.cancel_approval``; either way ``mcp.approval_resolved`` follows and the request is gone,
so a second answer finds nothing (``-32004``). Pending requests live in memory: they belong to
a run in flight, and a run does not outlive its gateway.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal, final

import attrs
import trio

from ..kernel import EventBus, NotFound, now_ts
from ..tools import ToolFailed, ToolRun

__all__ = ["McpApprovals", "PendingCall"]

Outcome = Literal["approved", "denied", "cancelled"]


@attrs.define(eq=False)
class PendingCall:
    id: str
    server: str
    tool: str
    arguments: dict[str, Any]
    run_id: str
    requested_at: str
    decided: trio.Event = attrs.Factory(trio.Event)
    outcome: Outcome | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "run_id": self.run_id,
            "requested_at": self.requested_at,
        }


@final
class McpApprovals:
    """The MCP tool calls waiting for the owner, by request id."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._pending: dict[str, PendingCall] = {}

    def pending(self) -> list[PendingCall]:
        return sorted(self._pending.values(), key=lambda call: (call.requested_at, call.id))

    async def wait(self, server: str, tool: str, arguments: dict[str, Any], run: ToolRun) -> None:
        """Wait for the owner's answer; raises :class:`ToolFailed` unless the call is approved."""
        call = PendingCall(
            id=f"mcpa_{secrets.token_hex(8)}",
            server=server,
            tool=tool,
            arguments=arguments,
            run_id=run.run_id,
            requested_at=now_ts(),
        )
        self._pending[call.id] = call
        try:
            await run.set_status("waiting_approval")
            self._bus.publish(
                "mcp.approval_requested",
                {"id": call.id, "server": server, "tool": tool, "run_id": run.run_id},
                run_id=run.run_id,
            )
            await call.decided.wait()
        finally:
            if self._pending.pop(call.id, None) is not None:  # the run was cancelled meanwhile
                self._resolve(call, "cancelled")
        await run.set_status("running")
        if call.outcome == "denied":
            raise ToolFailed(f"the owner denied the call to {tool} on MCP server {server}")
        if call.outcome == "cancelled":
            raise ToolFailed(
                f"the approval request for {tool} on MCP server {server} was cancelled; "
                "the tool was not called"
            )

    def respond(self, request_id: str, approved: bool) -> None:
        self._resolve(self._take(request_id), "approved" if approved else "denied")

    def cancel(self, request_id: str) -> None:
        self._resolve(self._take(request_id), "cancelled")

    def _take(self, request_id: str) -> PendingCall:
        call = self._pending.pop(request_id, None)
        if call is None:
            raise NotFound("approval", request_id)
        return call

    def _resolve(self, call: PendingCall, outcome: Outcome) -> None:
        call.outcome = outcome
        call.decided.set()
        self._bus.publish(
            "mcp.approval_resolved",
            {
                "id": call.id,
                "server": call.server,
                "tool": call.tool,
                "run_id": call.run_id,
                "approved": outcome == "approved",
                "outcome": outcome,
            },
            run_id=call.run_id,
        )
