"""``python -m aleph_trio``: run the gateway as a server.

Every start-up failure (a bad config, a port in use, a data dir another gateway holds, a
database from a newer version) is one line on stderr and exit code 2. SIGINT or SIGTERM stops
gracefully (:meth:`Gateway.drain`); a second one stops at once.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import trio

from . import cli
from ._gateway import Gateway, default_data_dir, open_gateway
from ._version import __version__
from .auth import owner_token
from .kernel import (
    LEVELS,
    Config,
    ConfigError,
    DataDirLocked,
    LoadedConfig,
    default_config_path,
    load_config,
)
from .store import StoreError

__all__ = ["main"]

EXIT_USAGE = 2

log = logging.getLogger("aleph_trio.gateway")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aleph_trio",
        description="Run the aleph_trio gateway (JSON-RPC 2.0 over WebSocket).",
        epilog=(
            "The same command is also the terminal client: 'aleph-trio chat' talks to a running "
            "gateway (answering approvals inline), 'aleph-trio call METHOD [JSON]' calls one "
            "method, 'aleph-trio tail [PATTERN...]' follows events. See 'aleph-trio chat --help'."
        ),
    )
    p.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    p.add_argument(
        "--port", type=int, help="port to bind (default: server.port, 18790; 0 = any free port)"
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $ALEPH_TRIO_CONFIG or the user config dir)",
    )
    p.add_argument(
        "--data-dir", metavar="PATH", help=f"where state lives (default: {default_data_dir()})"
    )
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="accept every connection as owner (local development only)",
    )
    p.add_argument(
        "--print-token",
        action="store_true",
        help="print the owner token (creating it if needed) and exit; starts no gateway",
    )
    p.add_argument(
        "--log-level",
        choices=sorted(LEVELS, key=LEVELS.__getitem__),
        help="log level (default: logging.level)",
    )
    p.add_argument("--version", action="version", version=f"aleph_trio {__version__}")
    return p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in cli.COMMANDS:  # aleph-trio call|chat|tail: the terminal client
        return cli.main(argv)
    args = _parser().parse_args(argv)
    try:
        loaded = load_config(default_config_path(args.config))
    except ConfigError as exc:
        sys.stderr.write(f"aleph_trio: invalid configuration: {exc}\n")
        for error in exc.errors[1:]:
            sys.stderr.write(f"  {error['path']}: {error['message']}\n")
        return EXIT_USAGE
    config = loaded.config
    server = attrs.evolve(
        config.server,
        host=config.server.host if args.host is None else args.host,
        port=config.server.port if args.port is None else args.port,
    )
    auth = attrs.evolve(config.auth, require_auth=False) if args.no_auth else config.auth
    logs = config.logging
    if args.log_level is not None:  # the command line wins over the file's logging.level
        logs = attrs.evolve(logs, level=args.log_level)
    config = attrs.evolve(config, server=server, auth=auth, logging=logs)
    if not (0 <= server.port <= 65535):
        sys.stderr.write(f"aleph_trio: --port must be between 0 and 65535, not {server.port}\n")
        return EXIT_USAGE
    if not auth.require_auth and not is_loopback(server.host):
        sys.stderr.write(
            f"aleph_trio: refusing to listen on {server.host} without authentication: "
            "anyone who can reach it could run commands as the owner. Bind a loopback "
            "address (127.0.0.1) or turn authentication on.\n"
        )
        return EXIT_USAGE

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if args.print_token:
        return _print_token(config, data_dir)

    # Our loggers get their levels from the config (logging.level, logging.components); other
    # libraries' loggers stay at warnings, so "debug" means the gateway's debug lines.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    loaded = LoadedConfig(config, loaded.source, loaded.loaded_at, loaded.path)
    started: list[bool] = []
    try:
        trio.run(_serve, loaded, data_dir, started)
    except BaseException as exc:
        reason = None if started else _start_failure(exc, f"{server.host}:{server.port}")
        if reason is None:
            raise
        sys.stderr.write(f"aleph_trio: {reason}\n")
        return EXIT_USAGE
    return 0


def _print_token(config: Config, data_dir: Path) -> int:
    """``--print-token``: the token a client needs, without taking the data dir or a port."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        token, _ = owner_token(config, data_dir)
    except OSError as exc:
        sys.stderr.write(f"aleph_trio: cannot read or create the token in {data_dir}: {exc}\n")
        return EXIT_USAGE
    _say(token)
    return 0


def _start_failure(exc: BaseException, address: str) -> str | None:
    """One line saying why the gateway could not start, or ``None`` for anything else (a bug
    keeps its traceback)."""
    leaves = list(_leaves(exc))
    if not leaves or len({type(e) for e in leaves}) != 1:
        return None
    first = leaves[0]
    if isinstance(first, DataDirLocked):
        return str(first)
    if isinstance(first, StoreError):
        return f"cannot open the database: {first}"
    if isinstance(first, ConfigError):
        return f"invalid configuration: {first}"
    if isinstance(first, OSError):
        return f"cannot listen on {address}: {first.strerror or first}"
    return None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


async def _serve(loaded: LoadedConfig, data_dir: Path, started: list[bool]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_gateway(loaded, data_dir=data_dir) as gateway:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(gateway.serve)
                started.append(True)
                _announce(gateway, loaded, port)
                # What start-up built lives as long as the process: keep it out of every full
                # collection, which would otherwise walk it again and again while serving.
                gc.collect()
                gc.freeze()
                signum = await signals.__anext__()
                log.info("received %s, stopping", signal.Signals(signum).name)
                hurry = trio.Event()
                nursery.start_soon(_hurry_on_signal, signals, hurry)
                await gateway.drain(hurry=hurry)
                nursery.cancel_scope.cancel()


def _announce(gateway: Gateway, loaded: LoadedConfig, port: int) -> None:
    host = gateway.config.server.host
    shown = f"[{host}]" if ":" in host else host
    _say(f"aleph_trio {__version__} listening on ws://{shown}:{port}")
    if not gateway.config.auth.require_auth:
        _say("authentication is off: every connection is the owner")
    else:
        _say(f"owner token: in {gateway.token_source}")
    _say(f"config: {loaded.source}; data: {gateway.data_dir}")
    _say(f"Control UI: http://{shown}:{port}/ui/ (health: /health, metrics: /metrics)")


async def _hurry_on_signal(signals: AsyncIterator[int], hurry: trio.Event) -> None:
    """A second SIGINT/SIGTERM while draining: stop waiting for runs."""
    async for signum in signals:
        log.warning("received %s again: stopping now", signal.Signals(signum).name)
        hurry.set()
        return


if __name__ == "__main__":
    raise SystemExit(main())
