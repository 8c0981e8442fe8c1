"""The chat pane in two tabs: a WebSocket room where each tab sees both tabs' messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from support.redis import RedisServer

from .conftest import DemoProcess, publish_through_redis


def join(page: Any, name: str) -> None:
    """Join the room as ``name`` and wait until the pane says it is live."""
    page.fill("#chat-name", name)
    page.click("#chat-join-button")
    page.wait_for_selector("#chat .badge[data-state='live']")


def say(page: Any, text: str) -> None:
    """Send ``text`` from this tab."""
    page.fill("#chat-text", text)
    page.click("#chat-send-button")


def messages(page: Any) -> list[tuple[str, str]]:
    """The chat log as (user, text) pairs, in order."""
    return [
        (item.query_selector(".user").text_content(), item.query_selector(".text").text_content())
        for item in page.query_selector_all("#chat-log li[data-id]")
    ]


def test_two_tabs_chat_with_each_other(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """Two tabs join the room, presence says 2 in both, and both see both messages (text with
    markup shown as text) in the order they were sent."""
    demo = start_demo()
    ann = new_page(demo.url)
    bob = new_page(demo.url, tab_of=ann)
    join(ann, "ann")
    join(bob, "bob")
    for page in (ann, bob):
        page.wait_for_selector("#chat-presence[data-members='2']")

    say(ann, "hello from ann")
    bob.wait_for_selector("#chat-log li[data-id] >> text=hello from ann")
    say(bob, "hi ann, <b>bob</b> here")
    expected = [("ann", "hello from ann"), ("bob", "hi ann, <b>bob</b> here")]
    for page in (ann, bob):
        page.wait_for_selector("#chat-log li[data-id]:nth-child(2)")
        assert messages(page) == expected
        assert page.query_selector("#chat-log b") is None  # markup stayed text
        assert page.text_content("#chat-presence") == "2 here"
    # Each tab marks its own messages.
    assert ann.query_selector_all("#chat-log li.mine .text")[0].text_content() == "hello from ann"
    assert bob.query_selector_all("#chat-log li.mine .text")[0].text_content() == expected[1][1]


def test_chat_comes_back_after_a_restart_with_what_was_said_meanwhile(
    redis_server_process: RedisServer,
    start_demo: Callable[..., DemoProcess],
    new_page: Callable[..., Any],
) -> None:
    """The server restarts (its room in Redis): the tab shows it is reconnecting, rejoins by
    itself with the last id it saw, and shows the message said while it was away, once."""
    demo = start_demo("--broker", redis_server_process.url)
    page = new_page(demo.url)
    join(page, "ann")
    say(page, "before the restart")
    page.wait_for_selector("#chat-log li[data-id] >> text=before the restart")

    demo.stop()
    page.wait_for_selector("#chat .badge[data-state='reconnecting']")
    said = json.dumps({"user": "eve", "text": "while you were away"})
    publish_through_redis(redis_server_process.url, "room:lobby", [(said, None)])
    demo.start()

    page.wait_for_selector("#chat .badge[data-state='live']", timeout=20_000)
    page.wait_for_selector("#chat-log li[data-id] >> text=while you were away")
    say(page, "after the restart")
    page.wait_for_selector("#chat-log li[data-id] >> text=after the restart")
    assert messages(page) == [
        ("ann", "before the restart"),
        ("eve", "while you were away"),
        ("ann", "after the restart"),
    ]
