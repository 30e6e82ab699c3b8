"""``python -m aleph_trio``: run the gateway as a server."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import signal
import sys
from pathlib import Path

import attrs
import trio

from . import cli
from ._gateway import default_data_dir, open_gateway
from ._version import __version__
from .kernel import LEVELS, ConfigError, LoadedConfig, default_config_path, load_config

__all__ = ["main"]

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aleph_trio",
        description="Run the aleph_trio gateway (JSON-RPC 2.0 over WebSocket).",
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
    p.add_argument("--print-token", action="store_true", help="print the owner token on start-up")
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
    config = attrs.evolve(config, server=server, auth=auth)
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

    logging.basicConfig(
        level=LEVELS[args.log_level or config.logging.level],
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    loaded = LoadedConfig(config, loaded.source, loaded.loaded_at, loaded.path)
    data_dir = Path(args.data_dir) if args.data_dir else None
    try:
        trio.run(_serve, loaded, data_dir, args.print_token, args.log_level)
    except OSError as exc:
        sys.stderr.write(
            f"aleph_trio: cannot listen on {server.host}:{server.port}: {exc.strerror or exc}\n"
        )
        return 1
    return 0


async def _serve(
    loaded: LoadedConfig, data_dir: Path | None, print_token: bool, log_level: str | None
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_gateway(loaded, data_dir=data_dir) as gateway:
            if log_level is not None:
                logging.getLogger("aleph_trio").setLevel(LEVELS[log_level])
            async with trio.open_nursery() as nursery:
                port = await nursery.start(gateway.serve)
                host = gateway.config.server.host
                shown = f"[{host}]" if ":" in host else host
                _say(f"aleph_trio {__version__} listening on ws://{shown}:{port}")
                if not gateway.config.auth.require_auth:
                    _say("authentication is off: every connection is the owner")
                elif print_token:
                    _say(f"owner token: {gateway.owner_token}")
                else:
                    _say(f"owner token: in {gateway.token_source}")
                _say(f"config: {loaded.source}; data: {gateway.data_dir}")
                # What start-up built lives as long as the process: keep it out of every full
                # collection, which would otherwise walk it again and again while serving.
                gc.collect()
                gc.freeze()
                async for signum in signals:
                    logging.getLogger("aleph_trio").info(
                        "received %s, stopping", signal.Signals(signum).name
                    )
                    break
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    raise SystemExit(main())
