"""The in-memory hub: channels, history and fan-out inside one process (the default).

Ids look like ``3f9a1c-42``: a token drawn when the hub is created, then a sequence number
(one sequence for the whole hub, so ids increase per channel and are never reused).  The
token makes an id from another process, or from before a restart, *unknown* (a
:class:`~rawstream.hub.message.Reset`) instead of silently pointing at a different message
that happens to have the same number.
"""

from __future__ import annotations

import secrets
import time

import trio

from ..pacing import note_yield
from .broker import Broker, HistoryLost, LocalChannel
from .message import HistoryLimits, Message, Position, check_channel
from .presence import MemberCounter

__all__ = ["MAX_UNYIELDED", "YIELD_BATCH", "YIELD_BYTES", "YIELD_INTERVAL", "Hub"]

#: Seconds of publishing between two schedule points (see :meth:`Hub._pace`) ...
YIELD_INTERVAL = 0.005
#: ... once at least this many messages have been published since the last one ...
YIELD_BATCH = 16
#: ... and never longer than this.
MAX_UNYIELDED = 0.05
#: Bytes published between two schedule points at most (well below ``outbox_low_bytes``).
YIELD_BYTES = 32 * 1024


class Hub(Broker, MemberCounter):
    """Publish/subscribe with replay, and room member counts, in this process.

    Args:
        history: what each channel keeps for replay (count, bytes, age).
        max_channels: channels kept at most; past it, the one published to least recently
            that has no subscriber is forgotten, history and all.

    Example::

        hub = Hub()
        app.service(hub.run)
        sse_channels(app, "/events", hub)  # GET /events?channel=news
        await hub.publish("news", "hello")
    """

    def __init__(self, history: HistoryLimits | None = None, *, max_channels: int = 10_000) -> None:
        super().__init__(history)
        self.max_channels = max_channels
        self.epoch = secrets.token_hex(3)
        self._prefix = self.epoch + "-"
        self._last_yield = 0.0
        self._unyielded_bytes = 0
        self._unyielded_messages = 0
        #: One sequence for every channel: ids still increase per channel, and a channel
        #: forgotten and made anew never hands out an id it had already given.
        self._sequence = 0
        self._members: dict[str, int] = {}  # room members per channel

    async def publish(self, channel: str, data: str | bytes, event: str | None = None) -> str:
        """Publish ``data`` on ``channel``: stored in its history and handed to every live
        subscriber's outbox or queue before this returns; never waits for a subscriber."""
        local = self._channel(check_channel(channel))
        position = (self._sequence + 1, 0)
        message = Message(channel, self.format_id(position), position, data, event)
        self._sequence += 1  # (after Message() validated the event type)
        local.window.append(message, message.published_at)
        local.fan_out(message)
        self._unyielded_bytes += message.size
        self._unyielded_messages += 1
        await self._pace()
        return message.id

    async def count_member(self, channel: str, delta: int) -> int:
        """Add ``delta`` to the member count of ``channel`` (a room); return the new count
        (never below zero).  The count is this process's, as the hub's channels are."""
        await trio.lowlevel.checkpoint()
        count = max(0, self._members.get(channel, 0) + delta)
        if count:
            self._members[channel] = count
        else:
            self._members.pop(channel, None)
        return count

    async def _pace(self) -> None:
        """Yield to the scheduler once ``YIELD_INTERVAL`` seconds of publishing have put out
        at least ``YIELD_BATCH`` messages, at the latest after ``MAX_UNYIELDED`` seconds, and
        as soon as ``YIELD_BYTES`` have been published (so a burst of large messages cannot
        fill a reading subscriber's outbox before its writer gets to run).

        Every publish is a cancellation point.  Yielding after each one would wake every
        subscriber's writer per message: one ``send`` per message per subscriber, and a
        ``send`` costs far more than queueing a message.  Yielding every few milliseconds
        lets each writer drain what accumulated in one ``send``, and still keeps a tight
        publishing loop from starving the writers (or anything else).  With many
        subscribers one publish itself takes a while (a millisecond for a thousand), so the
        interval stretches until a batch of messages has gone out: otherwise every writer
        would again wake for every message or two.  A lone message waits for nothing
        either way: its writers run as soon as the publisher awaits anything that blocks.
        """
        now = time.perf_counter()
        elapsed = now - self._last_yield
        if (
            (elapsed >= YIELD_INTERVAL and self._unyielded_messages >= YIELD_BATCH)
            or elapsed >= MAX_UNYIELDED
            or self._unyielded_bytes >= YIELD_BYTES
        ):
            await trio.lowlevel.checkpoint()
            note_yield()  # (the handlers' paced checkpoints need not yield again at once)
            self._last_yield = time.perf_counter()
            self._unyielded_bytes = 0
            self._unyielded_messages = 0
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    def _channel(self, name: str) -> LocalChannel:
        channels = self.channels
        local = channels.pop(name, None)  # re-inserted last: the dict is in order of use
        if local is None:
            # Whatever an earlier channel of this name published is gone: an older id is
            # "expired" (a reset), never mistaken for one of the new channel's.
            local = LocalChannel(name, self.history, base=(self._sequence, 0))
            if len(channels) >= self.max_channels:
                self._forget_one()
        channels[name] = local
        return local

    def _forget_one(self) -> None:
        for name, local in self.channels.items():
            if not local.all_subscriptions:
                del self.channels[name]
                return
        raise RuntimeError(f"every one of {self.max_channels} channels has subscribers")

    async def _open_channel(self, name: str) -> LocalChannel:
        await trio.lowlevel.checkpoint()
        local = self._channel(name)
        local.window.trim(time.time())
        return local

    def format_id(self, position: Position) -> str:
        return self._prefix + str(position[0])

    def parse_id(self, channel: LocalChannel, id: str) -> Position:
        epoch, sep, number = id.partition("-")
        if not (sep and number.isdigit() and number.isascii()):
            raise HistoryLost("malformed", channel.window.base)
        if epoch != self.epoch or int(number) > channel.window.head[0]:
            raise HistoryLost("unknown", channel.window.base)
        position = (int(number), 0)
        if position < channel.window.base:
            raise HistoryLost("expired", channel.window.base)
        return position
