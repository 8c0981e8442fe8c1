"""The Redis hub as users see it: :class:`RedisHub`, a broker whose channels live in Redis.

It puts together what the other modules of :mod:`rawstream.hub.redis` do (the codec, the link,
the reader, presence) behind the :class:`~rawstream.hub.broker.Broker` contract and
:class:`~rawstream.hub.presence.MemberCounter`; what it does itself is publishing and replay.

**Trimming.**  Redis allows one trimming strategy per ``XADD``.  Each ``XADD`` trims by count,
``MAXLEN ~ history.max_messages`` (approximate: Redis trims whole internal nodes, so a stream
keeps *at least* that many entries, a little more at times).  When ``history.max_age`` is set,
the publish then sends ``XTRIM MINID ~ (now - max_age)``, so age bounds Redis too (approximately
as well: an old entry may outlive ``max_age`` until its node goes).  ``history.max_bytes``
bounds only the local windows (Redis has no byte trimming).  All hubs sharing a Redis should
use the same limits.

**Replay.**  A subscription resumes from the local window when it reaches back far enough,
else from Redis (``XRANGE``), and gets a :class:`~rawstream.hub.message.Reset` when Redis
trimmed what followed its id (``expired``), for an id later than the stream's last
(``unknown``), or for one that is not ``ms-seq`` (``malformed``); it then replays everything
Redis still holds.  What "trimmed" means is read from ``XINFO STREAM``
(:func:`~rawstream.hub.redis.codec.stream_state`): everything after the position just before
the oldest entry still held is intact.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable

import coredis
import trio
from coredis.patterns.pipeline import Pipeline
from coredis.tokens import PureToken

from ..broker import Broker, BrokerUnavailable, Health, HistoryLost, LocalChannel
from ..message import HistoryLimits, Message, Position, check_channel, check_event_type
from ..presence import MemberCounter
from .codec import Keys, decode_entry, encode_entry, parse_client_id, stream_id, text
from .link import REDIS_ERRORS, Link, describe, redact, unreachable
from .presence import Presence
from .reader import READ_BATCH, Reader, RedisChannel, read_stream_state, redis_channel

__all__ = ["RedisHub"]


class RedisHub(Broker, MemberCounter):
    """Publish/subscribe with replay over Redis streams, shared by every process that uses
    the same Redis (workers, nodes).  Needs Redis 7 and ``pip install 'rawstream[redis]'``.

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path``.
        history: what each channel keeps for replay: ``max_messages`` and ``max_age`` trim
            the Redis streams (approximately, see :mod:`rawstream.hub.redis.hub`),
            ``max_bytes`` bounds only this process's windows of recent messages.
        key_prefix: prepended to every Redis key the hub uses.
        block_ms: the longest one blocking read lasts; also the longest delay before a
            channel opened here is read (see :mod:`rawstream.hub.redis.reader`).
        timeout: seconds to wait for a connection or a reply before taking Redis for
            unreachable.
        member_ttl: seconds a hub instance's member counts outlive its last heartbeat (a
            crashed worker's members stop counting after this).

    Example::

        hub = RedisHub("redis://127.0.0.1:6379/0")
        app.service(hub.run)              # connects (the server does not start without it)
        sse_channels(app, "/events", hub)
        await hub.publish("news", "hello")
    """

    def __init__(
        self,
        url: str,
        history: HistoryLimits | None = None,
        *,
        key_prefix: str = "rawstream:",
        block_ms: int = 100,
        timeout: float = 2.0,
        member_ttl: float = 15.0,
    ) -> None:
        super().__init__(history)
        if block_ms < 1 or timeout <= 0 or member_ttl <= 0:
            raise ValueError("block_ms, timeout and member_ttl must be positive")
        self.url = url
        self.key_prefix = key_prefix
        self.block_ms = block_ms
        self.timeout = timeout
        self.member_ttl = member_ttl
        #: This hub instance's id: its field in member hashes, its heartbeat key.
        self.instance = uuid.uuid4().hex
        self._running = False
        self._keys = Keys(key_prefix)
        self._link = Link(url, self.instance, block_ms=block_ms, timeout=timeout)
        self._presence = Presence(self._link, self._keys, member_ttl)
        self._reader = Reader(self.channels, self.history, self._link, self._presence)

    # -- the public API ---------------------------------------------------------------------------

    @property
    def per_process(self) -> bool:
        """False: every process using the same Redis shares the channels."""
        return False

    def health(self) -> Health:
        """``ok`` while connected; ``degraded`` (with the reason) before :meth:`run`, after
        it, and while Redis is unreachable."""
        return self._link.health

    async def publish(self, channel: str, data: str | bytes, event: str | None = None) -> str:
        """Append ``data`` to ``channel``'s stream; return its id.

        Subscribers (in every process) receive it through their process's reader, so it
        reaches them shortly after this returns, not before.

        Raises:
            ValueError: the channel name is invalid.
            BrokerUnavailable: Redis is unreachable (or refused the entry); the message may
                have been stored if Redis stopped answering while it was in flight.
        """
        key = self._keys.stream(check_channel(channel))
        check_event_type(event)  # now, not in every reader
        redis = self._link.client()
        fields = encode_entry(data, event)
        try:
            if self.history.max_age is None:
                entry_id = await self._xadd(redis, key, fields)
            else:  # (one round trip for both: this is every publish's path)
                oldest_ms = int((time.time() - self.history.max_age) * 1000)
                async with redis.pipeline(transaction=False) as pipe:
                    added = self._xadd(pipe, key, fields)
                    pipe.xtrim(
                        key, PureToken.MINID, oldest_ms, trim_operator=PureToken.APPROXIMATELY
                    )
                entry_id = await added
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not publish to {channel!r}: {describe(exc)}") from exc
        assert entry_id is not None  # XADD without NOMKSTREAM always adds
        return text(entry_id)

    def _xadd(
        self, client: coredis.Redis[bytes] | Pipeline[bytes], key: str, fields: dict[bytes, bytes]
    ) -> Awaitable[bytes | None]:
        """XADD, trimmed to ``max_messages`` (approximately: Redis trims whole nodes)."""
        return client.xadd(
            key,
            fields,
            trim_strategy=PureToken.MAXLEN,
            trim_operator=PureToken.APPROXIMATELY,
            threshold=self.history.max_messages,
        )

    async def count_member(self, channel: str, delta: int) -> int:
        """Add ``delta`` to this instance's member count of ``channel``; return the count
        over every live instance (see :mod:`rawstream.hub.redis.presence`).

        Each instance writes its own absolute count (``HSET``, not ``HINCRBY``), so counts
        can be stated again after an outage; a failed join (``delta > 0``) is not counted
        here, a failed leave is (the member is gone either way) and reaches Redis once it
        is back.

        Raises:
            BrokerUnavailable: Redis is unreachable.
        """
        check_channel(channel)
        return await self._presence.count(channel, delta)

    def format_id(self, position: Position) -> str:
        """A stream id: ``ms-seq``."""
        return stream_id(position)

    def parse_id(self, channel: LocalChannel, id: str) -> Position:
        """The position of stream id ``id``, checked against what ``channel`` knows (its
        window, and what Redis held when it was last asked: the opening of this
        subscription did ask).

        Raises:
            HistoryLost: ``malformed`` (not ``ms-seq``), ``unknown`` (later than the stream's
                last id), ``expired`` (trimmed entries followed it); ``resume_from`` is the
                position just before the oldest message still held.
        """
        resume_from = redis_channel(channel).resume_point()
        return parse_client_id(id, head=channel.window.head, resume_from=resume_from)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, then read the channels and keep this instance's heartbeat until
        cancelled, reconnecting whenever Redis is lost (register with
        ``app.service(hub.run)``).

        Raises:
            BrokerUnavailable: Redis cannot be reached at start (so the server does not
                start either).
        """
        if self._running:
            raise RuntimeError("this RedisHub is already running")
        self._running = True
        link = self._link
        redis = link.new_client(blocking=False)
        failure: BrokerUnavailable | None = None
        was_connected = False
        try:
            # coredis's client owns a task group: what is raised in this block leaves it in an
            # ExceptionGroup, so the start-up failure is kept and raised after it, unwrapped.
            async with redis:
                try:
                    await redis.ping()
                    link.general = redis
                    await self._presence.beat(redis, restate=True)
                except REDIS_ERRORS as exc:
                    failure = BrokerUnavailable(
                        f"cannot reach Redis at {redact(self.url)}: {describe(exc)}"
                    )
                    link.down(unreachable(exc))
                else:
                    link.up()
                    task_status.started()
                    try:
                        await self._reader.serve()
                    finally:
                        was_connected = link.connected
                        link.down(Health("degraded", "stopped"))
                        self._reader.fail_subscriptions("the Redis hub stopped")
        finally:
            link.general = None  # (every path here has marked the link down already)
            self._running = False
            if was_connected:
                await self._presence.leave()
        if failure is not None:
            raise failure

    # -- what the Broker base asks of a backend ---------------------------------------------------

    async def _open_channel(self, name: str) -> LocalChannel:
        """The channel's local state, its head brought up to Redis's last id: a new one
        starts its window there (new subscribers go live from it, the reader reads after
        it); an open one reads what its reader has not yet, so an id just published by
        another process is known here."""
        key = self._keys.stream(name)
        while True:
            redis = self._link.client()
            try:
                state = await read_stream_state(redis, key)
            except REDIS_ERRORS as exc:
                raise BrokerUnavailable(f"could not open {name!r}: {describe(exc)}") from exc
            channel = self.channels.get(name)
            if channel is None:
                channel = RedisChannel(name, key, self.history, state)
                self.channels[name] = channel
                self._reader.wake()
            else:
                channel = redis_channel(channel)
                channel.held_after = state.held_after
                await self._reader.bring_head_to(redis, channel, state)
            if self.channels.get(name) is channel:  # (not closed while we waited)
                break
        if not self._link.connected:  # Redis was lost meanwhile (and every subscription failed)
            if not channel.all_subscriptions:
                self._close_channel(channel)
            raise BrokerUnavailable(self._link.health.detail)
        channel.window.trim(time.time())
        return channel

    def _close_channel(self, channel: LocalChannel) -> None:
        """Forget the channel: the reader stops reading it, and opening it again starts
        afresh from Redis."""
        if self.channels.get(channel.name) is channel:
            del self.channels[channel.name]

    async def _fetch_after(self, channel: LocalChannel, position: Position) -> list[Message]:
        """Up to a batch of messages after ``position`` and up to the window's base, from
        Redis.

        Raises:
            HistoryLost: Redis trimmed entries that followed ``position`` (``expired``).
            BrokerUnavailable: Redis is unreachable.
        """
        local = redis_channel(channel)
        redis = self._link.client()
        try:
            entries = await redis.xrange(
                local.key,
                "(" + stream_id(position),
                stream_id(local.window.base),
                count=READ_BATCH,
            )
            # Asked after the read: trimming only moves forward, so if nothing after
            # `position` is trimmed now, nothing was when the read ran.
            state = await read_stream_state(redis, local.key)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not read {channel.name!r}: {describe(exc)}") from exc
        local.held_after = state.held_after
        if position < state.held_after:
            raise HistoryLost("expired", local.resume_point())
        return [decode_entry(local.name, entry) for entry in entries]
