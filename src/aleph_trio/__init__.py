"""aleph_trio: a self-hosted AI-agent gateway speaking JSON-RPC 2.0 over one WebSocket, on Trio."""

from ._config import Config as Config
from ._config_file import ConfigError as ConfigError, load_config as load_config
from ._cron import WallClock as WallClock
from ._gateway import (
    Gateway as Gateway,
    open_gateway as open_gateway,
    serve_gateway as serve_gateway,
)
from ._tools import (
    Tool as Tool,
    ToolContext as ToolContext,
    ToolFailed as ToolFailed,
)
from ._version import __version__ as __version__
from .client import Client as Client, ClientEvent as ClientEvent, open_client as open_client
from .protocol import AlephError as AlephError, ErrorCode as ErrorCode

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
