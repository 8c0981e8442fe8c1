"""Room presence is a protocol of its own: both hubs count members, Rooms needs a broker that
does, and refuses one that does not (counts across processes: tests/hub/test_redis_hub.py)."""

from __future__ import annotations

import pytest
from conftest import require

from rawstream.hub import Broker, Hub, MemberCounter, Rooms
from rawstream.hub.broker import HistoryLost, LocalChannel
from rawstream.hub.message import Position


class PubSubOnly(Broker):
    """A broker with publish/subscribe and nothing else."""

    async def publish(self, channel: str, data: str | bytes, event: str | None = None) -> str:
        raise NotImplementedError

    async def _open_channel(self, name: str) -> LocalChannel:
        raise NotImplementedError

    def format_id(self, position: Position) -> str:
        return str(position[0])

    def parse_id(self, channel: LocalChannel, id: str) -> Position:
        raise HistoryLost("malformed", channel.window.base)


def test_rooms_refuses_a_broker_that_does_not_count_members() -> None:
    broker = PubSubOnly()
    assert not isinstance(broker, MemberCounter)
    with pytest.raises(TypeError, match="PubSubOnly is not one"):
        Rooms(broker)


def test_both_hubs_are_member_counters() -> None:
    require("coredis", "the Redis hub's client")
    from rawstream.hub.redis import RedisHub

    for hub in (Hub(), RedisHub("redis://127.0.0.1:1/0")):
        assert isinstance(hub, MemberCounter)
        assert Rooms(hub).hub is hub


async def test_the_in_memory_hub_counts_this_process_members() -> None:
    hub = Hub()
    assert await hub.count_member("room:a", +1) == 1
    assert await hub.count_member("room:a", +1) == 2
    assert await hub.count_member("room:b", +1) == 1
    assert await hub.count_member("room:a", -1) == 1
    assert await hub.count_member("room:a", -5) == 0  # never below zero
    assert await hub.count_member("room:a", +1) == 1
