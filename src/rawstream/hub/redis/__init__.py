"""Channels in Redis streams, shared by every worker and node: :class:`RedisHub`.

Same semantics as the in-memory :class:`~rawstream.hub.memory.Hub` (subscriptions, cursors,
replay, resets and fan-out are the shared code of :mod:`rawstream.hub.broker`); what differs
is where messages live.  Needs the ``rawstream[redis]`` extra (coredis): ``import
rawstream.hub`` does not import this package, :func:`~rawstream.hub.open.open_broker` does
when it is given a ``redis://`` URL.

**Storage.**  Channel ``NAME`` is the Redis stream ``{key_prefix}channel:NAME``.  Each publish
is one ``XADD`` whose entry holds ``data`` (the payload as bytes), ``kind`` (``str`` or
``bytes``: what the publisher gave, so subscribers get the same type back) and, when set,
``event``.  The stream id Redis assigns (``ms-seq``) is the message's id as clients see it, so
every worker and node agrees on ids, and a client can resume on any of them.  Room member
counts live next to the streams, in ``{key_prefix}members:NAME`` and
``{key_prefix}instance:ID``.

One job per module, each importing only those above it:

* :mod:`~rawstream.hub.redis.codec`: keys, stream ids as hub positions, entries as messages
  (no I/O);
* :mod:`~rawstream.hub.redis.link`: the clients, and whether Redis is reachable now;
* :mod:`~rawstream.hub.redis.presence`: member counts across instances, and heartbeats;
* :mod:`~rawstream.hub.redis.reader`: the ``XREAD`` loop, and outages (reconnecting, health);
* :mod:`~rawstream.hub.redis.hub`: :class:`RedisHub`, publishing and replay (trimming).
"""

from .hub import RedisHub

__all__ = ["RedisHub"]
