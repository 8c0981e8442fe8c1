"""The Redis hub's reader: one ``XREAD`` loop per process, and what it does when Redis is lost.

**Reading.**  Per process, one reader task (in ``RedisHub.run``) issues ``XREAD BLOCK`` over
every channel that has local subscriptions, each from its window's head, appends what arrives
to the window and fans it out to the live subscriptions: a message is read from Redis once per
process, however many local subscribers it has.  The reader has its own connection (a client
of its own, with one connection), so publishes never queue behind a blocked read.  The set of
channels is re-read between reads, and a read blocks for at most ``block_ms`` (100 ms, plus up
to 100 ms as Redis checks blocking timeouts on its ``hz`` timer): a channel opened meanwhile
is read from its opening position within that time, so nothing is missed, only delayed.  The
alternative, cancelling the blocked read when the set changes, costs a new connection each
time (a cancelled blocking command leaves its reply in flight, so coredis closes that
connection), which a busy server opening rooms all the time would pay constantly; an idle
short read costs Redis next to nothing.  A reader so far behind that Redis trimmed entries it
had not read yet restarts that channel's window after the trim and fails its subscriptions,
whose clients then resume with an ``expired`` reset: a loss is always explicit.

**Outages.**  When Redis cannot be reached, the hub's health turns ``degraded``, publishes and
new subscriptions raise :class:`~rawstream.hub.broker.BrokerUnavailable` at once (the
:class:`~rawstream.hub.redis.link.Link` is down), and every subscription fails with it (an SSE
stream ends with ``retry:``, a WebSocket member is closed 1011), while the reader reconnects
with capped, jittered exponential backoff.  Redis keeps the streams meanwhile, so a client
that reconnects with its last id afterwards loses nothing.  (A publish in flight when Redis
stops answering may fail with a timeout and still have been stored: the outcome of such a
publish is unknown, as with any broker.)
"""

from __future__ import annotations

import logging
import random
import time

import coredis
import trio
from coredis.exceptions import ResponseError
from coredis.response.types import StreamEntry

from ..broker import BrokerUnavailable, LocalChannel
from ..message import HistoryLimits, Position
from ..window import Window
from .codec import NO_STREAM, StreamState, decode_entry, stream_id, stream_state, text
from .link import REDIS_ERRORS, Link, describe, redact, unreachable
from .presence import Presence

__all__ = ["READ_BATCH", "Reader", "RedisChannel", "read_stream_state", "redis_channel"]

log = logging.getLogger("rawstream.hub")

#: Entries per stream per XREAD, and per XRANGE when replaying from Redis.
READ_BATCH = 256
#: Reconnection backoff: the first delay and the cap (seconds; each drawn with jitter).
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0
#: With no channel to read, the reader still checks Redis this often (seconds), so that an
#: idle hub's health is current.
_IDLE_PROBE = 1.0


class RedisChannel(LocalChannel):
    """A channel's local state, plus its stream key and how far back Redis holds it."""

    def __init__(self, name: str, key: str, limits: HistoryLimits, state: StreamState) -> None:
        super().__init__(name, limits, state.last)
        self.key = key
        self.held_after = state.held_after

    def resume_point(self) -> Position:
        """Just before the oldest message held, locally or in Redis."""
        return min(self.window.base, self.held_after)


def redis_channel(channel: LocalChannel) -> RedisChannel:
    """``channel`` as the Redis hub's (every channel of a Redis hub is one)."""
    assert isinstance(channel, RedisChannel), channel
    return channel


async def read_stream_state(redis: coredis.Redis[bytes], key: str) -> StreamState:
    """What Redis holds of the stream ``key``: ``XINFO STREAM``, decoded by
    :func:`~rawstream.hub.redis.codec.stream_state` (no stream: :data:`NO_STREAM`)."""
    try:
        info = await redis.xinfo_stream(key)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return NO_STREAM
        raise
    return stream_state(info)


