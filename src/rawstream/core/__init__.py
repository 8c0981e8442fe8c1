"""The sans-IO core: HTTP/1.1 (h11), Server-Sent Events and WebSocket (wsproto).

Bytes and events only: no trio, no sockets, no clocks.  The server layer
(:mod:`rawstream.server`) feeds received bytes in and writes ``data_to_send()`` out; tests drive
these classes with byte strings alone.  ``tests/core/test_layering.py`` imports this package in
a process where trio cannot be imported.
"""

from .compression import GzipEventEncoder, accepts_gzip
from .errors import (
    EventTooLargeError,
    InvalidEventError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from .http import (
    NEED_DATA,
    BodyData,
    ClientClosed,
    EndOfRequest,
    HTTPConnection,
    HTTPEvent,
    NeedData,
    RequestHead,
)
from .httpevents import reason_phrase
from .sse import SSE_HEADERS, Event, encode_comment, encode_retry
from .sse_parser import EventStreamParser, ServerSentEvent
from .websocket import (
    Closed,
    Message,
    Ping,
    Pong,
    WebSocketConnection,
    WebSocketEvent,
    WebSocketState,
)

__all__ = [
    "NEED_DATA",
    "SSE_HEADERS",
    "BodyData",
    "ClientClosed",
    "Closed",
    "EndOfRequest",
    "GzipEventEncoder",
    "Event",
    "EventStreamParser",
    "EventTooLargeError",
    "HTTPConnection",
    "HTTPEvent",
    "InvalidEventError",
    "LocalProtocolError",
    "Message",
    "NeedData",
    "Ping",
    "Pong",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestHead",
    "ServerSentEvent",
    "WebSocketConnection",
    "WebSocketEvent",
    "WebSocketState",
    "accepts_gzip",
    "encode_comment",
    "encode_retry",
    "reason_phrase",
]
