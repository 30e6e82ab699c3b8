"""One configured MCP server as a gateway service (``mcp:<name>``).

``serve`` starts the server's command in a process group of its own, runs the MCP handshake
(``initialize``, ``notifications/initialized``, ``tools/list``), offers each tool to agents as
``mcp__<server>__<tool>`` with the server's JSON Schema, reports started, and then waits for the
process: its exit is a failure that the services registry restarts with backoff. Calls in flight
when the server goes away fail with a result saying so; the run goes on.

Stopped (cancelled) it closes the server's stdin, gives it a moment, then kills its whole
process group; the gateway's process guard kills the group too if the gateway itself dies.
A server's tools stay offered while it is being restarted (a call then says it is not
running) and are withdrawn when the service is stopped.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from typing import Any, Final, final

import trio

from .._version import __version__
from ..approvals import MARK_VARIABLE, ProcessGuard, child_environment
from ..kernel import McpServerConfig, component_logger, resolve_secret
from ..tools import Tool, ToolBox, ToolContext, ToolFailed
from ._approvals import McpApprovals
from ._client import PROTOCOL_VERSION, McpConnection, McpError, ServerGone

__all__ = ["McpServer", "tool_name"]

log = component_logger("mcp")

#: How long a server has to answer the handshake and list its tools.
HANDSHAKE_TIMEOUT_S: Final = 30.0
#: How long a stopped server may take to exit after its stdin closes, before it is killed.
EXIT_GRACE_S: Final = 1.0
STDERR_LINES: Final = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """The name agents call a server's tool by: ``mcp__<server>__<tool>``."""
    return f"mcp__{_UNSAFE.sub('_', server)}__{_UNSAFE.sub('_', tool)}"


class ServerExited(Exception):
    """The server's process ended while it was serving."""


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


