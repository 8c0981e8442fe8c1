"""A channel's recent messages in order, bounded by count, bytes and age (no trio, no I/O).

The in-memory hub keeps a channel's whole history in one :class:`Window`; the Redis hub keeps
the recent part of a Redis stream in one, so most resumes and every live delivery are served
from memory.  ``base`` is the position just before the first message held: every message
after ``base`` up to ``head`` is in the window, so "what comes after position P" is answered
from the window whenever ``base <= P <= head``.
"""

from __future__ import annotations

from bisect import bisect_right

from .message import HistoryLimits, Message, Position

__all__ = ["Window"]


class Window:
    """Messages after ``base``, oldest first; appending trims the oldest past the limits."""

    def __init__(self, limits: HistoryLimits, base: Position = (0, 0)) -> None:
        self.limits = limits
        self.base = base  # the last position no longer (or never) held
        self.head = base  # the last position appended
        self._items: list[Message] = []
        self._start = 0  # _items[:_start] are trimmed (compacted away now and then)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items) - self._start

    def append(self, message: Message, now: float) -> None:
        """Add the channel's next message (positions must increase), then trim."""
        if message.position <= self.head:
            raise ValueError(f"position {message.position} is not after {self.head}")
        self._items.append(message)
        self._bytes += message.size
        self.head = message.position
        self.trim(now)

    def trim(self, now: float) -> None:
        """Drop the oldest messages beyond the count and byte limits, or older than max_age
        (``now`` is wall-clock time, as ``Message.published_at``).  The newest is kept even
        if it alone exceeds the byte limit (not past max_age)."""
        limits = self.limits
        while len(self) > 1 and (len(self) > limits.max_messages or self._bytes > limits.max_bytes):
            self._drop_oldest()
        if limits.max_age is not None:
            oldest_allowed = now - limits.max_age
            while len(self) and self._items[self._start].published_at < oldest_allowed:
                self._drop_oldest()
        if self._start > 64 and self._start * 2 > len(self._items):
            del self._items[: self._start]
            self._start = 0

    def _drop_oldest(self) -> None:
        oldest = self._items[self._start]
        self._start += 1
        self._bytes -= oldest.size
        self.base = oldest.position

    def covers(self, position: Position) -> bool:
        """Whether everything after ``position`` (up to the head) is held here."""
        return self.base <= position <= self.head

    def after(self, position: Position, limit: int) -> list[Message]:
        """Up to ``limit`` messages after ``position`` (which :meth:`covers` must accept)."""
        index = bisect_right(self._items, position, lo=self._start, key=_position)
        return self._items[index : index + limit]

    def first(self) -> Message | None:
        """The oldest message held."""
        return self._items[self._start] if len(self) else None


def _position(message: Message) -> Position:
    return message.position
