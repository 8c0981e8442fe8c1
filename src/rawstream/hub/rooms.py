"""WebSocket rooms over a hub: join, broadcast, leave, a member count, resume after a drop.

A room is a hub channel (``room:NAME``), so a room gets the channel's semantics for free:
history, replay from an id, encode-once fan-out, and, with a Redis hub, members on every worker
and node.  What a member receives, as JSON text messages:

* ``{"type":"welcome","room":R,"members":N,"id":ID}`` once, on joining (``id`` resumes here);
* ``{"type":"message","channel":"room:R","id":ID,"event":E,"data":...}`` for each message,
  the same bytes for every member (framed once when the member's WebSocket is uncompressed);
* ``{"type":"reset",...}`` when the id it resumed from is too old or unknown;
* member-count changes arrive as messages with ``"event":"presence"`` and data
  ``{"members":N}``: they travel through the channel like any message, so every member on
  every worker sees them in order with the chat.

A member that reconnects with ``?last_event_id=ID`` (the last ``id`` it saw) first gets
everything published while it was away, then the live messages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..policy import SlowConsumer
from ..server.fanout import offer
from ..server.websocket import WebSocket, WebSocketClosed
from .broker import Broker, BrokerUnavailable, Subscription
from .message import Message, check_channel
from .presence import MemberCounter

__all__ = ["Member", "Rooms"]

PRESENCE = "presence"


class Member:
    """One WebSocket in one room."""

    def __init__(self, rooms: Rooms, room: str, ws: WebSocket, subscription: Subscription):
        self.rooms = rooms
        self.room = room
        self.ws = ws
        self.subscription = subscription

    async def broadcast(self, data: str | bytes, event: str | None = None) -> str:
        """Publish ``data`` to the room (this member included); return its id."""
        return await self.rooms.hub.publish(self.rooms.channel(self.room), data, event)


class Rooms:
    """Rooms whose messages go through ``hub`` (channel names: ``prefix + room``).

    ``hub`` must count members too (a :class:`~rawstream.hub.presence.MemberCounter`, as
    :class:`~rawstream.hub.memory.Hub` and :class:`~rawstream.hub.redis.RedisHub` are): the
    welcome and the presence messages carry the count.

    Raises:
        TypeError: ``hub`` cannot count members.
    """

    def __init__(self, hub: Broker, *, prefix: str = "room:") -> None:
        if not isinstance(hub, MemberCounter):
            raise TypeError(
                f"Rooms needs a broker that counts members (a MemberCounter, with "
                f"count_member()); {type(hub).__name__} is not one"
            )
        self.hub: Broker = hub
        self._counter: MemberCounter = hub  # the same hub, as what counts members
        self.prefix = prefix

    def channel(self, room: str) -> str:
        """The hub channel of ``room`` (``ValueError`` for an invalid name)."""
        return check_channel(self.prefix + room)

    @asynccontextmanager
    async def join(
        self, ws: WebSocket, room: str, last_event_id: str | None = None
    ) -> AsyncIterator[Member]:
        """Accept ``ws`` (if not yet), join ``room`` for the block's duration, resuming after
        ``last_event_id``.  The member count goes up on entry and down on exit, and both
        changes are broadcast."""
        channel = self.channel(room)
        await ws.accept()

        def sink(message: Message) -> bool:  # (False: BLOCK, full outbox: catch up from history)
            return offer(ws, message)

        hub = self.hub
        async with hub.subscribe(channel, last_event_id, sink=sink) as subscription:
            welcome = {"type": "welcome", "room": room, "id": subscription.cursor()}
            with trio.CancelScope(shield=True):  # counted means announced, and later uncounted
                members = await self._counter.count_member(channel, +1)
                try:
                    # Announced before anything else awaits, so announcements come in the
                    # order of the counts (this member reads it back from the channel).
                    await self._announce(channel, members)
                except BaseException:
                    await self._leave(channel)
                    raise
            try:
                await ws.send(json.dumps({**welcome, "members": members}))
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_forward, ws, subscription, nursery.cancel_scope)
                        yield Member(self, room, ws, subscription)
                        nursery.cancel_scope.cancel()
                except BaseExceptionGroup as group:
                    # The block's own exception (HTTPError, WebSocketClosed, ...) reaches the
                    # handler as itself, not wrapped by the nursery the block runs in.
                    if len(group.exceptions) == 1:
                        raise group.exceptions[0] from None
                    raise
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._leave(channel)

    async def _leave(self, channel: str) -> None:
        try:
            members = await self._counter.count_member(channel, -1)
            await self._announce(channel, members)
        except BrokerUnavailable:
            pass  # the count lives with the broker; it recovers with it

    async def _announce(self, channel: str, members: int) -> None:
        await self.hub.publish(channel, json.dumps({"members": members}), PRESENCE)


async def _forward(ws: WebSocket, subscription: Subscription, scope: trio.CancelScope) -> None:
    """Send what the live sink did not: replay, catch-up after a full outbox, resets."""
    try:
        async for item in subscription:  # at the member's pace: waiting for room is fine here
            await ws.send(item.ws_text, policy=SlowConsumer.BLOCK)
    except (WebSocketClosed, trio.BrokenResourceError):
        pass
    except BrokerUnavailable:
        await ws.close(1011, "message broker unavailable: reconnect")
    scope.cancel()  # the member is gone or cut off: end the handler's block too
