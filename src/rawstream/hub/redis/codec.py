"""The Redis hub's codec: its keys, stream ids as hub positions, stream entries as messages.

Pure translation between what the hub handles (channel names, :data:`Position` pairs,
:class:`~rawstream.hub.message.Message`) and what Redis stores (keys, ``ms-seq`` stream ids,
entries of ``data``/``kind``/``event`` fields, ``XINFO STREAM`` replies).  Nothing here talks
to Redis; the modules that do read and write through these functions, so the stored format is
written down in one place.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

from coredis.response.types import StreamEntry, StreamInfo

from ..broker import HistoryLost
from ..message import Message, Position

__all__ = [
    "MAX_ID_PART",
    "NO_STREAM",
    "Keys",
    "StreamState",
    "before",
    "decode_entry",
    "encode_entry",
    "parse_client_id",
    "parse_stream_id",
    "stream_id",
    "stream_state",
    "text",
]

log = logging.getLogger("rawstream.hub")

#: A stream id, strictly: two unsigned 64-bit decimal numbers.
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
MAX_ID_PART = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one hub, every one under ``prefix``."""

    prefix: str

    def stream(self, channel: str) -> str:
        """The stream holding ``channel``'s messages."""
        return f"{self.prefix}channel:{channel}"

    def members(self, channel: str) -> str:
        """The hash of ``channel``'s member counts, one field per hub instance."""
        return f"{self.prefix}members:{channel}"

    def instance(self, instance: str) -> str:
        """The heartbeat of hub instance ``instance`` (it expires when the instance dies)."""
        return f"{self.prefix}instance:{instance}"


# -- ids --------------------------------------------------------------------------------------


def stream_id(position: Position) -> str:
    """The stream id of ``position``: ``ms-seq`` (also the id clients see)."""
    return f"{position[0]}-{position[1]}"


def parse_client_id(id: str, *, head: Position, resume_from: Position) -> Position:
    """The position of a client's id, checked against a channel whose last position is
    ``head`` and whose oldest held message follows ``resume_from``.

    Raises:
        HistoryLost: ``malformed`` (not ``ms-seq``), ``unknown`` (later than ``head``),
            ``expired`` (before ``resume_from``: trimmed entries followed it); its
            ``resume_from`` is the one given.
    """
    match = _STREAM_ID.fullmatch(id)
    if match is None:
        raise HistoryLost("malformed", resume_from)
    position = (int(match[1]), int(match[2]))
    if max(position) > MAX_ID_PART:
        raise HistoryLost("malformed", resume_from)
    if position > head:
        raise HistoryLost("unknown", resume_from)
    if position < resume_from:
        raise HistoryLost("expired", resume_from)
    return position


def parse_stream_id(value: str | bytes) -> Position:
    """A stream id as Redis writes it (the hub's own input: a bad one is a bug)."""
    ms, _, seq = text(value).partition("-")
    return (int(ms), int(seq or 0))


def before(position: Position) -> Position:
    """The position just before ``position`` (stream ids are pairs of 64-bit numbers)."""
    ms, seq = position
    if seq:
        return (ms, seq - 1)
    return (ms - 1, MAX_ID_PART) if ms else (0, 0)


# -- entries ----------------------------------------------------------------------------------


def encode_entry(data: str | bytes, event: str | None) -> dict[bytes, bytes]:
    """The fields of the stream entry a publish adds: ``data`` as bytes, ``kind`` (``str``
    or ``bytes``: what the publisher gave, so subscribers get the same type back) and, when
    set, ``event``."""
    if isinstance(data, str):
        fields = {b"data": data.encode("utf-8", "surrogatepass"), b"kind": b"str"}
    else:
        fields = {b"data": bytes(data), b"kind": b"bytes"}
    if event is not None:
        fields[b"event"] = event.encode("utf-8", "surrogatepass")
    return fields


def decode_entry(channel: str, entry: StreamEntry) -> Message:
    """The message a stream entry of ``channel`` holds.  An entry written by someone else is
    read leniently: without ``kind``, its data is text if it is UTF-8; an event type that
    would break SSE framing is dropped (with a warning)."""
    position = parse_stream_id(entry.identifier)
    fields = {_bytes(name): _bytes(value) for name, value in entry.field_values.items()}
    payload = fields.get(b"data", b"")
    data: str | bytes = payload
    if fields.get(b"kind") != b"bytes":
        with contextlib.suppress(UnicodeDecodeError):
            data = payload.decode("utf-8", "surrogatepass")
    raw_event = fields.get(b"event")
    event = None if raw_event is None else raw_event.decode("utf-8", "surrogatepass")
    message_id = stream_id(position)
    published_at = position[0] / 1000  # the id's milliseconds: Redis's clock
    try:
        return Message(channel, message_id, position, data, event, published_at)
    except ValueError:  # an event type that would break SSE framing: not ours, dropped
        log.warning("channel %r, entry %s: invalid event type dropped", channel, message_id)
        return Message(channel, message_id, position, data, None, published_at)


# -- what a stream holds ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamState:
    """What ``XINFO STREAM`` says about a channel's stream.

    Attributes:
        last: the last id Redis generated (``0-0``: no stream yet).
        held_after: every entry after this position is still in the stream (what trimming
            removed is at or before it).
    """

    last: Position
    held_after: Position


#: The state of a stream that does not exist (yet, or any more).
NO_STREAM = StreamState((0, 0), (0, 0))


def stream_state(info: StreamInfo) -> StreamState:
    """An ``XINFO STREAM`` reply reduced to what replay needs.

    Redis 7.0 does not report which ids trimming removed (its ``max-deleted-entry-id``
    counts ``XDEL`` only), so this goes by the oldest entry still held: everything after
    the position just before it is intact.  (An id that was exactly the last one trimmed
    thus counts as expired too, although nothing after it was lost: a needless reset, never
    a silent gap.)
    """
    last = parse_stream_id(info["last-generated-id"])
    first = info["first-entry"]
    added = info.get("entries-added")
    if first is None:  # empty: all that was added is gone
        held_after = last if added else (0, 0)
    elif added is not None and added <= info["length"]:
        held_after = (0, 0)  # nothing was ever trimmed
    else:
        held_after = before(parse_stream_id(first.identifier))
    return StreamState(last, held_after)


# -- bytes and text ---------------------------------------------------------------------------


def text(value: str | bytes) -> str:
    """A key, field or id Redis returned (bytes: the hub's clients do not decode), as text."""
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
