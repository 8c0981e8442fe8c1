"""One error family for the sans-IO core, with two sides.

``LocalProtocolError`` means *we* (the application or the server layer) asked the core to do
something the protocol forbids: send a body before a response, put a newline in an SSE id.
``RemoteProtocolError`` means the *peer* violated the protocol; it carries the answer to give:
an HTTP status (``status_hint``) before a response has started, or a WebSocket close code
(``close_code``) once a WebSocket is open.  The layout follows h11's ``error_status_hint`` and
wsproto's ``event_hint``; library exceptions are translated at the core's boundary with
``raise ... from`` so callers only ever see these types.
"""

from __future__ import annotations

__all__ = ["InvalidEventError", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


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
        close_code: the WebSocket close code to send, once a WebSocket is open.
        headers: extra response headers the answer must carry (e.g. ``Sec-WebSocket-Version``).
    """

    def __init__(
        self,
        message: str,
        *,
        status_hint: int = 400,
        close_code: int = 1002,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.close_code = close_code
        self.headers = headers
