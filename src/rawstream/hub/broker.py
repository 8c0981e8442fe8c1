"""What every hub shares: channels, subscriptions as cursors, and fan-out that never waits.

A :class:`Subscription` is a cursor over one or more channels: for each channel, the position
of the last message it has taken.  It is in one of two modes:

* **live**: attached to its channels, it is handed each new message as it is published
  (:meth:`Subscription._deliver`, called synchronously by the publish, which never awaits a
  subscriber).  The message goes to the subscription's *sink* (the SSE helper's sink puts the
  shared bytes straight into the connection's outbox) or into a small queue bounded in bytes.
* **catching up**: detached, it reads what follows its cursor from the channel's history, at
  the pace of its consumer (``async for``).  A new subscription with a ``Last-Event-ID``
  starts here, so it replays before it goes live.  A live one whose sink or queue is full
  comes back here instead of losing messages.  When a pass over every channel finds nothing
  more, it attaches again, in the same step as that check, with no await between: a message
  published meanwhile is either found by the check or delivered live, never both, never
  neither.

When history no longer reaches back to the cursor (or the id is unknown or malformed), the
subscription yields a :class:`~rawstream.hub.message.Reset` and continues from the oldest
message still held: the loss is explicit, never silent.
"""

from __future__ import annotations

import abc
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import trio
from trio.lowlevel import ParkingLot

from ..pacing import paced_checkpoint
from .message import HistoryLimits, Message, Position, Reset, check_channel
from .window import Window

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Health",
    "HistoryLost",
    "LocalChannel",
    "Sink",
    "Subscription",
]

log = logging.getLogger("rawstream.hub")

#: A live subscription's delivery target: takes a message (True), or has no room (False: the
#: subscription catches up from history later).  Raising ``trio.BrokenResourceError`` ends the
#: subscription (its consumer is gone, or was disconnected for being slow).
Sink = Callable[[Message], bool]

_CATCH_UP_BATCH = 256


class BrokerUnavailable(Exception):
    """The broker cannot publish or deliver right now (e.g. Redis is unreachable)."""


class HistoryLost(Exception):
    """What follows a position can no longer be read; resume from ``resume_from``."""

    def __init__(self, reason: str, resume_from: Position) -> None:
        super().__init__(reason)
        self.reason = reason
        self.resume_from = resume_from


@dataclass(frozen=True, slots=True)
class Health:
    """A broker's state for ``/healthz``: ``ok``, or ``degraded`` with a reason."""

    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class LocalChannel:
    """A channel as this process sees it: a window of recent messages and the live
    subscriptions it fans out to."""

    def __init__(self, name: str, limits: HistoryLimits, base: Position = (0, 0)) -> None:
        self.name = name
        self.window = Window(limits, base)
        self.subscribers: set[Subscription] = set()
        #: Every subscription using the channel, live or catching up: a backend that loses
        #: its connection fails them all (:meth:`Subscription.fail`), and the channel is
        #: unused once this is empty.
        self.all_subscriptions: set[Subscription] = set()

    def fan_out(self, message: Message) -> None:
        """Hand ``message`` to every live subscription, without waiting for any."""
        for subscription in tuple(self.subscribers):
            subscription._deliver(message)


