"""examples/chat_room.py: members chat, see the count, and resume what they missed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import LoadExample
from support.websocket import next_json
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url


@pytest.fixture
async def base(start_server, load_example: LoadExample) -> str:
    server = await start_server(load_example("chat_room").app)
    return f"ws://127.0.0.1:{server.port}/chat"


async def next_chat(ws: WebSocketConnection) -> dict[str, Any]:
    """The next chat line (a message without an event type), with its id."""
    message = await next_json(ws, type="message", event=None)
    return {"id": message["id"], **json.loads(message["data"])}


async def test_a_message_reaches_every_member_with_the_count(base: str) -> None:
    """What one member says reaches the other (and itself); the welcome counts members."""
    async with open_websocket_url(f"{base}?room=r&name=ann") as ann:
        assert (await next_json(ann, type="welcome"))["members"] == 1
        async with open_websocket_url(f"{base}?room=r&name=bob") as bob:
            assert (await next_json(bob, type="welcome"))["members"] == 2
            await ann.send_message("hello bob")
            heard, echoed = await next_chat(bob), await next_chat(ann)
        # (the presence messages of both arrivals came before the chat line, and were skipped)
        left = await next_json(ann, event="presence")
    assert json.loads(left["data"]) == {"members": 1}
    assert heard == echoed
    assert (heard["user"], heard["text"]) == ("ann", "hello bob")


async def test_a_member_who_comes_back_gets_what_was_said_meanwhile(base: str) -> None:
    """Reconnecting with ?last_event_id= replays exactly the missed lines, then live ones."""
    async with open_websocket_url(f"{base}?room=r&name=ann") as ann:
        await next_json(ann, type="welcome")
        async with open_websocket_url(f"{base}?room=r&name=bob") as bob:
            await next_json(bob, type="welcome")
            await ann.send_message("before")
            last_seen = (await next_chat(bob))["id"]
        for text in ("one", "two", "three"):
            await ann.send_message(text)
            await next_chat(ann)
        async with open_websocket_url(f"{base}?room=r&name=bob&last_event_id={last_seen}") as bob:
            await next_json(bob, type="welcome")
            missed = [(await next_chat(bob))["text"] for _ in range(3)]
            await ann.send_message("live")
            live = (await next_chat(bob))["text"]
    assert missed == ["one", "two", "three"]
    assert live == "live"


async def test_a_line_too_long_gets_an_error_not_a_broadcast(base: str) -> None:
    """Over MAX_TEXT characters: an error to the sender; the next line still goes out."""
    async with open_websocket_url(f"{base}?room=r&name=ann") as ann:
        await next_json(ann, type="welcome")
        await ann.send_message("x" * 2001)
        assert "2000" in (await next_json(ann, type="error"))["detail"]
        await ann.send_message("short")
        assert (await next_chat(ann))["text"] == "short"


@pytest.mark.parametrize("query", ["room=a,b&name=ann", "room=r&name=%3Cscript%3E"])
async def test_a_bad_room_or_name_is_refused_with_400(base: str, query: str) -> None:
    """Invalid names are refused before the handshake, with a status, not a dead socket."""
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"{base}?{query}"):
            pass
    assert rejected.value.status_code == 400
