"""Fixtures and helpers of the hub tests: the URL of a real redis-server of the test's own
(``redis_server_process``, in tests/conftest.py), and reading a subscription directly."""

from __future__ import annotations

import pytest
import trio
from support.redis import RedisServer

from rawstream.hub import Message, Reset, Subscription


@pytest.fixture
def redis_url(redis_server_process: RedisServer) -> str:
    """The URL of this test's redis-server."""
    return redis_server_process.url


async def take(subscription: Subscription, count: int) -> list[Message | Reset]:
    """The next ``count`` items of ``subscription`` (failing after 5 seconds)."""
    items: list[Message | Reset] = []
    with trio.fail_after(5):
        async for item in subscription:
            items.append(item)
            if len(items) == count:
                break
    return items


def ids(items: list[Message | Reset]) -> list[str]:
    """The ids of the messages among ``items`` (resets left out)."""
    return [item.id for item in items if isinstance(item, Message)]
