"""MCP servers (PROTOCOL §15): each ``[mcp.servers.<name>]`` runs as service ``mcp:<name>``
speaking the Model Context Protocol over stdio, its tools offered to agents as
``mcp__<server>__<tool>``, calls gated by the owner's approval where configured."""

from ._approvals import McpApprovals as McpApprovals, PendingCall as PendingCall
from ._client import (
    PROTOCOL_VERSION as PROTOCOL_VERSION,
    McpConnection as McpConnection,
    McpError as McpError,
    ServerGone as ServerGone,
)
from ._manager import RESTARTS as RESTARTS, McpServers as McpServers, service_name as service_name
from ._server import McpServer as McpServer, tool_name as tool_name
