"""Parsing an event stream, incrementally (WHATWG HTML, 9.2.6 "Interpreting an event stream").

Bytes in, :class:`ServerSentEvent` out; the client layer (:mod:`rawstream.client`) feeds the
response body in as it arrives.  The rules, in the spec's order:

* The stream is UTF-8, decoded with replacement characters for invalid bytes; one leading BOM
  is dropped.
* Lines end with CRLF, LF or CR (a CR at the end of one chunk and the LF starting the next are
  one line end).  An empty line dispatches the event being built.  A line starting with ``:``
  is a comment.  Otherwise the field name runs up to the first ``:`` (the whole line if there
  is none) and the value follows, with one leading space removed.
* ``data`` appends the value and an LF to the data buffer; ``event`` sets the event type;
  ``id`` sets the last event id buffer unless the value contains NUL; ``retry`` sets the
  reconnection time if the value is all ASCII digits; other fields are ignored.
* Dispatch (an empty line) first records the last event id buffer as the stream's last event
  id.  An empty data buffer then dispatches nothing and resets the event type; otherwise the
  trailing LF is removed and the event goes out with type ``message`` unless one was given.
* At the end of the stream, a half-received event is discarded, never dispatched.

The lines are split and examined as bytes and only the values are decoded, one line (or one
event's data) at a time.  That is the same as decoding the whole stream first: CR, LF and
``:`` are ASCII bytes, which never occur inside a UTF-8 sequence and end any invalid one, so
the decoder's output for a line does not depend on what surrounds it.  Working on bytes keeps
the limit exact (``max_event_bytes`` counts bytes on the wire) and does the splitting with
``bytes.split`` rather than a per-character loop: token streams bring many small events.

One deliberate departure: the spec starts each stream's last event id buffer empty, so after a
reconnection the first blank line would reset the id to resume from unless the server repeats
an ``id``.  Here a new stream's buffer starts at the id the previous one left
(``EventStreamParser(last_event_id=...)``): events without an ``id`` keep reporting the id the
client resumed from, and a second reconnection resumes from there too.  A server that wants
to reset it sends an empty ``id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import EventTooLargeError, LocalProtocolError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EventStreamParser", "ServerSentEvent"]

#: Default bound on one line, and on one event's data, in bytes.
DEFAULT_MAX_EVENT_BYTES = 1 << 20

_BOM = b"\xef\xbb\xbf"
_LF = 0x0A
_CR = 0x0D
_COLON = 0x3A


#: ``retry`` values with more digits than this saturate (no reconnection waits 30 million years).
_MAX_RETRY_DIGITS = 18


def _milliseconds(digits: bytes) -> int:
    """A ``retry`` value: ASCII digits as an int, saturating instead of growing without bound."""
    digits = digits.lstrip(b"0")
    return int(digits or b"0") if len(digits) <= _MAX_RETRY_DIGITS else 10**_MAX_RETRY_DIGITS


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSentEvent:
    """One dispatched event, as a browser's ``MessageEvent`` would carry it.

    Attributes:
        event: the event type; ``"message"`` when the stream gave none (or an empty one).
        data: the data lines joined with LF.
        id: the stream's last event id when this event was dispatched (``""`` if none yet);
            an event without an ``id`` field carries the previous one, as ``lastEventId``
            does in a browser.
        retry: the reconnection time (milliseconds) set by a ``retry`` field in this event's
            own block, else ``None``.  The stream-wide value is
            :attr:`EventStreamParser.retry`.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        """The data parsed as JSON (raises :class:`json.JSONDecodeError` if it is not)."""
        return json.loads(self.data)


class EventStreamParser:
    """Incremental parser of one ``text/event-stream`` body, sans-IO.

    Call :meth:`feed` with each chunk of the body as it arrives, in order, and
    :meth:`feed_eof` when the stream ends.  The parser can then parse the next stream (a
    reconnection): the last event id and the reconnection time carry over.

    Args:
        last_event_id: the last event id to start from (the one a reconnecting client sent
            as ``Last-Event-ID``).
        max_event_bytes: the largest line, and the largest data of one event, in bytes.

    Attributes:
        last_event_id: the stream's last event id, updated when an event block ends (so an
            ``id`` line in a block cut off by the end of the stream does not count).
        retry: the latest reconnection time the stream asked for, in milliseconds, or
            ``None`` if it never did.
    """

    def __init__(
        self, *, last_event_id: str = "", max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> None:
        if max_event_bytes < 1:
            raise LocalProtocolError("max_event_bytes must be positive")
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self.max_event_bytes = max_event_bytes
        self._failed = False
        self._start_stream()

    def _start_stream(self) -> None:
        self._at_start = True  # a leading BOM may still come
        self._head = b""  # the first bytes, held until we know whether they are a BOM
        self._skip_lf = False  # the last chunk ended with CR: an LF next is the same line end
        self._partial: list[bytes] = []  # the current line, not yet ended
        self._partial_len = 0
        self._clear_block()
        self._id = self.last_event_id

    def _clear_block(self) -> None:
        self._data: list[bytes] = []
        self._data_len = 0
        self._type = b""
        self._block_retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse the next chunk of the stream; return the events it completed, in order.

        Raises:
            EventTooLargeError: a line or an event's data exceeds ``max_event_bytes``.  The
                parser is then unusable (a later call raises :class:`LocalProtocolError`).
        """
        if self._failed:
            raise LocalProtocolError("this parser already failed on an oversized event")
        if self._at_start:
            data = self._head + data
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._head = data
                return []
            self._at_start = False
            self._head = b""
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
        if not data:
            return []
        if b"\r" in data:
            self._skip_lf = data[-1] == _CR
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._hold(data)
            return []
        lines = data.split(b"\n")
        rest = lines.pop()
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial.clear()
            self._partial_len = 0
        events: list[ServerSentEvent] = []
        limit = self.max_event_bytes
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif line[0] != _COLON:
                if len(line) > limit:
                    self._fail(f"an SSE line is longer than {limit} bytes")
                self._field(line)
        if rest:
            self._hold(rest)
        return events

    def feed_eof(self) -> None:
        """The stream ended: discard any half-received event, and get ready for a new stream.

        The last event id and the reconnection time are kept.
        """
        self._start_stream()

    def _hold(self, fragment: bytes) -> None:
        self._partial_len += len(fragment)
        if self._partial_len > self.max_event_bytes:
            self._fail(f"an SSE line is longer than {self.max_event_bytes} bytes")
        self._partial.append(fragment)

    def _fail(self, message: str) -> None:
        self._failed = True
        self._partial.clear()
        self._clear_block()
        raise EventTooLargeError(message, limit=self.max_event_bytes)

    def _field(self, line: bytes) -> None:
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data_len += len(value) + 1
            if self._data_len > self.max_event_bytes + 1:  # the +1: the LF removed at dispatch
                self._fail(f"an SSE event's data is larger than {self.max_event_bytes} bytes")
            self._data.append(value)
        elif name == b"event":
            self._type = value
        elif name == b"id":
            if b"\x00" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():  # ASCII digits only; False when empty
            self._block_retry = self.retry = _milliseconds(value)

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id
        retry = self._block_retry
        if not self._data:
            self._clear_block()
            return None
        event = ServerSentEvent(
            event=self._type.decode("utf-8", "replace") if self._type else "message",
            data=b"\n".join(self._data).decode("utf-8", "replace"),
            id=self._id,
            retry=retry,
        )
        self._clear_block()
        return event
