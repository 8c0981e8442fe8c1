"""rawstream: a Trio streaming server for HTTP/1.1, Server-Sent Events and WebSocket.

The sans-IO protocol core lives in :mod:`rawstream.core`; the Trio server in
:mod:`rawstream.server`.  Applications need only the names exported here.
"""

from .app import App, Route
from .core.errors import InvalidEventError
from .core.sse import Event
from .cors import CORS
from .policy import SlowConsumer
from .request import Headers, HTTPError, QueryParams, Request
from .response import Response
from .server import Config, Server, SSEStream, WebSocket, WebSocketClosed, serve

__version__ = "0.1.0"

__all__ = [
    "App",
    "CORS",
    "Config",
    "Event",
    "HTTPError",
    "Headers",
    "InvalidEventError",
    "QueryParams",
    "Request",
    "Response",
    "Route",
    "SSEStream",
    "Server",
    "SlowConsumer",
    "WebSocket",
    "WebSocketClosed",
    "serve",
]
