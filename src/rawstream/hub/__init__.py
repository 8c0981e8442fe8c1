"""Channels with replay: publish/subscribe, Last-Event-ID resume, SSE routes, WebSocket rooms.

* :class:`Hub` keeps channels in this process (the default);
  :class:`~rawstream.hub.redis.RedisHub` (``rawstream[redis]``) shares them between workers
  and nodes through Redis streams.  Both are :class:`Broker` and behave the same.
* :func:`sse_channels` serves channels as an SSE route; :class:`Rooms` as WebSocket rooms
  (over a broker that is also a :class:`MemberCounter`, as both hubs are).
"""

from .broker import Broker, BrokerUnavailable, Health, Subscription
from .memory import Hub
from .message import HistoryLimits, Message, Reset
from .open import BROKER_ENV, is_in_memory, open_broker
from .presence import MemberCounter
from .rooms import Member, Rooms
from .sse import channel_names, sse_channels, stream_subscription

__all__ = [
    "BROKER_ENV",
    "Broker",
    "BrokerUnavailable",
    "Health",
    "HistoryLimits",
    "Hub",
    "Member",
    "MemberCounter",
    "Message",
    "Reset",
    "Rooms",
    "Subscription",
    "channel_names",
    "is_in_memory",
    "open_broker",
    "sse_channels",
    "stream_subscription",
]
