"""The client's errors: one base class, and what went wrong at which layer.

``SSEConnectionError`` (the network, TLS or malformed HTTP) is what :class:`EventSource`
recovers from by reconnecting; ``SSEResponseError`` (the server answered, but not with an
event stream) and ``SSEEventTooLargeError`` are final.  The core's and h11's exceptions are
translated here with ``raise ... from``, so callers catch these types only.
"""

from __future__ import annotations

from ..core.errors import EventTooLargeError

__all__ = [
    "SSEClientError",
    "SSEConnectionError",
    "SSEEventTooLargeError",
    "SSEResponseError",
    "SSEResponseTooLargeError",
]


def first_header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive) among lower-cased ``headers``.
    (Here, not in ``http``, which imports this module: every response type uses it.)"""
    name = name.lower()
    return next((value for key, value in headers if key == name), None)


class SSEClientError(Exception):
    """Base class of every error the SSE client raises."""


class SSEConnectionError(SSEClientError):
    """Connecting failed, the connection broke, or the server's HTTP was malformed.

    An :class:`~rawstream.client.EventSource` reconnects after this; :func:`connect_sse`
    raises it.
    """


class SSEResponseError(SSEClientError):
    """The server answered, but not with an event stream: a status other than 2xx, a
    ``Content-Type`` other than ``text/event-stream``, or a ``Content-Encoding`` that was not
    asked for.  Never retried.

    Attributes:
        status: the HTTP status code.
        headers: the response headers, names lower-cased, in order.
        body: the start of the response body (at most ``MAX_ERROR_BODY_BYTES``).
    """

    def __init__(
        self, message: str, *, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        return first_header(self.headers, name)


class SSEEventTooLargeError(SSEClientError, EventTooLargeError):
    """A line or an event's data was larger than ``max_event_bytes``.  Never retried.

    Both an :class:`SSEClientError` and the core's
    :class:`~rawstream.core.errors.EventTooLargeError` (its ``limit`` attribute included).
    """


class SSEResponseTooLargeError(SSEClientError):
    """A whole response read by :func:`~rawstream.client.http.fetch` was larger than its
    limit (``limit``, in bytes).  Never retried."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit
