"""Room presence: the member count per room that :class:`~rawstream.hub.rooms.Rooms` needs.

Counting members is not part of publish/subscribe, so it is not part of
:class:`~rawstream.hub.broker.Broker`: a broker that can count says so by implementing
:class:`MemberCounter` too.  Both hubs do: the in-memory :class:`~rawstream.hub.memory.Hub`
counts this process's members, :class:`~rawstream.hub.redis.RedisHub` every process's.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["MemberCounter"]


@runtime_checkable
class MemberCounter(Protocol):
    """Something that keeps a member count per channel (a room)."""

    async def count_member(self, channel: str, delta: int) -> int:
        """Add ``delta`` to the member count of ``channel``; return the new count (never
        below zero).

        Raises:
            BrokerUnavailable: the count cannot be reached (a shared backend is down).
        """
        ...
