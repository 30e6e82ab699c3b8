"""Running a command: arguments, the connection, Ctrl-C and the exit code."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import trio

from ..client import ConnectionLost
from ..protocol import AlephError, AuthFailed, AuthRequired
from ._args import parse
from ._call import call, parse_params
from ._chat import chat
from ._connect import EXIT_ERROR, LOST, CliError, Target, connect, leaves, refused
from ._input import LineReader
from ._interrupt import EXIT_INTERRUPTED, interruptible
from ._output import Output
from ._tail import tail
from ._token import find_token

__all__ = ["main"]

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away (``aleph-trio tail | head``)


async def _run(args: argparse.Namespace, target: Target, out: Output) -> int:
    params = parse_params(args.params) if args.command == "call" else None
    code = EXIT_INTERRUPTED  # unless the command gets to say otherwise
    async with interruptible() as interrupt:
        reconnect = args.command != "call"
        async with connect(target, command=args.command, reconnect=reconnect) as client:
            if args.command == "call":
                code = await call(client, out, args.method, params)
            elif args.command == "tail":
                code = await tail(client, out, args.patterns, logs=args.logs, target=target)
            else:
                code = await chat(
                    client, out, LineReader(), interrupt, session=args.session, agent=args.agent
                )
    return EXIT_INTERRUPTED if interrupt.received else code


def main(argv: list[str]) -> int:
    """``aleph-trio call|chat|tail ...``; returns the exit code."""
    out = Output()
    target: Target | None = None
    try:
        args = parse(argv)  # a usage error exits 2 here, as argparse does
        data_dir = Path(args.data_dir).expanduser() if args.data_dir else None
        target = Target(args.url, find_token(args.token, data_dir))
        return trio.run(_run, args, target, out)
    except BaseException as exc:
        return _failure(exc, out, target)


def _failure(exc: BaseException, out: Output, target: Target | None) -> int:
    """The exit code for what ended the command, said in one line (or raised when it is a bug)."""
    found = leaves(exc)
    if all(isinstance(e, KeyboardInterrupt) for e in found):
        return EXIT_INTERRUPTED
    for leaf in found:
        if isinstance(leaf, SystemExit):  # argparse: --help, usage errors
            raise leaf
        if isinstance(leaf, BrokenPipeError):
            # Nobody reads stdout any more; keep Python from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        if isinstance(leaf, CliError):
            out.note(leaf.message)
            return leaf.code
        if isinstance(leaf, (AuthRequired, AuthFailed)) and target is not None:
            failure = refused(leaf, target)
            out.note(failure.message)
            return failure.code
        if isinstance(leaf, AlephError):
            out.error(leaf)
            return EXIT_ERROR
        if isinstance(leaf, ConnectionLost):
            out.note(LOST)
            return CliError(LOST).code
    raise exc
