"""Channels in Redis streams, shared by every worker and node: :class:`RedisHub`.

Same semantics as the in-memory :class:`~rawstream.hub.memory.Hub` (subscriptions, cursors,
replay, resets and fan-out are the shared code of :mod:`rawstream.hub.broker`); what differs
is where messages live.

**Storage.**  Channel ``NAME`` is the Redis stream ``{key_prefix}channel:NAME``.  Each publish
is one ``XADD`` whose entry holds ``data`` (the payload as bytes), ``kind`` (``str`` or
``bytes``: what the publisher gave, so subscribers get the same type back) and, when set,
``event``.  The stream id Redis assigns (``ms-seq``) is the message's id as clients see it, so
every worker and node agrees on ids, and a client can resume on any of them.

**Trimming.**  Redis allows one trimming strategy per ``XADD``.  Each ``XADD`` trims by count,
``MAXLEN ~ history.max_messages`` (approximate: Redis trims whole internal nodes, so a stream
keeps *at least* that many entries, a little more at times).  When ``history.max_age`` is set,
the publish then sends ``XTRIM MINID ~ (now - max_age)``, so age bounds Redis too (approximately
as well: an old entry may outlive ``max_age`` until its node goes).  ``history.max_bytes``
bounds only the local windows (Redis has no byte trimming).  All hubs sharing a Redis should
use the same limits.

**Reading.**  Per process, one reader task (in :meth:`RedisHub.run`) issues ``XREAD BLOCK``
over every channel that has local subscriptions, each from its window's head, appends what
arrives to the window and fans it out to the live subscriptions: a message is read from Redis
once per process, however many local subscribers it has.  The reader has its own connection
(a client of its own, with one connection), so publishes never queue behind a blocked read.
The set of channels is re-read between reads, and a read blocks for at most ``block_ms``
(100 ms, plus up to 100 ms as Redis checks blocking timeouts on its ``hz`` timer): a channel
opened meanwhile is read from its opening position within that time, so nothing is missed,
only delayed.  The alternative, cancelling the blocked read when the set changes, costs a new
connection each time (a cancelled blocking command leaves its reply in flight, so coredis
closes that connection), which a busy server opening rooms all the time would pay
constantly; an idle short read costs Redis next to nothing.  A reader so far behind that
Redis trimmed entries it had not read yet restarts that channel's window after the trim and
fails its subscriptions, whose clients then resume with an ``expired`` reset: a loss is
always explicit.

**Replay.**  A subscription resumes from the local window when it reaches back far enough,
else from Redis (``XRANGE``), and gets a :class:`~rawstream.hub.message.Reset` when Redis
trimmed what followed its id (``expired``), for an id later than the stream's last
(``unknown``), or for one that is not ``ms-seq`` (``malformed``); it then replays everything
Redis still holds.  Redis 7.0 does not report which ids trimming removed (its
``max-deleted-entry-id`` counts ``XDEL`` only), so the hub goes by the oldest entry still
held: everything after the position just before it is intact, and an id older than that
lost what came after it.  (So an id that was exactly the last one trimmed is reported
expired too, although nothing after it was lost: a needless reset, never a silent gap.)

**Outages.**  When Redis cannot be reached, :meth:`RedisHub.health` turns ``degraded``,
publishes and new subscriptions raise :class:`~rawstream.hub.broker.BrokerUnavailable` at
once, and every subscription fails with it (an SSE stream ends with ``retry:``, a WebSocket
member is closed 1011), while the reader reconnects with capped, jittered exponential backoff.
Redis keeps the streams meanwhile, so a client that reconnects with its last id afterwards
loses nothing.  (A publish in flight when Redis stops answering may fail with a timeout and
still have been stored: the outcome of such a publish is unknown, as with any broker.)

**Members.**  Room member counts are kept per hub instance in the hash
``{key_prefix}members:CHANNEL`` (one field per instance), next to a heartbeat key
``{key_prefix}instance:ID`` that :meth:`RedisHub.run` refreshes with a TTL; a count is the sum
over instances whose heartbeat is alive, and the fields of dead ones (a crashed worker) are
removed by whoever counts next.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import anyio
import coredis
import trio
from coredis.exceptions import RedisError, ResponseError
from coredis.patterns.pipeline import Pipeline
from coredis.response.types import StreamEntry
from coredis.retry import NoRetryPolicy
from coredis.tokens import PureToken

from .broker import Broker, BrokerUnavailable, Health, HistoryLost, LocalChannel
from .message import HistoryLimits, Message, Position, check_channel, check_event_type
from .window import Window

__all__ = ["RedisHub"]

log = logging.getLogger("rawstream.hub")

#: What a failed Redis call raises: coredis errors (connection lost, error replies), a reply
#: later than the timeout, socket errors coredis does not wrap, and anyio's errors for a
#: command given to a connection that has just closed.
_REDIS_ERRORS = (
    RedisError,
    TimeoutError,
    OSError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
)

#: A stream id, strictly: two unsigned 64-bit decimal numbers.
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_ID_PART = 2**64 - 1

#: Entries per stream per XREAD, and per XRANGE when replaying from Redis.
_READ_BATCH = 256
#: Reconnection backoff: the first delay and the cap (seconds; each drawn with jitter).
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0
#: With no channel to read, the reader still checks Redis this often (seconds), so that an
#: idle hub's health is current.
_IDLE_PROBE = 1.0


@dataclass(frozen=True, slots=True)
class _StreamState:
    """What ``XINFO STREAM`` says about a channel's stream.

    Attributes:
        last: the last id Redis generated (``0-0``: no stream yet).
        held_after: every entry after this position is still in the stream (what trimming
            removed is at or before it).
    """

    last: Position
    held_after: Position


_NO_STREAM = _StreamState((0, 0), (0, 0))


class _RedisChannel(LocalChannel):
    """A channel's local state, plus its stream key and how far back Redis holds it."""

    def __init__(self, name: str, key: str, limits: HistoryLimits, state: _StreamState) -> None:
        super().__init__(name, limits, state.last)
        self.key = key
        self.held_after = state.held_after


