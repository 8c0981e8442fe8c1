"""A Server-Sent Events client on Trio: h11 for HTTP, the core's parser for the stream.

* :func:`connect_sse` opens one stream (``GET`` or ``POST`` with a body), for relays and
  APIs that stream one answer;
* :class:`EventSource` keeps a stream alive as a browser does: it reconnects with backoff and
  jitter, honours ``retry:``, and resumes with ``Last-Event-ID``.

See docs/CLIENT.md.
"""

from ..core.sse_parser import EventStreamParser, ServerSentEvent
from .backoff import Backoff
from .errors import (
    SSEClientError,
    SSEConnectionError,
    SSEEventTooLargeError,
    SSEResponseError,
    SSEResponseTooLargeError,
)
from .sse import EventSource, SSEResponse, connect_sse

__all__ = [
    "Backoff",
    "EventSource",
    "EventStreamParser",
    "SSEClientError",
    "SSEConnectionError",
    "SSEEventTooLargeError",
    "SSEResponse",
    "SSEResponseError",
    "SSEResponseTooLargeError",
    "ServerSentEvent",
    "connect_sse",
]
