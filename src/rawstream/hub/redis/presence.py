"""Room presence over Redis: member counts summed across hub instances, kept honest by
heartbeats.

Each hub instance writes its own count of a channel's members as one field of the hash
``{key_prefix}members:CHANNEL`` (the field is the instance's id), next to a heartbeat key
``{key_prefix}instance:ID`` that it refreshes with a TTL while it runs.  A count is the sum
over the instances whose heartbeat is alive; the fields of dead ones (a crashed worker) are
removed by whoever counts next.

An instance writes absolute counts (``HSET``, not ``HINCRBY``), so it can state them all again
after an outage or after its heartbeat expired: the sum then heals by itself.
"""

from __future__ import annotations

import logging

import coredis
import trio

from ..broker import BrokerUnavailable
from .codec import Keys, text
from .link import REDIS_ERRORS, Link, describe

__all__ = ["Presence"]

log = logging.getLogger("rawstream.hub")


class Presence:
    """This instance's member counts, and their reflection in Redis.

    Args:
        link: how to reach Redis.
        keys: where the counts and heartbeats live.
        ttl: seconds this instance's counts outlive its last heartbeat.
    """

    def __init__(self, link: Link, keys: Keys, ttl: float) -> None:
        self._link = link
        self._keys = keys
        self._ttl = ttl
        self._instance = link.instance
        self._counts: dict[str, int] = {}  # this instance's members, per channel
        self._stale: set[str] = set()  # counts Redis may have wrong (set when back)
        self._next_beat = 0.0  # trio clock time of the next heartbeat

    async def count(self, channel: str, delta: int) -> int:
        """Add ``delta`` to this instance's member count of ``channel``; return the count
        over every live instance.

        A failed join (``delta > 0``) is not counted here; a failed leave is (the member is
        gone either way), and reaches Redis once it is back.

        Raises:
            BrokerUnavailable: Redis is unreachable.
        """
        previous = self._counts.get(channel, 0)
        self._set(channel, max(0, previous + delta))
        try:
            return await self._total(self._link.client(), channel)
        except (BrokerUnavailable, *REDIS_ERRORS) as exc:
            if delta > 0:
                self._set(channel, previous)
            self._stale.add(channel)
            if isinstance(exc, BrokerUnavailable):
                raise
            raise BrokerUnavailable(f"could not count members: {describe(exc)}") from exc

    def beat_due(self) -> bool:
        """Whether the heartbeat needs refreshing (every third of the TTL)."""
        return trio.current_time() >= self._next_beat

    async def beat(self, redis: coredis.Redis[bytes], *, restate: bool = False) -> None:
        """Refresh this instance's heartbeat.  If it had expired (others may have dropped
        this instance's counts as dead), after an outage (``restate``), or with counts that
        did not reach Redis, state every count again."""
        previous = await redis.set(
            self._keys.instance(self._instance), b"1", px=int(self._ttl * 1000), get=True
        )
        self._next_beat = trio.current_time() + self._ttl / 3
        if previous is None or restate or self._stale:
            for channel, count in tuple(self._counts.items()):
                await redis.hset(self._keys.members(channel), {self._instance: str(count)})
            for channel in tuple(self._stale):
                if channel not in self._counts:
                    await redis.hdel(self._keys.members(channel), [self._instance])
            self._stale.clear()

    async def leave(self) -> None:
        """On the way out: withdraw this instance's counts and heartbeat (best effort; a
        crash leaves them to expire).  With a client of its own: the running one's
        connections are cancelled along with the hub's ``run``."""
        with trio.CancelScope(shield=True), trio.move_on_after(self._link.timeout):
            try:
                async with self._link.new_client(blocking=False) as redis:
                    for channel in tuple(self._counts):
                        await redis.hdel(self._keys.members(channel), [self._instance])
                    await redis.delete([self._keys.instance(self._instance)])
            except* REDIS_ERRORS as failed:
                log.info("could not withdraw this hub's member counts: %s", failed.exceptions)
        self._counts.clear()

    async def _total(self, redis: coredis.Redis[bytes], channel: str) -> int:
        """Write this instance's count, then sum the live instances' (dropping dead ones)."""
        key = self._keys.members(channel)
        mine = self._counts.get(channel, 0)
        if mine:
            await redis.hset(key, {self._instance: str(mine)})
        else:
            await redis.hdel(key, [self._instance])
        self._stale.discard(channel)
        fields = await redis.hgetall(key)
        others = [field for field in fields if text(field) != self._instance]
        total = mine
        if others:
            beats = await redis.mget([self._keys.instance(text(field)) for field in others])
            dead = [field for field, beat in zip(others, beats, strict=True) if beat is None]
            total += sum(
                int(fields[field]) for field, beat in zip(others, beats, strict=True) if beat
            )
            if dead:
                await redis.hdel(key, dead)
        return total

    def _set(self, channel: str, count: int) -> None:
        """Record this instance's member count of ``channel`` (0: forget the channel)."""
        if count:
            self._counts[channel] = count
        else:
            self._counts.pop(channel, None)