class Reader:
    """Reads every open channel of one hub from Redis, and keeps its link's state: marks it
    down when a read fails, fails every subscription, and reconnects.

    Args:
        channels: the hub's open channels (the hub's own dict: the reader sees it change).
        history: the hub's history limits (a window restarted after a trim gets them too).
        link: the hub's link to Redis.
        presence: the hub's member counts (their heartbeat goes between reads).
    """

    def __init__(
        self,
        channels: dict[str, LocalChannel],
        history: HistoryLimits,
        link: Link,
        presence: Presence,
    ) -> None:
        self._channels = channels
        self._history = history
        self._link = link
        self._presence = presence
        self._channels_opened = trio.Event()  # wakes an idle reader

    def wake(self) -> None:
        """A channel was opened: a reader idling for want of channels reads it now."""
        self._channels_opened.set()

    async def serve(self) -> None:
        """Read until Redis is lost, fail every subscription, reconnect; forever."""
        while True:
            error = await self._read_session()
            self._lose_connection(error)
            await self._reconnect()

    async def bring_head_to(
        self, redis: coredis.Redis[bytes], channel: RedisChannel, state: StreamState
    ) -> None:
        """Read what the reader has not yet, up to ``state.last``.

        Raises:
            BrokerUnavailable: Redis is unreachable.
        """
        if state.held_after > channel.window.head:
            self._lose_window(channel, state)
        while channel.window.head < state.last and self._is_open(channel):
            try:
                entries = await redis.xrange(
                    channel.key,
                    "(" + stream_id(channel.window.head),
                    stream_id(state.last),
                    count=READ_BATCH,
                )
            except REDIS_ERRORS as exc:
                detail = describe(exc)
                raise BrokerUnavailable(f"could not read {channel.name!r}: {detail}") from exc
            if not entries:
                break  # gone (a restarted Redis): the reader goes on from the head
            self._ingest(channel, entries)

    def fail_subscriptions(self, reason: str) -> None:
        """End every subscription of every channel with BrokerUnavailable(``reason``)."""
        for channel in tuple(self._channels.values()):
            for subscription in tuple(channel.all_subscriptions):
                subscription.fail(BrokerUnavailable(reason))

    # -- reading ----------------------------------------------------------------------------------

    async def _read_session(self) -> Exception:
        """Read on a fresh reader client until a Redis error, and return it.

        A fresh client per session: coredis closes a connection whose blocking read failed
        or was cancelled (its reply may still come), and its pool does not get that slot
        back, so a one-connection pool is used for one session only.
        """
        reader = self._link.new_client(blocking=True)
        error: Exception | None = None
        async with reader:
            try:
                await self._read_forever(reader)
            except REDIS_ERRORS as exc:
                error = exc
        assert error is not None  # _read_forever only ever ends by raising
        return error

    async def _read_forever(self, reader: coredis.Redis[bytes]) -> None:
        """XREAD BLOCK over every open channel, each after its window's head, appending
        what arrives and fanning it out; heartbeat between reads."""
        while True:
            if self._presence.beat_due():
                await self._presence.beat(reader)
            reading = {
                channel.key: channel for channel in map(redis_channel, self._channels.values())
            }
            if not reading:
                self._channels_opened = trio.Event()
                with trio.move_on_after(_IDLE_PROBE):
                    await self._channels_opened.wait()
                await reader.ping()
                continue
            after = {key: channel.window.head for key, channel in reading.items()}
            reply = await reader.xread(
                {key: stream_id(head) for key, head in after.items()},
                count=READ_BATCH,
                block=self._link.block_ms,
            )
            for raw_key, entries in (reply or {}).items():
                channel = reading[text(raw_key)]
                if len(entries) >= min(READ_BATCH, self._history.max_messages):
                    # Behind by a full batch: Redis may have trimmed entries this process
                    # never read.  Look before appending what did arrive.
                    await self._check_for_gap(reader, channel)
                self._ingest(channel, entries)

    def _ingest(self, channel: RedisChannel, entries: tuple[StreamEntry, ...]) -> None:
        """Append entries (read after some past head) to the window and fan them out,
        skipping those already appended: the reader and the hub's opening of a channel may
        both read the same entries, and whichever comes second adds only what is new."""
        if not self._is_open(channel):
            return  # closed meanwhile
        now = time.time()
        for entry in entries:
            message = decode_entry(channel.name, entry)
            if message.position <= channel.window.head:
                continue
            channel.window.append(message, now)
            channel.fan_out(message)

    def _is_open(self, channel: RedisChannel) -> bool:
        """Whether ``channel`` is still the hub's (not closed, and not opened anew)."""
        return self._channels.get(channel.name) is channel

    async def _check_for_gap(self, redis: coredis.Redis[bytes], channel: RedisChannel) -> None:
        state = await read_stream_state(redis, channel.key)
        if state.held_after > channel.window.head and self._is_open(channel):
            self._lose_window(channel, state)

    def _lose_window(self, channel: RedisChannel, state: StreamState) -> None:
        """Redis trimmed entries after the window's head, never read here: restart the
        window after the trim, and fail the channel's subscriptions (their clients resume
        and get an ``expired`` reset) rather than skip messages silently."""
        log.warning("channel %r: Redis trimmed entries this process had not read", channel.name)
        channel.window = Window(self._history, state.held_after)
        channel.held_after = state.held_after
        for subscription in tuple(channel.all_subscriptions):
            subscription.fail(
                BrokerUnavailable(
                    f"channel {channel.name!r}: this server fell behind and Redis trimmed "
                    "messages it had not read; reconnect to resume"
                )
            )

    # -- outages ----------------------------------------------------------------------------------

    def _lose_connection(self, error: Exception) -> None:
        """Redis is gone: degraded, and every subscription ends (clients reconnect and
        resume from their last id once it is back)."""
        self._link.down(unreachable(error))
        log.warning("lost Redis at %s: %s", redact(self._link.url), describe(error))
        self.fail_subscriptions(f"lost the connection to Redis ({describe(error)})")

    async def _reconnect(self) -> None:
        """PING with exponential backoff and jitter until Redis answers, then state this
        instance's heartbeat and member counts again; the next session reads on from each
        window's head, so nothing published meanwhile is skipped."""
        redis = self._link.general
        assert redis is not None
        delay = _BACKOFF_FIRST
        while True:
            await trio.sleep(random.uniform(delay / 2, delay))
            try:
                await redis.ping()
                await self._presence.beat(redis, restate=True)
            except REDIS_ERRORS as exc:
                self._link.down(unreachable(exc))
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            log.info("Redis at %s is back", redact(self._link.url))
            self._link.up()
            return
