"""One error family for the sans-IO core, with two sides.

``LocalProtocolError`` means *we* (the application or the server layer) asked the core to do
something the protocol forbids: send a body before a response, put a newline in an SSE id or a
header value.  ``RemoteProtocolError`` means the *peer* violated the protocol; it carries the
HTTP answer to give (``status_hint`` and ``headers``).  The layout follows h11's
``error_status_hint`` and wsproto's ``event_hint``; their exceptions are translated at the
core's boundary with ``raise ... from``, so callers see these types.  (A WebSocket peer's
violation is not raised at all: the core closes with the right code and reports ``Closed``.)
"""

from __future__ import annotations

__all__ = [
    "EventTooLargeError",
    "InvalidEventError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class ProtocolError(Exception):
    """Base class of every error the core raises on purpose."""


class LocalProtocolError(ProtocolError):
    """The caller misused the core (a programming error, not the peer's fault)."""


class InvalidEventError(LocalProtocolError, ValueError):
    """An SSE field would break the stream's framing (CR, LF or NUL where none may be)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol.

    Attributes:
        status_hint: the HTTP status to answer with, while no response has started.
        headers: extra response headers the answer must carry (e.g. ``Sec-WebSocket-Version``).
    """

    def __init__(
        self,
        message: str,
        *,
        status_hint: int = 400,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.headers = headers


class EventTooLargeError(RemoteProtocolError):
    """An incoming SSE line, or one event's data, is larger than the parser's byte limit.

    Raised by :class:`~rawstream.core.sse_parser.EventStreamParser` so that a peer streaming
    one endless line (or an endless event) cannot make the client buffer without bound.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message, status_hint=413)
        self.limit = limit
