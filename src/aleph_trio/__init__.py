"""aleph_trio: a self-hosted AI-agent gateway speaking JSON-RPC 2.0 over one WebSocket, on Trio."""

from ._gateway import (
    Gateway as Gateway,
    open_gateway as open_gateway,
    serve_gateway as serve_gateway,
)
from ._version import __version__ as __version__
from .client import Client as Client, ClientEvent as ClientEvent, open_client as open_client
from .cron import WallClock as WallClock
from .kernel import Config as Config, ConfigError as ConfigError, load_config as load_config
from .protocol import AlephError as AlephError, ErrorCode as ErrorCode
from .tools import (
    Tool as Tool,
    ToolContext as ToolContext,
    ToolFailed as ToolFailed,
)

__all__ = [
    "AlephError",
    "Client",
    "ClientEvent",
    "Config",
    "ConfigError",
    "ErrorCode",
    "Gateway",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "WallClock",
    "__version__",
    "load_config",
    "open_client",
    "open_gateway",
    "serve_gateway",
]
