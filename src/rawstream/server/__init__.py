"""The Trio layer: listeners, connections, streams.  It drives :mod:`rawstream.core`."""

from .config import Config
from .server import Server, serve
from .sse import SSEStream
from .websocket import WebSocket, WebSocketClosed

__all__ = ["Config", "SSEStream", "Server", "WebSocket", "WebSocketClosed", "serve"]
