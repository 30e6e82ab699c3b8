"""A complete MCP server over stdio in the standard library alone: point the gateway at it with

    [mcp.servers.text]
    command = "python3"
    args = ["examples/mcp_server.py"]
    require_approval = ["shout"]

and agents get ``mcp__text__word_count`` and ``mcp__text__shout`` (the latter waits for the
owner's ``mcp.respond_approval``). The protocol is newline-delimited JSON-RPC 2.0 on
stdin/stdout: answer ``initialize``, ``tools/list`` and ``tools/call``; log to stderr only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

TOOLS = [
    {
        "name": "word_count",
        "description": "Count the words of a text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
    {
        "name": "shout",
        "description": "The text in capitals.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
]


def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    text = str(arguments.get("text", ""))
    if name == "word_count":
        answer, failed = str(len(text.split())), False
    elif name == "shout":
        answer, failed = text.upper(), False
    else:
        answer, failed = f"no tool named {name}", True
    return {"content": [{"type": "text", "text": answer}], "isError": failed}


def answer(message: dict[str, Any]) -> dict[str, Any] | None:
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message:
        return None  # a notification: nothing to answer
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
    if method == "initialize":
        reply["result"] = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "text-tools", "version": "1.0"},
        }
    elif method == "tools/list":
        reply["result"] = {"tools": TOOLS}
    elif method == "tools/call":
        reply["result"] = call_tool(params.get("name", ""), params.get("arguments") or {})
    elif method == "ping":
        reply["result"] = {}
    else:
        reply["error"] = {"code": -32601, "message": f"Method not found: {method}"}
    return reply


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            reply = answer(json.loads(line))
            if reply is not None:
                print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
