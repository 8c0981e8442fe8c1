"""WebSocket chat rooms (the demo's /ws/chat) through trio-websocket and websockets."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from support.websocket import next_json
from trio_websocket import ConnectionRejected, open_websocket_url
from websockets.sync.client import connect

from rawstream import demo
from rawstream.hub import Hub


@pytest.fixture
async def base(start_server) -> str:
    server = await start_server(demo.build_demo(Hub()))
    return f"ws://127.0.0.1:{server.port}"


def chat(message: dict[str, Any]) -> dict[str, str]:
    return json.loads(message["data"])  # type: ignore[no-any-return]


async def test_members_chat_and_see_the_member_count(base: str) -> None:
    async with open_websocket_url(f"{base}/ws/chat?room=r1&name=ann") as ann:
        welcome = await next_json(ann, type="welcome")
        assert (welcome["room"], welcome["members"]) == ("r1", 1)
        async with open_websocket_url(f"{base}/ws/chat?room=r1&name=bob") as bob:
            assert (await next_json(bob, type="welcome"))["members"] == 2
            # ann sees her own arrival counted, then bob's
            assert json.loads((await next_json(ann, event="presence"))["data"]) == {"members": 1}
            assert json.loads((await next_json(ann, event="presence"))["data"]) == {"members": 2}
            await bob.send_message("hi ann")
            for member in (ann, bob):
                said = await next_json(member, type="message", event=None)
                assert chat(said) == {"user": "bob", "text": "hi ann"}
                assert said["channel"] == "room:r1" and said["id"]
        left = await next_json(ann, event="presence")
        assert json.loads(left["data"]) == {"members": 1}


async def test_a_member_resumes_and_gets_what_it_missed(base: str) -> None:
    """Reconnecting with ?last_event_id= (the last id seen) replays what was said meanwhile."""
    async with open_websocket_url(f"{base}/ws/chat?room=r2&name=ann") as ann:
        await next_json(ann, type="welcome")
        async with open_websocket_url(f"{base}/ws/chat?room=r2&name=bob") as bob:
            last_seen = (await next_json(bob, type="welcome"))["id"]
            await ann.send_message("first")
            last_seen = (await next_json(bob, type="message", event=None))["id"]
        for text in ("while", "you", "were away"):
            await ann.send_message(text)
            await next_json(ann, type="message", event=None)
        async with open_websocket_url(
            f"{base}/ws/chat?room=r2&name=bob&last_event_id={last_seen}"
        ) as bob:
            await next_json(bob, type="welcome")
            missed = [chat(await next_json(bob, type="message", event=None)) for _ in range(3)]
    assert [m["text"] for m in missed] == ["while", "you", "were away"]


async def test_compressed_and_plain_members_get_the_same_messages(base: str) -> None:
    """A permessage-deflate member (websockets) and a plain one (trio-websocket): shared
    pre-framed bytes for one, compression for the other, the same text for both."""

    def compressed_member(ready: trio.Event, token: trio.lowlevel.TrioToken) -> list[str]:
        with connect(f"{base}/ws/chat?room=r3&name=zed") as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions", "").startswith(
                "permessage-deflate"
            )
            json.loads(str(ws.recv(timeout=5)))  # welcome
            trio.from_thread.run_sync(ready.set, trio_token=token)
            texts: list[str] = []
            while len(texts) < 2:
                message = json.loads(str(ws.recv(timeout=5)))
                if message["type"] == "message" and message["event"] is None:
                    texts.append(json.loads(message["data"])["text"])
            return texts

    async with open_websocket_url(f"{base}/ws/chat?room=r3&name=ann") as ann:
        await next_json(ann, type="welcome")
        ready = trio.Event()
        texts: list[str] = []

        async def run_member() -> None:
            texts.extend(
                await trio.to_thread.run_sync(
                    compressed_member, ready, trio.lowlevel.current_trio_token()
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_member)
            with trio.fail_after(5):
                await ready.wait()
            await ann.send_message("x" * 5000)
            await ann.send_message("short")
            seen = [chat(await next_json(ann, type="message", event=None))["text"] for _ in "12"]
    assert texts == seen == ["x" * 5000, "short"]


async def test_invalid_room_name_is_refused(base: str) -> None:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"{base}/ws/chat?room=a,b"):
            pass
    assert rejected.value.status_code == 400