class Broker(abc.ABC):
    """Publish and subscribe on named channels, with replay from a past id.

    Subclasses say where messages live (:class:`~rawstream.hub.memory.Hub`: this process;
    :class:`~rawstream.hub.redis.RedisHub`: Redis streams) by implementing the abstract
    methods; subscriptions, cursors and fan-out are shared.  Counting room members is not
    part of this contract: see :class:`~rawstream.hub.presence.MemberCounter`.
    """

    def __init__(self, history: HistoryLimits | None = None) -> None:
        self.history = history or HistoryLimits()
        self.channels: dict[str, LocalChannel] = {}

    # -- the public API ------------------------------------------------------------------------

    @abc.abstractmethod
    async def publish(self, channel: str, data: str | bytes, event: str | None = None) -> str:
        """Publish ``data`` on ``channel``; return the message's id.

        Raises:
            ValueError: the channel name is invalid.
            BrokerUnavailable: the message could not be stored.
        """

    def subscribe(
        self,
        channels: str | Sequence[str],
        last_event_id: str | None = None,
        *,
        sink: Sink | None = None,
        max_queued_bytes: int = 256 * 1024,
    ) -> Subscription:
        """Subscribe to one channel or several: ``async with hub.subscribe(...) as sub``, then
        ``async for item in sub`` gives :class:`Message` and :class:`Reset` items.

        Args:
            channels: the channel(s); a message's ``channel`` tells them apart.
            last_event_id: resume after this id (a :meth:`Subscription.cursor`), replaying
                what was published since; None starts with the next message published.
            sink: deliver live messages here instead of the queue (see :data:`Sink`).
            max_queued_bytes: bound of the live queue; past it the subscription falls back
                to catching up from history.
        """
        names = (channels,) if isinstance(channels, str) else tuple(dict.fromkeys(channels))
        if not names:
            raise ValueError("subscribe to at least one channel")
        for name in names:
            check_channel(name)
        return Subscription(self, names, last_event_id, sink, max_queued_bytes)

    def subscriber_counts(self) -> dict[str, int]:
        """Subscriptions per channel in this process, live or catching up (one subscribed
        to several channels counts in each), for metrics; channels without any are left out.

        Counted now, from the channels' own sets: nothing is kept for it.
        """
        return {
            name: len(channel.all_subscriptions)
            for name, channel in self.channels.items()
            if channel.all_subscriptions
        }

    def health(self) -> Health:
        """Whether the broker works (``/healthz`` reports it)."""
        return Health("ok")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the broker's background work (register it with ``app.service(hub.run)``).

        The in-memory hub has none; a Redis hub connects (failing here if it cannot) and
        reads its channels.
        """
        task_status.started()

    @property
    def per_process(self) -> bool:
        """Channels live in this process only (workers do not share them)."""
        return True

    # -- what a backend provides ----------------------------------------------------------------

    @abc.abstractmethod
    async def _open_channel(self, name: str) -> LocalChannel:
        """The local state of channel ``name``, its window's head up to date."""

    def _close_channel(self, channel: LocalChannel) -> None:  # noqa: B027 (optional hook)
        """The last subscription of ``channel`` left (a backend may stop reading it)."""

    @abc.abstractmethod
    def format_id(self, position: Position) -> str:
        """The id clients see for ``position``."""

    @abc.abstractmethod
    def parse_id(self, channel: LocalChannel, id: str) -> Position:
        """The position of ``id`` in ``channel``.

        Raises:
            HistoryLost: the id is malformed, or not one of this channel's.
        """

    async def _fetch_after(self, channel: LocalChannel, position: Position) -> list[Message]:
        """Messages after ``position`` that the local window does not hold (an empty list
        means there are none before the window's base).

        Raises:
            HistoryLost: they are gone (trimmed from history).
        """
        raise HistoryLost("expired", channel.window.base)