@final
class McpServer:
    """The service of one ``[mcp.servers.<name>]`` entry, started with that entry."""

    def __init__(
        self,
        name: str,
        config: McpServerConfig,
        *,
        tools: ToolBox,
        approvals: McpApprovals,
        require_approval: Callable[[], bool | tuple[str, ...]],
        guard: ProcessGuard | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._tools = tools
        self._approvals = approvals
        self._require_approval = require_approval
        self._guard = guard
        self._connection: McpConnection | None = None
        self._offered: dict[str, str] = {}  #: agent-facing name → the server's tool name
        self.pid: int | None = None

    @property
    def tools(self) -> list[str]:
        return sorted(self._offered)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        env = child_environment(set())
        for key, secret in config.env.items():
            value = resolve_secret(secret)
            if value is not None:
                env[key] = value
        mark = self._guard.new_mark() if self._guard is not None else None
        if mark is not None:
            env[MARK_VARIABLE] = mark
        process = await trio.lowlevel.open_process(
            [config.command, *config.args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        pgid = self.pid = process.pid
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        connection = McpConnection(process.stdin, self.name)
        stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        try:
            if self._guard is not None and mark is not None:
                async with self._guard.watching(pgid, mark):
                    await self._talk(process, connection, stderr, task_status)
            else:
                await self._talk(process, connection, stderr, task_status)
        finally:
            self._connection = None
            connection.close(f"MCP server {self.name} was stopped")
            with trio.CancelScope(shield=True):
                await self._end(process, pgid)

    async def _talk(
        self,
        process: trio.Process,
        connection: McpConnection,
        stderr: collections.deque[str],
        task_status: trio.TaskStatus[None],
    ) -> None:
        assert process.stdout is not None
        assert process.stderr is not None
        stderr_read = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_stderr, process.stderr, stderr, stderr_read)
            nursery.start_soon(self._read_stdout, connection, process.stdout, process.pid)
            try:
                with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                    await self._handshake(connection)
            except (McpError, trio.TooSlowError) as exc:
                with trio.move_on_after(EXIT_GRACE_S):
                    await process.wait()
                why = "no answer" if isinstance(exc, trio.TooSlowError) else str(exc)
                failure = ServerExited(
                    f"the MCP handshake failed: {why}"
                    + await self._exit_note(process, stderr, stderr_read)
                )
            else:
                connection.on_notification = lambda method, params: self._notified(
                    nursery, connection, method
                )
                self._connection = connection
                log.info("MCP server %s ready: %d tool(s)", self.name, len(self._offered))
                task_status.started()
                await process.wait()
                failure = ServerExited(
                    "the server exited" + await self._exit_note(process, stderr, stderr_read)
                )
            nursery.cancel_scope.cancel()
        raise failure

    async def _handshake(self, connection: McpConnection) -> None:
        await connection.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "aleph_trio", "version": __version__},
            },
        )
        await connection.notify("notifications/initialized")
        await self._load_tools(connection)

    @staticmethod
    async def _exit_note(
        process: trio.Process, stderr: collections.deque[str], stderr_read: trio.Event
    ) -> str:
        """`` with code N (last lines of stderr)``, as far as known."""
        with trio.move_on_after(EXIT_GRACE_S):  # let the reader take in the last lines
            await stderr_read.wait()
        note = f" with code {process.returncode}" if process.returncode is not None else ""
        last = "; ".join(stderr)
        return note + (f" ({last})" if last else "")

    async def _read_stdout(
        self, connection: McpConnection, stdout: trio.abc.ReceiveStream, pgid: int
    ) -> None:
        try:
            await connection.read_from(stdout)
        except trio.Cancelled:
            connection.close(f"MCP server {self.name} was stopped")
            raise
        except (McpError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.warning("MCP server %s: %s", self.name, exc)
        finally:
            connection.close(
                f"MCP server {self.name} went away during the call; it is being restarted"
            )
            _kill_group(pgid)  # no output, no service: make sure the process ends too

    async def _read_stderr(
        self, stream: trio.abc.ReceiveStream, tail: collections.deque[str], done: trio.Event
    ) -> None:
        buffer = b""
        try:
            while chunk := await stream.receive_some(4096):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    text = line.decode("utf-8", errors="replace").rstrip()
                    if text:
                        tail.append(text[:500])
                        log.debug("MCP server %s: %s", self.name, text)
                buffer = buffer[-4096:]
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            done.set()

    def _notified(self, nursery: trio.Nursery, connection: McpConnection, method: str) -> None:
        if method == "notifications/tools/list_changed":
            nursery.start_soon(self._reload_tools, connection)

    async def _reload_tools(self, connection: McpConnection) -> None:
        try:
            await self._load_tools(connection)
        except McpError as exc:
            log.warning("MCP server %s: listing its tools failed: %s", self.name, exc)

    async def _load_tools(self, connection: McpConnection) -> None:
        listed: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            result = await connection.request("tools/list", {"cursor": cursor} if cursor else {})
            listed += [t for t in result.get("tools", []) if isinstance(t, dict)]
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        offered: dict[str, str] = {}
        for entry in listed:
            original = entry.get("name")
            if not isinstance(original, str) or not original:
                continue
            name = tool_name(self.name, original)
            if name in offered or (name not in self._offered and self._tools.get(name)):
                log.warning("MCP server %s: %s is taken; %r skipped", self.name, name, original)
                continue
            schema = entry.get("inputSchema")
            if not isinstance(schema, dict):
                schema = {"type": "object"}
            description = entry.get("description")
            self._tools.remove(name)
            self._tools.add(
                Tool(
                    name=name,
                    description=str(description or f"{original} (MCP server {self.name})"),
                    params=dict,
                    run=self._caller(original),
                    schema=schema,
                )
            )
            offered[name] = original
        self._withdraw(set(offered))
        self._offered = offered

    def withdraw(self) -> None:
        """Offer none of the server's tools any more (its service was stopped)."""
        self._withdraw(set())

    def _withdraw(self, keep: set[str]) -> None:
        for name in list(self._offered):
            if name not in keep:
                self._tools.remove(name)
                del self._offered[name]

    def _caller(self, tool: str) -> Callable[[ToolContext, dict[str, Any]], Any]:
        async def run(ctx: ToolContext, arguments: dict[str, Any]) -> str:
            return await self.call(ctx, tool, arguments)

        return run

    def needs_approval(self, tool: str) -> bool:
        required = self._require_approval()
        return required if isinstance(required, bool) else tool in required

    async def call(self, ctx: ToolContext, tool: str, arguments: dict[str, Any]) -> str:
        """Call ``tool`` with ``arguments`` (after the owner's approval where it is required);
        the server's text content is the result."""
        if self._connection is None:
            raise ToolFailed(f"MCP server {self.name} is not running; try again later")
        if self.needs_approval(tool):
            await self._approvals.wait(self.name, tool, arguments, ctx.run)
        connection = self._connection
        if connection is None:
            raise ToolFailed(f"MCP server {self.name} is not running; try again later")
        try:
            result = await connection.request("tools/call", {"name": tool, "arguments": arguments})
        except ServerGone as exc:
            raise ToolFailed(f"{tool} was not completed: {exc}") from None
        except McpError as exc:
            raise ToolFailed(f"{tool} on MCP server {self.name} failed: {exc}") from None
        text = render(result)
        if result.get("isError"):
            raise ToolFailed(text or f"{tool} on MCP server {self.name} failed")
        return text

    async def _end(self, process: trio.Process, pgid: int) -> None:
        """Close stdin, give the server a moment to exit, then kill its whole group."""
        assert process.stdin is not None
        with trio.move_on_after(EXIT_GRACE_S):
            try:
                await process.stdin.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await process.wait()
        _kill_group(pgid)
        with trio.move_on_after(5):
            await process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                await stream.aclose()


def render(result: dict[str, Any]) -> str:
    """A ``tools/call`` result as text: its text parts, other parts described."""
    parts: list[str] = []
    for item in result.get("content") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text":
            parts.append(str(item.get("text", "")))
        elif kind in ("image", "audio"):
            size = len(str(item.get("data", ""))) * 3 // 4
            parts.append(f"[{kind}: {item.get('mimeType', 'unknown type')}, {size} bytes]")
        elif kind == "resource":
            resource = item.get("resource") or {}
            parts.append(str(resource.get("text") or f"[resource: {resource.get('uri', '?')}]"))
        elif kind == "resource_link":
            parts.append(f"[resource: {item.get('uri', '?')}]")
    if not parts and "structuredContent" in result:
        parts.append(json.dumps(result["structuredContent"], ensure_ascii=False))
    return "\n".join(parts)