class RedisHub(Broker):
    """Publish/subscribe with replay over Redis streams, shared by every process that uses
    the same Redis (workers, nodes).  Needs Redis 7 and ``pip install 'rawstream[redis]'``.

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path``.
        history: what each channel keeps for replay: ``max_messages`` and ``max_age`` trim
            the Redis streams (approximately, see the module doc), ``max_bytes`` bounds only
            this process's windows of recent messages.
        key_prefix: prepended to every Redis key the hub uses.
        block_ms: the longest one blocking read lasts; also the longest delay before a
            channel opened here is read (see the module doc).
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
        self._redis: coredis.Redis[bytes] | None = None  # while run() runs
        self._connected = False
        self._health = Health("degraded", "not running: register app.service(hub.run)")
        self._channels_opened = trio.Event()  # wakes an idle reader
        self._next_beat = 0.0  # trio clock time of the next heartbeat
        self._stale_members: set[str] = set()  # counts Redis may have wrong (set when back)

    # -- keys -----------------------------------------------------------------------------------

    def _stream_key(self, channel: str) -> str:
        return f"{self.key_prefix}channel:{channel}"

    def _members_key(self, channel: str) -> str:
        return f"{self.key_prefix}members:{channel}"

    def _instance_key(self, instance: str) -> str:
        return f"{self.key_prefix}instance:{instance}"

    # -- the public API ---------------------------------------------------------------------------

    @property
    def per_process(self) -> bool:
        """False: every process using the same Redis shares the channels."""
        return False

    def health(self) -> Health:
        """``ok`` while connected; ``degraded`` (with the reason) before :meth:`run`, after
        it, and while Redis is unreachable."""
        return self._health

    async def publish(self, channel: str, data: str | bytes, event: str | None = None) -> str:
        """Append ``data`` to ``channel``'s stream; return its id.

        Subscribers (in every process) receive it through their process's reader, so it
        reaches them shortly after this returns, not before.

        Raises:
            ValueError: the channel name is invalid.
            BrokerUnavailable: Redis is unreachable (or refused the entry); the message may
                have been stored if Redis stopped answering while it was in flight.
        """
        key = self._stream_key(check_channel(channel))
        check_event_type(event)  # now, not in every reader
        redis = self._client()
        if isinstance(data, str):
            fields = {b"data": data.encode("utf-8", "surrogatepass"), b"kind": b"str"}
        else:
            fields = {b"data": bytes(data), b"kind": b"bytes"}
        if event is not None:
            fields[b"event"] = event.encode("utf-8", "surrogatepass")
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
        except _REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not publish to {channel!r}: {_describe(exc)}") from exc
        assert entry_id is not None  # XADD without NOMKSTREAM always adds
        return _text(entry_id)

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
        over every live instance.

        Each instance writes its own absolute count (``HSET``, not ``HINCRBY``), so counts
        can be stated again after an outage; a failed join (``delta > 0``) is not counted
        here, a failed leave is (the member is gone either way) and reaches Redis once it
        is back.

        Raises:
            BrokerUnavailable: Redis is unreachable.
        """
        check_channel(channel)
        previous = self._members.get(channel, 0)
        self._set_members(channel, max(0, previous + delta))
        try:
            return await self._count_members(self._client(), channel)
        except (BrokerUnavailable, *_REDIS_ERRORS) as exc:
            if delta > 0:
                self._set_members(channel, previous)
            self._stale_members.add(channel)
            if isinstance(exc, BrokerUnavailable):
                raise
            raise BrokerUnavailable(f"could not count members: {_describe(exc)}") from exc

    def format_id(self, position: Position) -> str:
        """A stream id: ``ms-seq``."""
        return f"{position[0]}-{position[1]}"

    def parse_id(self, channel: LocalChannel, id: str) -> Position:
        """The position of stream id ``id``, checked against what ``channel`` knows (its
        window, and what Redis held when it was last asked: the opening of this
        subscription did ask).

        Raises:
            HistoryLost: ``malformed`` (not ``ms-seq``), ``unknown`` (later than the stream's
                last id), ``expired`` (trimmed entries followed it); ``resume_from`` is the
                position just before the oldest message still held.
        """
        resume_from = self._resume_point(channel)
        match = _STREAM_ID.fullmatch(id)
        if match is None:
            raise HistoryLost("malformed", resume_from)
        position = (int(match[1]), int(match[2]))
        if max(position) > _MAX_ID_PART:
            raise HistoryLost("malformed", resume_from)
        if position > channel.window.head:
            raise HistoryLost("unknown", resume_from)
        if position < resume_from:
            raise HistoryLost("expired", resume_from)
        return position

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
        redis = self._new_client(blocking=False)
        failure: BrokerUnavailable | None = None
        was_connected = False
        try:
            # coredis's client owns a task group: what is raised in this block leaves it in an
            # ExceptionGroup, so the start-up failure is kept and raised after it, unwrapped.
            async with redis:
                try:
                    await redis.ping()
                    self._redis = redis
                    await self._beat(redis, restate_members=True)
                except _REDIS_ERRORS as exc:
                    failure = BrokerUnavailable(
                        f"cannot reach Redis at {_redact(self.url)}: {_describe(exc)}"
                    )
                    self._health = _unreachable(exc)
                else:
                    self._set_connected()
                    task_status.started()
                    try:
                        await self._serve()
                    finally:
                        was_connected = self._connected
                        self._connected = False
                        self._health = Health("degraded", "stopped")
                        self._fail_subscriptions("the Redis hub stopped")
        finally:
            self._redis = None
            self._connected = False
            self._running = False
            if was_connected:
                await self._leave()
        if failure is not None:
            raise failure

    # -- what the Broker base asks of a backend ---------------------------------------------------

    async def _open_channel(self, name: str) -> LocalChannel:
        """The channel's local state, its head brought up to Redis's last id: a new one
        starts its window there (new subscribers go live from it, the reader reads after
        it); an open one reads what its reader has not yet, so an id just published by
        another process is known here."""
        key = self._stream_key(name)
        while True:
            redis = self._client()
            try:
                state = await self._stream_state(redis, key)
            except _REDIS_ERRORS as exc:
                raise BrokerUnavailable(f"could not open {name!r}: {_describe(exc)}") from exc
            channel = self.channels.get(name)
            if channel is None:
                channel = _RedisChannel(name, key, self.history, state)
                self.channels[name] = channel
                self._channels_opened.set()
            else:
                channel = _redis_channel(channel)
                channel.held_after = state.held_after
                await self._bring_head_to(redis, channel, state)
            if self.channels.get(name) is channel:  # (not closed while we waited)
                break
        if not self._connected:  # Redis was lost meanwhile (and every subscription failed)
            if not channel.all_subscriptions:
                self._close_channel(channel)
            raise BrokerUnavailable(self._health.detail)
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
        local = _redis_channel(channel)
        redis = self._client()
        try:
            entries = await redis.xrange(
                local.key,
                "(" + self.format_id(position),
                self.format_id(local.window.base),
                count=_READ_BATCH,
            )
            # Asked after the read: trimming only moves forward, so if nothing after
            # `position` is trimmed now, nothing was when the read ran.
            state = await self._stream_state(redis, local.key)
        except _REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not read {channel.name!r}: {_describe(exc)}") from exc
        local.held_after = state.held_after
        if position < state.held_after:
            raise HistoryLost("expired", self._resume_point(local))
        return [self._message(local.name, entry) for entry in entries]

    # -- reading ----------------------------------------------------------------------------------

    async def _serve(self) -> None:
        """Read until Redis is lost, fail every subscription, reconnect; forever."""
        while True:
            error = await self._read_session()
            self._lose_connection(error)
            await self._reconnect()

    async def _read_session(self) -> Exception:
        """Read on a fresh reader client until a Redis error, and return it.

        A fresh client per session: coredis closes a connection whose blocking read failed
        or was cancelled (its reply may still come), and its pool does not get that slot
        back, so a one-connection pool is used for one session only.
        """
        reader = self._new_client(blocking=True)
        error: Exception | None = None
        async with reader:
            try:
                await self._read_forever(reader)
            except _REDIS_ERRORS as exc:
                error = exc
        assert error is not None  # _read_forever only ever ends by raising
        return error

    async def _read_forever(self, reader: coredis.Redis[bytes]) -> None:
        """XREAD BLOCK over every open channel, each after its window's head, appending
        what arrives and fanning it out; heartbeat between reads."""
        while True:
            if trio.current_time() >= self._next_beat:
                await self._beat(reader)
            reading = {
                channel.key: channel for channel in map(_redis_channel, self.channels.values())
            }
            if not reading:
                self._channels_opened = trio.Event()
                with trio.move_on_after(_IDLE_PROBE):
                    await self._channels_opened.wait()
                await reader.ping()
                continue
            after = {key: channel.window.head for key, channel in reading.items()}
            reply = await reader.xread(
                {key: self.format_id(head) for key, head in after.items()},
                count=_READ_BATCH,
                block=self.block_ms,
            )
            for raw_key, entries in (reply or {}).items():
                channel = reading[_text(raw_key)]
                if len(entries) >= min(_READ_BATCH, self.history.max_messages):
                    # Behind by a full batch: Redis may have trimmed entries this process
                    # never read.  Look before appending what did arrive.
                    await self._check_for_gap(reader, channel)
                self._ingest(channel, entries)

    def _ingest(self, channel: _RedisChannel, entries: tuple[StreamEntry, ...]) -> None:
        """Append entries (read after some past head) to the window and fan them out,
        skipping those already appended: the reader and :meth:`_open_channel` may both read
        the same entries, and whichever comes second adds only what is new."""
        if self.channels.get(channel.name) is not channel:
            return  # closed meanwhile
        now = time.time()
        for entry in entries:
            message = self._message(channel.name, entry)
            if message.position <= channel.window.head:
                continue
            channel.window.append(message, now)
            channel.fan_out(message)

    async def _bring_head_to(
        self, redis: coredis.Redis[bytes], channel: _RedisChannel, state: _StreamState
    ) -> None:
        """Read what the reader has not yet, up to ``state.last``."""
        if state.held_after > channel.window.head:
            self._lose_window(channel, state)
        while channel.window.head < state.last and self.channels.get(channel.name) is channel:
            try:
                entries = await redis.xrange(
                    channel.key,
                    "(" + self.format_id(channel.window.head),
                    self.format_id(state.last),
                    count=_READ_BATCH,
                )
            except _REDIS_ERRORS as exc:
                detail = _describe(exc)
                raise BrokerUnavailable(f"could not read {channel.name!r}: {detail}") from exc
            if not entries:
                break  # gone (a restarted Redis): the reader goes on from the head
            self._ingest(channel, entries)

    async def _check_for_gap(self, redis: coredis.Redis[bytes], channel: _RedisChannel) -> None:
        state = await self._stream_state(redis, channel.key)
        if state.held_after > channel.window.head and self.channels.get(channel.name) is channel:
            self._lose_window(channel, state)

    def _lose_window(self, channel: _RedisChannel, state: _StreamState) -> None:
        """Redis trimmed entries after the window's head, never read here: restart the
        window after the trim, and fail the channel's subscriptions (their clients resume
        and get an ``expired`` reset) rather than skip messages silently."""
        log.warning("channel %r: Redis trimmed entries this process had not read", channel.name)
        channel.window = Window(self.history, state.held_after)
        channel.held_after = state.held_after
        for subscription in tuple(channel.all_subscriptions):
            subscription.fail(
                BrokerUnavailable(
                    f"channel {channel.name!r}: this server fell behind and Redis trimmed "
                    "messages it had not read; reconnect to resume"
                )
            )

    # -- connection state -------------------------------------------------------------------------

    def _new_client(self, *, blocking: bool) -> coredis.Redis[bytes]:
        """A client: the general one (its pool multiplexes commands), or the reader's (one
        connection, its reply timeout longer than a blocking read)."""
        return coredis.Redis.from_url(
            self.url,
            decode_responses=False,
            retry_policy=NoRetryPolicy(),  # a retried XADD could store a message twice
            pool_timeout=self.timeout,
            connect_timeout=self.timeout,
            stream_timeout=self.timeout + (self.block_ms / 1000 if blocking else 0.0),
            max_connections=1 if blocking else None,
            client_name=f"rawstream-{'reader' if blocking else 'hub'}-{self.instance[:12]}",
        )

    def _client(self) -> coredis.Redis[bytes]:
        """The general client, or BrokerUnavailable at once when not connected (no waiting
        for a timeout while an outage is known)."""
        if self._redis is None:
            raise BrokerUnavailable("the Redis hub is not running: register app.service(hub.run)")
        if not self._connected:
            raise BrokerUnavailable(self._health.detail)
        return self._redis

    def _set_connected(self) -> None:
        self._connected = True
        self._health = Health("ok")

    def _lose_connection(self, error: Exception) -> None:
        """Redis is gone: degraded, and every subscription ends (clients reconnect and
        resume from their last id once it is back)."""
        self._connected = False
        self._health = _unreachable(error)
        log.warning("lost Redis at %s: %s", _redact(self.url), _describe(error))
        self._fail_subscriptions(f"lost the connection to Redis ({_describe(error)})")

    def _fail_subscriptions(self, reason: str) -> None:
        for channel in tuple(self.channels.values()):
            for subscription in tuple(channel.all_subscriptions):
                subscription.fail(BrokerUnavailable(reason))

    async def _reconnect(self) -> None:
        """PING with exponential backoff and jitter until Redis answers, then state this
        instance's heartbeat and member counts again; the next session reads on from each
        window's head, so nothing published meanwhile is skipped."""
        redis = self._redis
        assert redis is not None
        delay = _BACKOFF_FIRST
        while True:
            await trio.sleep(random.uniform(delay / 2, delay))
            try:
                await redis.ping()
                await self._beat(redis, restate_members=True)
            except _REDIS_ERRORS as exc:
                self._health = _unreachable(exc)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            log.info("Redis at %s is back", _redact(self.url))
            self._set_connected()
            return

    # -- member counts -----------------------------------------------------------------------------

    async def _count_members(self, redis: coredis.Redis[bytes], channel: str) -> int:
        """Write this instance's count, then sum the live instances' (dropping dead ones)."""
        key = self._members_key(channel)
        mine = self._members.get(channel, 0)
        if mine:
            await redis.hset(key, {self.instance: str(mine)})
        else:
            await redis.hdel(key, [self.instance])
        self._stale_members.discard(channel)
        fields = await redis.hgetall(key)
        others = [field for field in fields if _text(field) != self.instance]
        total = mine
        if others:
            beats = await redis.mget([self._instance_key(_text(field)) for field in others])
            dead = [field for field, beat in zip(others, beats, strict=True) if beat is None]
            total += sum(
                int(fields[field]) for field, beat in zip(others, beats, strict=True) if beat
            )
            if dead:
                await redis.hdel(key, dead)
        return total

    async def _beat(self, redis: coredis.Redis[bytes], *, restate_members: bool = False) -> None:
        """Refresh this instance's heartbeat.  If it had expired (others may have dropped
        this instance's counts as dead), or after an outage, state every count again."""
        previous = await redis.set(
            self._instance_key(self.instance), b"1", px=int(self.member_ttl * 1000), get=True
        )
        self._next_beat = trio.current_time() + self.member_ttl / 3
        if previous is None or restate_members or self._stale_members:
            for channel, count in tuple(self._members.items()):
                await redis.hset(self._members_key(channel), {self.instance: str(count)})
            for channel in tuple(self._stale_members):
                if channel not in self._members:
                    await redis.hdel(self._members_key(channel), [self.instance])
            self._stale_members.clear()

    async def _leave(self) -> None:
        """On the way out: withdraw this instance's counts and heartbeat (best effort; a
        crash leaves them to expire).  With a client of its own: the running one's
        connections are cancelled along with :meth:`run`."""
        with trio.CancelScope(shield=True), trio.move_on_after(self.timeout):
            try:
                async with self._new_client(blocking=False) as redis:
                    for channel in tuple(self._members):
                        await redis.hdel(self._members_key(channel), [self.instance])
                    await redis.delete([self._instance_key(self.instance)])
            except* _REDIS_ERRORS as failed:
                log.info("could not withdraw this hub's member counts: %s", failed.exceptions)
        self._members.clear()

    # -- helpers -----------------------------------------------------------------------------------

    async def _stream_state(self, redis: coredis.Redis[bytes], key: str) -> _StreamState:
        """``XINFO STREAM`` reduced to what replay needs (see :class:`_StreamState`)."""
        try:
            info = await redis.xinfo_stream(key)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return _NO_STREAM
            raise
        last = _parse_stream_id(info["last-generated-id"])
        first = info["first-entry"]
        added = info.get("entries-added")
        if first is None:  # empty: all that was added is gone
            held_after = last if added else (0, 0)
        elif added is not None and added <= info["length"]:
            held_after = (0, 0)  # nothing was ever trimmed
        else:
            held_after = _before(_parse_stream_id(first.identifier))
        return _StreamState(last, held_after)

    def _resume_point(self, channel: LocalChannel) -> Position:
        """Just before the oldest message held, locally or in Redis."""
        return min(channel.window.base, _redis_channel(channel).held_after)

    def _message(self, channel: str, entry: StreamEntry) -> Message:
        """The message a stream entry holds.  An entry written by someone else is read
        leniently: without ``kind``, its data is text if it is UTF-8."""
        position = _parse_stream_id(entry.identifier)
        fields = {_bytes(name): _bytes(value) for name, value in entry.field_values.items()}
        payload = fields.get(b"data", b"")
        data: str | bytes = payload
        if fields.get(b"kind") != b"bytes":
            with contextlib.suppress(UnicodeDecodeError):
                data = payload.decode("utf-8", "surrogatepass")
        raw_event = fields.get(b"event")
        event = None if raw_event is None else raw_event.decode("utf-8", "surrogatepass")
        message_id = self.format_id(position)
        published_at = position[0] / 1000  # the id's milliseconds: Redis's clock
        try:
            return Message(channel, message_id, position, data, event, published_at)
        except ValueError:  # an event type that would break SSE framing: not ours, dropped
            log.warning("channel %r, entry %s: invalid event type dropped", channel, message_id)
            return Message(channel, message_id, position, data, None, published_at)


def _redis_channel(channel: LocalChannel) -> _RedisChannel:
    assert isinstance(channel, _RedisChannel), channel
    return channel


def _parse_stream_id(value: str | bytes) -> Position:
    """A stream id as Redis writes it (the hub's own input: a bad one is a bug)."""
    ms, _, seq = _text(value).partition("-")
    return (int(ms), int(seq or 0))


def _before(position: Position) -> Position:
    """The position just before ``position`` (stream ids are pairs of 64-bit numbers)."""
    ms, seq = position
    if seq:
        return (ms, seq - 1)
    return (ms - 1, _MAX_ID_PART) if ms else (0, 0)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _unreachable(error: BaseException) -> Health:
    """The health of a hub that cannot reach Redis (publishes then fail at once with it)."""
    return Health("degraded", f"redis unreachable: {_describe(error)}")


def _describe(error: BaseException) -> str:
    """An error for a message: its text, or its type when it has none."""
    return str(error) or type(error).__name__


def _redact(url: str) -> str:
    """``url`` without its password (for logs and health details)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