class Subscription:
    """A cursor over channels that replays, then follows them live (see the module doc)."""

    def __init__(
        self,
        broker: Broker,
        channels: tuple[str, ...],
        last_event_id: str | None,
        sink: Sink | None,
        max_queued_bytes: int,
    ) -> None:
        self.broker = broker
        self.channels = channels
        self.last_event_id = last_event_id
        #: Per channel, the position of the last message handed to the consumer (what
        #: :meth:`cursor` reports) ...
        self.positions: dict[str, Position] = {}
        #: ... and of the last one taken in (queued, or given to the sink): where reading on
        #: resumes, and below which a live delivery is a duplicate.
        self._taken: dict[str, Position] = {}
        self._sink = sink
        self._max_queued_bytes = max_queued_bytes
        self._locals: list[LocalChannel] = []
        self._queue: deque[Message | Reset] | None = None  # made when first needed
        self._queued_bytes = 0
        self._attached = False
        self._error: BaseException | None = None
        self._wakeup = ParkingLot()  # the consumer, waiting in __anext__
        self._closed = False
        self._first = 0  # the channel a catch-up pass starts with (rotates)

    def _queued(self) -> deque[Message | Reset]:
        """The queue, made on first use (a live subscription with a sink never needs one:
        an idle stream should not pay for an empty deque)."""
        if self._queue is None:
            self._queue = deque()
        return self._queue

    # -- opening and closing ------------------------------------------------------------------

    async def __aenter__(self) -> Subscription:
        try:
            for name in self.channels:
                channel = await self.broker._open_channel(name)
                channel.all_subscriptions.add(self)
                self._locals.append(channel)
        except BaseException:
            self._release()
            raise
        wanted = self._parse_cursor(self.last_event_id)
        for channel in self._locals:  # a new subscriber starts with the next message
            self.positions[channel.name] = self._taken[channel.name] = channel.window.head
        lost_channels: list[tuple[str, HistoryLost]] = []
        for channel in self._locals:
            token = wanted.get(channel.name)
            if token is None:
                continue
            try:
                position = self.broker.parse_id(channel, token)
                self.positions[channel.name] = self._taken[channel.name] = position
            except HistoryLost as lost:
                lost_channels.append((channel.name, lost))
        for name, history_lost in lost_channels:  # after every position is known: right cursor
            self._reset(name, history_lost)
        if self._sink is None and not self._queue:
            # Nothing to replay: go live now, so what is published before the first
            # iteration waits in the queue.  (With a sink, its owner goes live by iterating,
            # after it has sent whatever must come first.)
            self._attach_if_caught_up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop receiving (the ``async with`` exit does this)."""
        self._closed = True
        self._detach()
        self._release()
        self._wakeup.unpark_all()

    def _release(self) -> None:
        for channel in self._locals:
            channel.all_subscriptions.discard(self)
            if not channel.all_subscriptions:
                self.broker._close_channel(channel)
        self._locals = []

    def fail(self, error: BaseException) -> None:
        """End the subscription with ``error`` (raised by the next ``__anext__``): the broker
        lost its backend, or the sink's consumer is gone."""
        if self._error is None:
            self._error = error
        self._detach()
        self._wakeup.unpark_all()

    # -- cursors --------------------------------------------------------------------------------

    def cursor(self) -> str:
        """The id that resumes exactly here: the channel's id for one channel,
        ``name=id,name=id`` for several."""
        if len(self.channels) == 1:
            return self.broker.format_id(self.positions[self.channels[0]])
        format_id = self.broker.format_id
        return ",".join(f"{name}={format_id(self.positions[name])}" for name in self.channels)

    def _parse_cursor(self, cursor: str | None) -> dict[str, str]:
        if cursor is None:
            return {}
        if len(self.channels) == 1 and "=" not in cursor:
            return {self.channels[0]: cursor}
        wanted: dict[str, str] = {}
        for part in cursor.split(","):
            name, sep, token = part.partition("=")
            if sep and name in self.channels:
                wanted[name] = token
        if not wanted:  # not a cursor of these channels at all: say so for each
            return dict.fromkeys(self.channels, "")
        return wanted

    # -- live delivery (called by the publish, synchronously) -----------------------------------

    def _deliver(self, message: Message) -> None:
        name = message.channel
        previous = self._taken[name]
        if message.position <= previous:  # already taken while catching up
            return
        self._taken[name] = message.position
        handed_out = self.positions[name]
        if self._sink is not None:
            self.positions[name] = message.position  # the sink may ask for the cursor
            try:
                taken = self._sink(message)
            except trio.BrokenResourceError as exc:
                self.fail(exc)
                return
            except Exception as exc:
                log.exception("subscription sink failed on %r", message)
                self.fail(exc)
                return
        else:
            taken = self._queued_bytes + message.size <= self._max_queued_bytes
            if taken:
                self._queued().append(message)
                self._queued_bytes += message.size
        if not taken:  # no room: catch up from history once the consumer has room again
            self._taken[name] = previous
            self.positions[name] = handed_out
            self._detach()
            self._wakeup.unpark_all()
        elif self._sink is None:
            self._wakeup.unpark_all()  # (a sink's owner has nothing to do: it is not woken)

    def _attach(self) -> None:
        for channel in self._locals:
            channel.subscribers.add(self)
        self._attached = True

    def _detach(self) -> None:
        if self._attached:
            for channel in self._locals:
                channel.subscribers.discard(self)
            self._attached = False

    # -- consuming ------------------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message | Reset:
        """The next message or reset: queued ones, then history, then live ones (with a sink,
        only what the sink did not take: replay, catch-up and resets)."""
        await paced_checkpoint()  # a replay is many items: not a scheduler round trip each
        while True:
            if self._queue:
                item = self._queue.popleft()
                if isinstance(item, Message):
                    self._queued_bytes -= item.size
                    self.positions[item.channel] = item.position
                return item
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            if self._attached:
                await self._wakeup.park()
                continue
            await self._catch_up()

    async def _catch_up(self) -> None:
        """Queue what follows the cursor; attach (go live) when there is nothing more."""
        locals_ = self._locals
        self._first = (self._first + 1) % len(locals_)  # a busy channel must not starve others
        for channel in locals_[self._first :] + locals_[: self._first]:
            name = channel.name
            position = self._taken[name]
            window = channel.window
            if window.covers(position):
                messages = window.after(position, _CATCH_UP_BATCH)
                if messages:
                    self._take(name, messages)
                    return
                continue
            try:
                if position > window.head:
                    raise HistoryLost("unknown", window.base)
                # Older than the window: ask the backend.  This awaits, so the pass ends
                # here and the next one rechecks every window before attaching.
                base = window.base  # what "nothing before the base" refers to, before awaiting
                messages = await self.broker._fetch_after(channel, position)
            except HistoryLost as lost:
                self._reset(name, lost)
                return
            if messages:
                self._take(name, messages)
            elif position < base:  # nothing in between: the window (as it was) goes on
                self.positions[name] = self._taken[name] = base
            return
        # Every channel is caught up, and nothing awaited since the windows were read.
        self._attach()

    def _attach_if_caught_up(self) -> None:
        for channel in self._locals:
            position = self._taken[channel.name]
            if not channel.window.covers(position) or channel.window.after(position, 1):
                return
        self._attach()

    def _take(self, name: str, messages: list[Message]) -> None:
        self._queued().extend(messages)
        self._queued_bytes += sum(message.size for message in messages)
        self._taken[name] = messages[-1].position

    def _reset(self, name: str, lost: HistoryLost) -> None:
        self.positions[name] = self._taken[name] = lost.resume_from
        self._queued().append(Reset(name, lost.reason, self.cursor()))
