"""The Trio layer: listeners, connections, streams.  It drives :mod:`rawstream.core`."""

from .config import Config
from .fanout import Delivery, broadcast
from .prepared import Prepared
from .server import Server, serve
from .sse import SSEStream
from .websocket import WebSocket, WebSocketClosed

__all__ = [
    "Config",
    "Delivery",
    "Prepared",
    "SSEStream",
    "Server",
    "WebSocket",
    "WebSocketClosed",
    "broadcast",
    "serve",
]
