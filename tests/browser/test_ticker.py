"""The ticker pane across a server restart: EventSource reconnects by itself, resumes with
Last-Event-ID, and the page ends up with exactly the events the channel holds, in order."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import trio
from support.redis import RedisServer

from .conftest import DemoProcess, publish_through_redis

#: Where RedisHub keeps the ticker channel (see rawstream.hub.redis: "Storage").
TICKER_KEY = "rawstream:channel:ticker"


def page_ids(page: Any) -> list[str]:
    """The ids of the ticker events the page received, oldest first (the list shows the
    newest first; reset notes carry no id)."""
    ids: list[str] = page.eval_on_selector_all(
        "#ticker-list li[data-id]", "items => items.map(item => item.dataset.id)"
    )
    return ids[::-1]


def wait_for_ticks(page: Any, count: int, timeout_ms: float = 15_000) -> None:
    """Wait until the page's ticker list holds at least ``count`` events."""
    page.wait_for_selector(f"#ticker-list li[data-id]:nth-child({count})", timeout=timeout_ms)


def stored_ids(url: str, first: str, last: str) -> list[str]:
    """The ids Redis holds in the ticker stream from ``first`` to ``last`` (XRANGE, read
    directly: the ground truth, not the hub's replay the page relied on)."""
    import coredis

    async def read() -> list[str]:
        client = coredis.Redis.from_url(url, decode_responses=True)
        with trio.fail_after(10):
            async with client:
                entries = await client.xrange(TICKER_KEY, first, last)
        return [str(entry.identifier) for entry in entries]

    return trio.run(read)


def test_ticker_resumes_after_a_restart_without_losing_an_event(
    redis: RedisServer, start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """Ticks arrive; the server stops (SIGTERM) and three ticks are published while it is
    down; it starts again on the same port.  The page shows that it reconnected, and the ids
    it received are exactly those in the channel over that time: no loss, no duplicate, in
    order, the three published during the outage included."""
    demo = start_demo("--broker", redis.url)
    page = new_page(demo.url)
    wait_for_ticks(page, 3)
    assert page.text_content("#ticker-reconnects") == "0"

    demo.stop()
    page.wait_for_selector("#ticker .badge[data-state='reconnecting']")
    ticks = [json.dumps({"tick": tick, "time": time.time()}) for tick in (9001, 9002, 9003)]
    while_down = publish_through_redis(redis.url, "ticker", [(tick, "tick") for tick in ticks])
    received_before = len(page_ids(page))
    demo.start()  # same port

    # The browser's own reconnection (after the retry: the server sent as it stopped) gets
    # the outage's ticks from the replay, then new live ones.
    page.wait_for_selector("#ticker-reconnects >> text=1", timeout=30_000)
    page.wait_for_selector("#ticker .badge[data-state='live']")
    wait_for_ticks(page, received_before + len(while_down) + 2)

    received = page_ids(page)
    assert received == stored_ids(redis.url, received[0], received[-1])
    assert len(set(received)) == len(received)
    position = received.index(while_down[0])
    assert received[position : position + 3] == while_down
    assert page.text_content("#ticker-reconnects") == "1"
    assert page.query_selector("#ticker-list li.note") is None  # no reset: nothing lost
    ticks = page.eval_on_selector_all(
        "#ticker-list li[data-id] .tick", "spans => spans.map(span => span.textContent)"
    )[::-1]
    assert ticks[position : position + 3] == ["tick 9001", "tick 9002", "tick 9003"]
