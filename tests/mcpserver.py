"""A small MCP server over stdio for the tests: newline-delimited JSON-RPC 2.0, standard library only.

Run as ``python tests/mcpserver.py [--tools echo,crash,slow,fail,add]``. Tools:

``echo {text}``     answers ``text``
``add {a, b}``      answers the sum
``fail {}``         answers an error result (``isError: true``)
``slow {seconds}``  answers after sleeping that long (concurrent calls are served in threads)
``crash {}``        the process exits at once, answering nothing
``pid {}``          answers the server's process id

With ``--linger`` among the arguments it keeps running after its stdin closes (a server that
would outlive a gateway that died without killing it). Setting ``MCP_DEMO_GREETING`` in the environment changes ``echo``'s prefix, so a test can see the
configured ``env`` arrive.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()

TOOLS: dict[str, dict[str, Any]] = {
    "echo": {
        "description": "Answer the text given.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
    "add": {
        "description": "Add two numbers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
    "fail": {"description": "Always fails.", "inputSchema": {"type": "object"}},
    "slow": {
        "description": "Answer after a while.",
        "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
    },
    "crash": {"description": "Exit the server.", "inputSchema": {"type": "object"}},
    "pid": {"description": "The server's process id.", "inputSchema": {"type": "object"}},
}


def send(message: dict[str, Any]) -> None:
    with _lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def text(value: str, *, error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": error}


def call(request_id: Any, name: str, args: dict[str, Any]) -> None:
    if name == "echo":
        prefix = os.environ.get("MCP_DEMO_GREETING", "")
        result = text(prefix + str(args.get("text", "")))
    elif name == "add":
        result = text(str(args["a"] + args["b"]))
    elif name == "fail":
        result = text("this tool always fails", error=True)
    elif name == "slow":
        time.sleep(float(args.get("seconds", 3600)))
        result = text("done")
    elif name == "crash":
        sys.stdout.flush()
        os._exit(3)
    elif name == "pid":
        result = text(str(os.getpid()))
    else:
        send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": -32602, "message": f"unknown tool {name}"},
            }
        )
        return
    send({"jsonrpc": "2.0", "id": request_id, "result": result})


def main() -> None:
    offered = list(TOOLS)
    if len(sys.argv) > 2 and sys.argv[1] == "--tools":
        offered = sys.argv[2].split(",")
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:  # a notification (notifications/initialized, cancelled)
            continue
        if method == "initialize":
            send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "result": {
                        "protocolVersion": message["params"]["protocolVersion"],
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "demo", "version": "1.0"},
                    },
                }
            )
        elif method == "tools/list":
            tools = [{"name": n, **TOOLS[n]} for n in offered]
            send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}})
        elif method == "tools/call":
            params = message["params"]
            threading.Thread(
                target=call,
                args=(request_id, params["name"], params.get("arguments") or {}),
                daemon=True,
            ).start()
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": request_id, "result": {}})
        else:
            send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": -32601, "message": "Method not found"},
                }
            )
    if "--linger" in sys.argv:
        time.sleep(3600)


if __name__ == "__main__":
    main()
