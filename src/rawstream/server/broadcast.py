"""What the fan-out fast path takes: a message framed once for all its recipients.

A broadcast to thousands of streams is fast when the bytes are made once and every recipient
queues the same object (the outbox's ``put_shared``), instead of each framing its own copy.
That is only correct when the shared bytes are exactly what each recipient would have framed,
so the fast path takes a whole message whose encodings were made together (the hub's
:class:`~rawstream.hub.Message` is one), never loose bytes from a caller.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Broadcast"]


class Broadcast(Protocol):
    """A message with its encodings, each made once."""

    @property
    def sse(self) -> bytes:
        """The encoded SSE event."""
        ...

    @property
    def sse_chunk(self) -> bytes:
        """:attr:`sse` framed as one HTTP/1.1 chunk."""
        ...

    @property
    def ws_text(self) -> str:
        """The WebSocket message's text."""
        ...

    @property
    def ws_frame(self) -> bytes:
        """:attr:`ws_text` framed as one uncompressed WebSocket frame."""
        ...
