"""The configured MCP servers, each kept running as service ``mcp:<name>``.

:meth:`McpServers.open` starts a service for each ``[mcp.servers.<name>]``; after a config
change :meth:`McpServers.configure` starts the servers added, stops those removed, and restarts
those whose ``command``, ``args`` or ``env`` changed (``require_approval`` is read at each call,
so changing it restarts nothing). A server that exits is restarted by the services registry
after a backoff that doubles up to :data:`RESTARTS`' cap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, final

import attrs
import trio

from ..approvals import ProcessGuard
from ..kernel import (
    EventBus,
    McpConfig,
    McpServerConfig,
    NotFound,
    RestartPolicy,
    ServiceRegistry,
    component_logger,
)
from ..tools import ToolBox
from ._approvals import McpApprovals
from ._server import McpServer

__all__ = ["RESTARTS", "McpServers", "service_name"]

log = component_logger("mcp")

#: A server that exits is started again after 0.5 s, then 1, 2, … up to 30 s between tries;
#: after 8 failures in a row (none running a minute) it stays failed until ``services.start``.
RESTARTS: Final = RestartPolicy(
    restart=True, backoff_s=0.5, max_backoff_s=30.0, max_failures=8, stable_s=60.0
)


def service_name(server: str) -> str:
    return f"mcp:{server}"


def _launch_key(config: McpServerConfig) -> McpServerConfig:
    """What a running server was started with (a change of it means a restart)."""
    return attrs.evolve(config, require_approval=True)


@final
class McpServers:
    """Keeps one service per configured MCP server, and the calls waiting for approval."""

    def __init__(
        self,
        *,
        services: ServiceRegistry,
        tools: ToolBox,
        bus: EventBus,
        settings: Callable[[], McpConfig],
        guard: ProcessGuard | None = None,
    ) -> None:
        self._services = services
        self._tools = tools
        self._settings = settings
        self._guard = guard
        self.approvals = McpApprovals(bus)
        self._servers: dict[str, McpServer] = {}
        self._nursery: trio.Nursery | None = None
        self._reconciling = trio.Lock()

    def server(self, name: str) -> McpServer:
        server = self._servers.get(name)
        if server is None:
            raise NotFound("MCP server", name)
        return server

    def names(self) -> list[str]:
        return sorted(self._servers)

    async def open(self, nursery: trio.Nursery) -> None:
        """Start the configured servers in ``nursery`` (the gateway's), without waiting for
        them to be ready: a slow server does not hold up the gateway."""
        self._nursery = nursery
        nursery.start_soon(self.reconcile)

    def configure(self) -> None:
        """The configuration changed: bring the services in line, in the background."""
        if self._nursery is not None:
            self._nursery.start_soon(self.reconcile)

    async def reconcile(self) -> None:
        """Stop the services of servers no longer configured (or configured differently),
        then start those not running yet; returns when each is ready or has failed once."""
        async with self._reconciling:
            wanted = self._settings().servers
            for name, server in list(self._servers.items()):
                config = wanted.get(name)
                if config is None or _launch_key(config) != _launch_key(server.config):
                    log.info("MCP server %s: %s", name, "removed" if config is None else "changed")
                    await self._services.remove(service_name(name))
                    server.withdraw()
                    del self._servers[name]
            nursery = self._nursery
            assert nursery is not None, "open() first"
            async with trio.open_nursery() as starting:
                for name, config in wanted.items():
                    if name not in self._servers:
                        server = self._servers[name] = McpServer(
                            name,
                            config,
                            tools=self._tools,
                            approvals=self.approvals,
                            require_approval=self._approval_rule(name),
                            guard=self._guard,
                        )
                        starting.start_soon(self._start, nursery, server)

    async def _start(self, nursery: trio.Nursery, server: McpServer) -> None:
        await self._services.start(
            nursery,
            service_name(server.name),
            server.serve,
            policy=RESTARTS,
            on_stop=server.withdraw,
        )

    def _approval_rule(self, name: str) -> Callable[[], bool | tuple[str, ...]]:
        def rule() -> bool | tuple[str, ...]:
            config = self._settings().servers.get(name)
            return True if config is None else config.require_approval

        return rule
