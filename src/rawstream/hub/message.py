"""What flows through a hub: published messages, encoded once for every subscriber.

A :class:`Message` is created once per publish.  Its SSE bytes and its WebSocket envelope
(and that envelope's frame) are computed on first use and cached on the message, so a publish
to ten thousand subscribers encodes once, and every subscriber's outbox holds the same bytes
object.

Ids are opaque strings to clients.  Inside the hub an id maps to a :data:`Position`, a pair of
integers that orders a channel's messages: the in-memory hub uses ``(sequence, 0)``, the Redis
hub the two halves of a stream id (``milliseconds-sequence``).
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass

from ..core.http import chunk_frame
from ..core.sse import Event
from ..core.websocket import encode_message_frame

__all__ = [
    "CHANNEL_NAME",
    "HistoryLimits",
    "Message",
    "Position",
    "Reset",
    "check_channel",
    "check_event_type",
]

#: A channel's name: what a URL's ``channel=`` may carry.  ``=`` and ``,`` are kept out so a
#: multi-channel cursor (``a=ID,b=ID``) can be parsed back without escaping.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.:@/-]{1,200}")

Position = tuple[int, int]


def check_channel(name: str) -> str:
    """Return ``name`` if it is a valid channel name, else raise ``ValueError``."""
    if not CHANNEL_NAME.fullmatch(name):
        raise ValueError(f"invalid channel name {name!r}: 1 to 200 of A-Z a-z 0-9 _ . : @ / -")
    return name


def check_event_type(event: str | None) -> None:
    """Check that ``event`` can be an SSE event type (None: a plain message).

    Raises:
        InvalidEventError: (a ``ValueError``) it holds CR, LF or NUL.
    """
    if event is not None:
        Event(event=event)


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """How much of each channel's past is kept for replay (whichever limit bites first).

    Args:
        max_messages: messages kept per channel.
        max_bytes: payload bytes kept per channel.
        max_age: seconds a message is kept (None: no age limit).
    """

    max_messages: int = 1000
    max_bytes: int = 1024 * 1024
    max_age: float | None = None

    def __post_init__(self) -> None:
        if self.max_messages < 1 or self.max_bytes < 1:
            raise ValueError("history limits must allow at least one message")
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError("max_age must be positive")


class Message:
    """One published message of a channel.

    Attributes:
        channel: the channel it was published to.
        id: its id, as clients see it (``Last-Event-ID``).
        position: its place in the channel (ordering inside the hub).
        data: the payload, text or bytes.
        event: the event type (SSE ``event:``; the WebSocket envelope's ``event``).
        published_at: wall-clock time of the publish (for the age limit).
    """

    __slots__ = (
        "_sse",
        "_sse_body",
        "_sse_chunk",
        "_ws_frame",
        "_ws_text",
        "channel",
        "data",
        "event",
        "id",
        "position",
        "published_at",
        "size",
    )

    def __init__(
        self,
        channel: str,
        id: str,
        position: Position,
        data: str | bytes,
        event: str | None = None,
        published_at: float | None = None,
    ) -> None:
        check_event_type(event)  # now, not when the first subscriber encodes it
        self.channel = channel
        self.id = id
        self.position = position
        self.data = data
        self.event = event
        self.published_at = time.time() if published_at is None else published_at
        self.size = len(data) + len(event or "") + 64  # what it costs to keep (roughly)
        self._sse: bytes | None = None
        self._sse_body: bytes | None = None
        self._sse_chunk: bytes | None = None
        self._ws_text: str | None = None
        self._ws_frame: bytes | None = None

    def __repr__(self) -> str:
        return f"Message({self.channel!r}, id={self.id!r}, event={self.event!r})"

    @property
    def text(self) -> str:
        """The payload as text: a ``str`` as is, ``bytes`` base64-encoded (SSE is text)."""
        if isinstance(self.data, str):
            return self.data
        return base64.b64encode(self.data).decode()

    @property
    def sse(self) -> bytes:
        """The SSE event, ``id:`` included: the bytes every single-channel stream writes."""
        if self._sse is None:
            self._sse = Event(self.text, event=self.event, id=self.id).encode()
        return self._sse

    @property
    def sse_chunk(self) -> bytes:
        """:attr:`sse` framed as one HTTP/1.1 chunk: what every plain chunked stream writes."""
        if self._sse_chunk is None:
            self._sse_chunk = chunk_frame(self.sse)
        return self._sse_chunk

    @property
    def sse_body(self) -> bytes:
        """The SSE event without its ``id:`` line, for streams that write their own id (a
        multi-channel stream's cursor)."""
        if self._sse_body is None:
            self._sse_body = Event(self.text, event=self.event).encode()
        return self._sse_body

    @property
    def ws_text(self) -> str:
        """The WebSocket envelope: ``{"type":"message","channel","id","event","data"}``
        (``data_b64`` instead of ``data`` for a bytes payload)."""
        if self._ws_text is None:
            envelope: dict[str, str | None] = {
                "type": "message",
                "channel": self.channel,
                "id": self.id,
                "event": self.event,
            }
            if isinstance(self.data, str):
                envelope["data"] = self.data
            else:
                envelope["data_b64"] = self.text
            self._ws_text = json.dumps(envelope, separators=(",", ":"))
        return self._ws_text

    @property
    def ws_message(self) -> str:
        """:attr:`ws_text`: what a WebSocket subscriber is sent (the broadcast protocol)."""
        return self.ws_text

    @property
    def ws_frame(self) -> bytes:
        """:attr:`ws_text` framed once, for every WebSocket without compression."""
        if self._ws_frame is None:
            self._ws_frame = encode_message_frame(self.ws_text)
        return self._ws_frame


@dataclass(frozen=True, slots=True)
class Reset:
    """The subscription could not resume where asked: what came before is lost to it.

    The client should drop what it derived from the channel and start over (reload the
    state, or accept the gap).  The subscription goes on with the oldest message still held.

    Attributes:
        channel: the channel concerned.
        reason: ``expired`` (older than the kept history), ``unknown`` (not an id of this
            channel: another server's, or one from before a restart), or ``malformed``.
        cursor: where the subscription now stands (send it as the new ``Last-Event-ID``).
    """

    channel: str
    reason: str
    cursor: str

    @property
    def sse(self) -> bytes:
        """The ``reset`` SSE event (its ``id`` moves the client's Last-Event-ID forward)."""
        data = json.dumps({"channel": self.channel, "reason": self.reason})
        return Event(data, event="reset", id=self.cursor).encode()

    @property
    def ws_text(self) -> str:
        """The ``{"type":"reset",...}`` WebSocket envelope."""
        return json.dumps(
            {"type": "reset", "channel": self.channel, "reason": self.reason, "id": self.cursor},
            separators=(",", ":"),
        )
