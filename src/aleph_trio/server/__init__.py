"""The Trio side of the wire: listeners, the WebSocket transport, connections."""

from ._connection import Connection as Connection
from ._listener import serve_listeners as serve_listeners, serve_stream as serve_stream
from ._websocket import TransportClosed as TransportClosed, WebSocketTransport as WebSocketTransport
