"""The command line of the terminal client: ``aleph-trio call|chat|tail``."""

from __future__ import annotations

import argparse

from ._token import DEFAULT_URL, TOKEN_ENV, default_data_dir

__all__ = ["COMMANDS", "parse"]

COMMANDS = frozenset({"call", "chat", "tail"})

FOOTER = (
    "Output is readable on a terminal and JSON lines when stdout is not one. Exit codes: 0 ok, "
    "1 the gateway answered with an error, 2 bad arguments, no gateway or no (valid) token, "
    "130 interrupted (Ctrl-C)."
)


def _connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--url", default=DEFAULT_URL, help=f"gateway URL (default: {DEFAULT_URL})")
    group.add_argument(
        "--token", help=f"owner or guest token (default: ${TOKEN_ENV}, then the file)"
    )
    group.add_argument(
        "--data-dir",
        metavar="PATH",
        help=f"where the gateway keeps its token file (default: {default_data_dir()})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aleph-trio",
        description="Talk to a running aleph_trio gateway. Without a command, "
        "`aleph-trio` starts the gateway itself (see `aleph-trio --help`).",
        epilog=FOOTER,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    call = commands.add_parser(
        "call",
        help="call one method and print its result as JSON",
        description="Call METHOD with the JSON object PARAMS and print the result as JSON. "
        "A JSON-RPC error goes to stderr (code, message, data) and the exit code is 1.",
        epilog=f"""Example: aleph-trio call memory.search '{{"query": "office"}}'. {FOOTER}""",
    )
    call.add_argument("method", metavar="METHOD", help="e.g. health, session.list, commands.list")
    call.add_argument("params", metavar="PARAMS", nargs="?", help="a JSON object (default: none)")
    _connection(call)

    chat = commands.add_parser(
        "chat",
        help="a streamed conversation that answers approvals and questions inline",
        description="Chat with an agent. Each line you type is sent with chat.send and the "
        "answer streams in; commands the agent wants to run are shown for approval (allow once, "
        "always, deny) and its questions are answered inline. Each chat has its own session "
        "(agent:<agent>:cli-<random>) unless --session names one to continue. Ctrl-D quits; "
        "Ctrl-C stops the answer being written and quits.",
        epilog=FOOTER,
    )
    chat.add_argument("--session", metavar="KEY", help="continue this session (agent:<id>:<name>)")
    chat.add_argument("--agent", metavar="ID", help="the agent to talk to (default: main)")
    _connection(chat)

    tail = commands.add_parser(
        "tail",
        help="follow events (and with --logs the gateway's log)",
        description="Print events as they are published, until Ctrl-C. Survives a dropped "
        "connection or a gateway restart: it reconnects and resumes after the last event seen.",
        epilog=FOOTER,
    )
    tail.add_argument(
        "patterns",
        metavar="PATTERN",
        nargs="*",
        help="topic patterns: * within a segment, ** across segments (default: **)",
    )
    tail.add_argument("--logs", action="store_true", help="also follow the gateway's log")
    _connection(tail)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments; a usage error exits with code 2 (argparse's own)."""
    return _parser().parse_args(_join_token(argv))


def _join_token(argv: list[str]) -> list[str]:
    """``--token -x…`` as ``--token=-x…``: generated tokens may begin with ``-``, which
    argparse would take for an option."""
    joined: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--token":
            value = next(args, None)
            joined.append(arg if value is None else f"--token={value}")
        else:
            joined.append(arg)
    return joined
