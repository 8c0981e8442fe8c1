"""The ticker pane across a server restart: EventSource reconnects by itself, resumes with
Last-Event-ID, and the page ends up with exactly the events the channel holds, in order."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
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
    """Wait until the page's ticker list holds at least ``count`` events (notes not counted)."""
    page.wait_for_function(
        "count => document.querySelectorAll('#ticker-list li[data-id]').length >= count",
        arg=count,
        timeout=timeout_ms,
    )


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
    redis_server_process: RedisServer,
    start_demo: Callable[..., DemoProcess],
    new_page: Callable[..., Any],
) -> None:
    """Ticks arrive; the server stops (SIGTERM) and three ticks are published while it is
    down; it starts again on the same port.  The page shows that it reconnected, and the ids
    it received are exactly those in the channel over that time: no loss, no duplicate, in
    order, the three published during the outage included."""
    demo = start_demo("--broker", redis_server_process.url)
    page = new_page(demo.url)
    wait_for_ticks(page, 3)
    assert page.text_content("#ticker-reconnects") == "0"

    demo.stop()
    page.wait_for_selector("#ticker .badge[data-state='reconnecting']")
    ticks = [json.dumps({"tick": tick, "time": time.time()}) for tick in (9001, 9002, 9003)]
    while_down = publish_through_redis(
        redis_server_process.url, "ticker", [(tick, "tick") for tick in ticks]
    )
    received_before = len(page_ids(page))
    demo.start()  # same port

    # The browser's own reconnection (after the retry: the server sent as it stopped) gets
    # the outage's ticks from the replay, then new live ones.
    page.wait_for_selector("#ticker-reconnects >> text=1", timeout=30_000)
    page.wait_for_selector("#ticker .badge[data-state='live']")
    wait_for_ticks(page, received_before + len(while_down) + 2)

    received = page_ids(page)
    assert received == stored_ids(redis_server_process.url, received[0], received[-1])
    assert len(set(received)) == len(received)
    position = received.index(while_down[0])
    assert received[position : position + 3] == while_down
    assert page.text_content("#ticker-reconnects") == "1"
    assert page.query_selector("#ticker-list li.note.reset") is None  # no reset: nothing lost
    # One "reconnected" line, just above (newer than) the last tick of the old process.
    notes = page.eval_on_selector_all(
        "#ticker-list li", "items => items.map(item => item.className)"
    )[::-1]
    assert notes.count("note reconnected") == 1
    assert notes.index("note reconnected") == received_before
    ticks = page.eval_on_selector_all(
        "#ticker-list li[data-id] .tick", "spans => spans.map(span => span.textContent)"
    )[::-1]
    assert ticks[position : position + 3] == ["tick 9001", "tick 9002", "tick 9003"]


def test_a_restart_without_a_shared_broker_says_reset_and_reconnected(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """With the in-memory hub the new process cannot resume the old one's ids: the list says
    it reconnected and that history was reset, so its "tick 1" below the old ticks is
    explained, not silently restarted."""
    demo = start_demo()
    page = new_page(demo.url)
    wait_for_ticks(page, 2)
    demo.stop()
    page.wait_for_selector("#ticker .badge[data-state='reconnecting']")
    before = len(page_ids(page))
    demo.start()
    page.wait_for_selector("#ticker-list li.note.reconnected", timeout=30_000)
    page.wait_for_selector("#ticker-list li.note.reset")
    wait_for_ticks(page, before + 1)
    classes = page.eval_on_selector_all(
        "#ticker-list li", "items => items.map(item => item.className)"
    )[::-1]
    assert classes[before] == "note reconnected"
    assert classes[before + 1] == "note reset"
    assert "history reset (unknown)" in page.text_content("#ticker-list li.note.reset")


def test_unexpected_payloads_are_shown_as_raw_text(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """Anyone can publish to the ticker channel (and to the chat room's): ``null``, text that
    is not JSON, a tick with an impossible time, markup.  Each shows in the list as the raw
    text it is (marked ``raw``), no script error (the fixture fails the test on one), and
    ticks keep arriving after them."""
    demo = start_demo()
    page = new_page(demo.url)
    page.fill("#chat-name", "ann")
    page.click("#chat-join-button")
    page.wait_for_selector("#chat .badge[data-state='live']")
    wait_for_ticks(page, 1)
    payloads = [
        ("null", "tick"),
        ("not json", "tick"),
        ('{"tick": 5, "time": 1e300}', "tick"),  # Intl throws a RangeError on that date
        ("<b>[1, 2]</b>", None),  # no event type: a "message"
    ]
    ids = []
    for data, event in payloads:
        query = {"channel": "ticker", **({"event": event} if event else {})}
        response = httpx.post(f"{demo.url}/publish", params=query, content=data, timeout=10)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    for data in ("null", "42", '{"user": 1}'):
        response = httpx.post(
            f"{demo.url}/publish", params={"channel": "room:lobby"}, content=data, timeout=10
        )
        assert response.status_code == 200, response.text

    page.wait_for_selector(f"#ticker-list li[data-id='{ids[-1]}']")
    shown = {
        id: page.eval_on_selector(
            f"#ticker-list li[data-id='{id}']", "li => [li.className, li.textContent]"
        )
        for id in ids
    }
    assert shown[ids[0]] == ["raw", "null" + ids[0]]
    assert shown[ids[1]] == ["raw", "not json" + ids[1]]
    assert shown[ids[2]] == ["", "tick 5" + ids[2]]  # a tick, its time left blank
    assert shown[ids[3]] == ["raw", "<b>[1, 2]</b>" + ids[3]]
    assert page.query_selector("#ticker-list b") is None  # text, never markup
    page.wait_for_function("() => document.querySelectorAll('#chat-log li.raw').length === 3")
    raw_chat = page.eval_on_selector_all(
        "#chat-log li.raw .text", "spans => spans.map(span => span.textContent)"
    )
    assert raw_chat == ["null", "42", '{"user": 1}']
    count = len(page_ids(page))
    wait_for_ticks(page, count + 1)  # the ticker still works
