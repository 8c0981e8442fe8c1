"""The Redis hub's link to Redis: the clients it opens, and whether Redis is reachable now.

A hub uses two kinds of client (:meth:`Link.new_client`).  The general one, whose pool
multiplexes commands, serves publishes, member counts and replays.  The reader's has one
connection of its own, with a reply timeout longer than a blocking read, so publishes never
queue behind a blocked ``XREAD``.  Neither retries a command: a retried ``XADD`` could store
a message twice.

Every part of the hub asks its :class:`Link` for the general client before calling Redis:
while Redis is known to be unreachable that fails at once with
:class:`~rawstream.hub.broker.BrokerUnavailable`, instead of waiting for a timeout.  The
reader (:mod:`rawstream.hub.redis.reader`) is what marks the link down and up again.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import anyio
import coredis
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy

from ..broker import BrokerUnavailable, Health

__all__ = ["REDIS_ERRORS", "Link", "describe", "redact", "unreachable"]

#: What a failed Redis call raises: coredis errors (connection lost, error replies), a reply
#: later than the timeout, socket errors coredis does not wrap, and anyio's errors for a
#: command given to a connection that has just closed.
REDIS_ERRORS = (
    RedisError,
    TimeoutError,
    OSError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
)


class Link:
    """How one hub instance reaches Redis, and its state: connected or not, and its health.

    Args:
        url: the Redis URL.
        instance: the hub instance's id (it names the clients, for ``CLIENT LIST``).
        block_ms: the longest blocking read (the reader's client waits this much longer).
        timeout: seconds to wait for a connection or a reply.
    """

    def __init__(self, url: str, instance: str, *, block_ms: int, timeout: float) -> None:
        self.url = url
        self.instance = instance
        self.block_ms = block_ms
        self.timeout = timeout
        #: The general client, while the hub runs.
        self.general: coredis.Redis[bytes] | None = None
        self.connected = False
        self.health = Health("degraded", "not running: register app.service(hub.run)")

    def new_client(self, *, blocking: bool) -> coredis.Redis[bytes]:
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

    def client(self) -> coredis.Redis[bytes]:
        """The general client, or BrokerUnavailable at once when not connected (no waiting
        for a timeout while an outage is known)."""
        if self.general is None:
            raise BrokerUnavailable("the Redis hub is not running: register app.service(hub.run)")
        if not self.connected:
            raise BrokerUnavailable(self.health.detail)
        return self.general

    def up(self) -> None:
        """Redis answers: connected, health ``ok``."""
        self.connected = True
        self.health = Health("ok")

    def down(self, health: Health) -> None:
        """Redis is not reachable (or the hub stopped): not connected, and why."""
        self.connected = False
        self.health = health


def unreachable(error: BaseException) -> Health:
    """The health of a hub that cannot reach Redis (publishes then fail at once with it)."""
    return Health("degraded", f"redis unreachable: {describe(error)}")


def describe(error: BaseException) -> str:
    """An error for a message: its text, or its type when it has none."""
    return str(error) or type(error).__name__


def redact(url: str) -> str:
    """``url`` without its password (for logs and health details)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
