"""Connecting to the gateway, and the failures that end a command with one plain line."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ..client import Client, ConnectionLost, open_client
from ..protocol import AlephError, AuthFailed, AuthRequired, RateLimited
from ._token import Token

__all__ = [
    "EXIT_ERROR",
    "EXIT_USAGE",
    "LOST",
    "CliError",
    "Target",
    "client_id",
    "connect",
    "leaves",
    "refused",
    "report_reconnects",
]

EXIT_ERROR = 1  # the gateway answered with a JSON-RPC error
EXIT_USAGE = 2  # bad arguments, no gateway, no or a wrong token


class CliError(Exception):
    """Ends the command: ``message`` goes to stderr as one line, the exit code is ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Target:
    url: str
    token: Token


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        # trio.open_tcp_stream: "all attempts to connect failed", caused by each attempt's error
        causes = leaves(exc.__cause__) if exc.__cause__ is not None else [exc]
        cause = next((c for c in causes if isinstance(c, OSError)), exc)
        if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
            return os.strerror(cause.errno)  # trio puts the address into strerror
        return (cause.strerror if isinstance(cause, OSError) else None) or str(cause)
    status = getattr(exc, "status_code", None)  # trio_websocket.ConnectionRejected
    if isinstance(status, int):
        return f"it answered HTTP {status} instead of a WebSocket upgrade"
    return str(exc) or type(exc).__name__


def refused(exc: AlephError, target: Target) -> CliError:
    """What to say when authentication is the problem."""
    if isinstance(exc, AuthFailed):
        return CliError(f"the gateway at {target.url} refused the token from {target.token.source}")
    if isinstance(exc, AuthRequired):
        return CliError(
            f"the gateway at {target.url} needs a token: {target.token.source} "
            "(pass --token, set $ALEPH_TRIO_TOKEN or --data-dir)"
        )
    if isinstance(exc, RateLimited):
        return CliError(f"the gateway at {target.url} refused to authenticate: {exc.message}")
    return CliError(f"cannot connect to {target.url}: {exc.message}")


def client_id(command: str) -> str:
    """How the gateway names this client (in ``resolved_by`` of an approval, for instance)."""
    return f"aleph-trio {command}"


@contextlib.asynccontextmanager
async def connect(target: Target, *, command: str, reconnect: bool) -> AsyncIterator[Client]:
    """A client for ``target``; a gateway that cannot be reached or that refuses the token is a
    :class:`CliError`. With ``reconnect`` the connection is re-established when it drops."""
    stack = contextlib.AsyncExitStack()
    try:
        client = await stack.enter_async_context(
            open_client(
                target.url,
                token=target.token.value,
                client_id=client_id(command),
                reconnect=reconnect,
            )
        )
    except ValueError as exc:  # not a ws:// or wss:// URL
        raise CliError(f"--url: {exc}") from None
    except Exception as exc:  # the connection or the handshake failed, or the token was refused
        first = leaves(exc)[0]
        if isinstance(first, AlephError):
            raise refused(first, target) from None
        raise CliError(f"cannot reach the gateway at {target.url}: {_reason(first)}") from None
    async with stack:
        yield client


LOST = "the connection to the gateway was lost"


async def report_reconnects(
    client: Client,
    say: Callable[[str], None],
    again: Callable[[Client], Awaitable[None]] | None = None,
) -> None:
    """Say when the connection drops and when it is back (the client has authenticated and
    resubscribed by then); ``again`` redoes what a new connection does not inherit."""
    while True:
        await client.wait_disconnected()
        say("connection lost; reconnecting")
        while True:
            try:
                # The call waits until the client has resumed on a new connection.
                await (again(client) if again is not None else client.call("health"))
            except ConnectionLost:
                continue
            break
        say("reconnected")
