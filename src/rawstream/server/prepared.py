"""A message framed once for all its recipients: what the fan-out fast path takes.

A broadcast to thousands of streams is fast when the bytes are made once and every recipient
queues the same object (the outbox's ``put_shared``), instead of each framing its own copy.
That is only correct when the shared bytes are exactly what each recipient would have framed,
so the fast path takes a whole message whose encodings were made together (:class:`Prepared`,
or the hub's :class:`~rawstream.hub.Message`), never loose bytes from a caller.
"""

from __future__ import annotations

from typing import Protocol

from ..core.httpevents import chunk_frame
from ..core.sse import Event
from ..core.websocket import encode_message_frame

__all__ = ["Framed", "Prepared"]


class Framed(Protocol):
    """A message with its encodings, each made once (on first use)."""

    @property
    def sse(self) -> bytes:
        """The encoded SSE event."""
        ...

    @property
    def sse_chunk(self) -> bytes:
        """:attr:`sse` framed as one HTTP/1.1 chunk."""
        ...

    @property
    def ws_message(self) -> str | bytes:
        """The WebSocket message: ``str`` for a text message, ``bytes`` for binary."""
        ...

    @property
    def ws_frame(self) -> bytes:
        """:attr:`ws_message` framed as one uncompressed WebSocket frame."""
        ...


class Prepared:
    """A message to broadcast, each encoding made once however many recipients take it.

    ``str``: a text message (an SSE event with that ``data``, a WebSocket text message);
    ``bytes``: a binary WebSocket message (SSE carries only text, so no SSE encoding);
    :class:`~rawstream.Event`: an SSE event (no WebSocket encoding).  Prepare a message once
    when it goes out in several :func:`~rawstream.broadcast` calls (to rooms in turn).
    """

    __slots__ = ("_message", "_sse", "_sse_chunk", "_ws_frame")

    def __init__(self, message: str | bytes | Event) -> None:
        if not isinstance(message, (str, bytes, Event)):
            raise TypeError(f"a broadcast is str, bytes or Event, not {type(message).__name__}")
        self._message = message
        self._sse: bytes | None = None
        self._sse_chunk: bytes | None = None
        self._ws_frame: bytes | None = None

    def __repr__(self) -> str:
        return f"Prepared({self._message!r})"

    @property
    def message(self) -> str | bytes | Event:
        """What was prepared."""
        return self._message

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            message = self._message
            if isinstance(message, bytes):
                raise TypeError("SSE carries text: send bytes to WebSocket recipients only")
            event = message if isinstance(message, Event) else Event(message)
            self._sse = event.encode()
        return self._sse

    @property
    def sse_chunk(self) -> bytes:
        if self._sse_chunk is None:
            self._sse_chunk = chunk_frame(self.sse)
        return self._sse_chunk

    @property
    def ws_message(self) -> str | bytes:
        message = self._message
        if isinstance(message, Event):
            raise TypeError("an Event is an SSE event: send str or bytes to WebSockets")
        return message

    @property
    def ws_frame(self) -> bytes:
        if self._ws_frame is None:
            self._ws_frame = encode_message_frame(self.ws_message)
        return self._ws_frame
