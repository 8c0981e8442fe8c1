"""One message to many streams: :func:`broadcast`, the public fan-out.

Fan-out is where a streaming server wins or loses: a message for a thousand recipients should
cost one encoding and a thousand queue appends, not a thousand encodings and a thousand
awaits.  :func:`broadcast` frames the message once (:class:`~rawstream.server.prepared.Prepared`)
and hands the same bytes to every recipient's outbox; each recipient's writer sends them with
whatever else it has queued, in one write.  The publisher never waits: a recipient that cannot
take the message is dealt with by its slow-consumer policy, or reported back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import trio

from ..core.sse import Event
from .prepared import Framed, Prepared
from .sse import SSEStream
from .websocket import WebSocket, WebSocketClosed

__all__ = ["Delivery", "broadcast", "offer"]

Recipient = WebSocket | SSEStream


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one :func:`broadcast` did.

    Attributes:
        queued: recipients that took the message (it is in their outbox).
        full: recipients whose policy is ``BLOCK`` and whose outbox was full: they were not
            sent the message (a broadcast cannot wait).  Wait for one with ``await
            recipient.send(...)``, close it, or let it catch up from your own history.
        closed: recipients already closed, or closed now as too slow (``DISCONNECT``: an SSE
            stream ends with a ``retry:`` hint, a WebSocket with 1013).
    """

    queued: int
    full: tuple[Recipient, ...]
    closed: int


def broadcast(recipients: Iterable[Recipient], message: str | bytes | Event | Framed) -> Delivery:
    """Queue ``message`` to every recipient without waiting, framed once for all of them.

    ``message``: ``str`` is a text message for both (an SSE event with that ``data``);
    ``bytes`` a binary WebSocket message; an :class:`~rawstream.Event` an SSE event with its
    ``id``, ``event`` and ``retry``; or a :class:`~rawstream.Prepared` (one message for several
    broadcasts).  A WebSocket that negotiated permessage-deflate compresses the message itself;
    every other recipient queues the shared bytes.

    When a recipient's outbox is full its slow-consumer policy decides: ``DROP_OLDEST`` drops
    its queued messages for a gap marker and queues this one, ``DISCONNECT`` closes it (counted
    in :attr:`Delivery.closed`), ``BLOCK`` leaves it out (:attr:`Delivery.full`).

    Raises (before any recipient is sent anything):
        TypeError: bytes for an SSE stream, an ``Event`` for a WebSocket, or another type.
        RuntimeError: a WebSocket not yet accepted.
    """
    if isinstance(message, (str, bytes, Event, bytearray, memoryview)):
        framed: Framed = Prepared(message)  # (it refuses bytearray and memoryview)
    else:
        framed = message
    recipients = list(recipients)
    # Refused before anyone is sent anything; each encoding made here, once per kind.
    kinds = set(map(type, recipients))
    if any(issubclass(kind, SSEStream) for kind in kinds):
        framed.sse_chunk  # noqa: B018 (TypeError for bytes)
    if any(not issubclass(kind, SSEStream) for kind in kinds):
        framed.ws_frame  # noqa: B018 (TypeError for an Event)
        if not all(r.accepted for r in recipients if not isinstance(r, SSEStream)):
            raise RuntimeError("broadcast needs accepted WebSockets")
    queued = closed = 0
    full: list[Recipient] = []
    for recipient in recipients:
        try:
            if offer(recipient, framed):
                queued += 1
            else:
                full.append(recipient)
        except trio.BrokenResourceError:
            closed += 1
    return Delivery(queued, tuple(full), closed)


def offer(recipient: Recipient, message: Framed) -> bool:
    """:func:`broadcast`'s step for one recipient, for code that meets its recipients one at
    a time (a hub subscription's sink): True if queued, False if the outbox is full under
    ``BLOCK`` (nothing queued; catch up later, at the recipient's pace).

    Raises:
        trio.BrokenResourceError: the recipient is closed, or was just closed as too slow.
    """
    try:
        recipient._send_broadcast_nowait(message)
    except trio.WouldBlock:
        return False
    except (WebSocketClosed, trio.ClosedResourceError) as exc:
        raise trio.BrokenResourceError(str(exc)) from exc
    return True
