"""Server-Sent Events encoding (WHATWG HTML, "Server-sent events", section 9.2.5-9.2.6).

An event is a block of ``field: value`` lines ended by a blank line.  The parser on the other
side splits lines on CR, LF or CRLF, so a ``data`` value containing any of them is split into
several ``data:`` lines (the client joins them back with LF).  ``id`` and ``event`` values are
single lines: a CR or LF inside them would let a value inject fields or whole events into the
stream, and the spec makes a client ignore an ``id`` containing NUL, so all three are refused
with :class:`InvalidEventError` when the event is built, not when it is half written.

Events are encoded to bytes once (:meth:`Event.encode`); the server writes those bytes, so
one encoded event can be shared by every subscriber of a channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidEventError

__all__ = ["SSE_HEADERS", "Event", "encode_comment", "encode_retry"]

#: Response headers of every SSE stream.  ``no-cache`` keeps caches from replaying a stream;
#: ``X-Accel-Buffering: no`` asks nginx-style proxies not to buffer it.
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FORBIDDEN_IN_FIELD = re.compile(r"[\r\n\x00]")


def _lines(value: str) -> list[str]:
    if "\n" not in value and "\r" not in value:
        return [value]
    return _LINE_BREAK.split(value)


def _field_lines(name: str, value: str) -> str:
    prefix = name + ": "
    return "".join(prefix + line + "\n" for line in _lines(value))


def encode_comment(text: str = "") -> bytes:
    """Encode a comment block (``: text``), used for keepalives; clients ignore it."""
    return ("".join(": " + line + "\n" for line in _lines(text)) + "\n").encode()


def encode_retry(milliseconds: int) -> bytes:
    """Encode a bare ``retry:`` hint: how long a client waits before reconnecting."""
    return Event(retry=milliseconds).encode()


@dataclass(frozen=True, slots=True)
class Event:
    """One Server-Sent Event.

    Args:
        data: the payload; multi-line text becomes several ``data:`` lines.  ``None`` sends no
            data field (a client dispatches nothing, but still records ``id`` and ``retry``).
        event: the event type (``addEventListener(type)`` in a browser); default ``message``.
        id: the event id a client sends back as ``Last-Event-ID`` when it reconnects.
        retry: reconnection delay hint, in milliseconds.
        comment: a comment line, ignored by clients.

    Raises:
        InvalidEventError: ``id`` or ``event`` contains CR, LF or NUL, or ``retry`` is negative.
    """

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        for name in ("id", "event"):
            value = getattr(self, name)
            if value is not None and _FORBIDDEN_IN_FIELD.search(value):
                raise InvalidEventError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")
        if self.retry is not None and (not isinstance(self.retry, int) or self.retry < 0):
            raise InvalidEventError(f"SSE retry must be a non-negative int, got {self.retry!r}")

    def encode(self) -> bytes:
        """The event as UTF-8 bytes, ending with the blank line that dispatches it."""
        parts: list[str] = []
        if self.comment is not None:
            parts.append("".join(": " + line + "\n" for line in _lines(self.comment)))
        if self.event is not None:
            parts.append("event: " + self.event + "\n")
        if self.id is not None:
            parts.append("id: " + self.id + "\n")
        if self.retry is not None:
            parts.append(f"retry: {self.retry}\n")
        if self.data is not None:
            parts.append(_field_lines("data", self.data))
        parts.append("\n")
        return "".join(parts).encode()
