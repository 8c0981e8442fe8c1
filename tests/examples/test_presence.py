"""examples/presence.py: who is here, the member count, and live cursors, over WebSocket."""

from __future__ import annotations

import json
from types import ModuleType

import httpx
import pytest
import trio
from conftest import LoadExample
from support.websocket import next_json
from trio_websocket import ConnectionRejected, open_websocket_url


@pytest.fixture
def presence(load_example: LoadExample) -> ModuleType:
    return load_example("presence")


@pytest.fixture
async def port(start_server, presence: ModuleType) -> int:
    server = await start_server(presence.app)
    return int(server.port)


def url(port: int, name: str, room: str = "lobby") -> str:
    return f"ws://127.0.0.1:{port}/presence?room={room}&name={name}"


async def test_members_come_and_go_and_the_count_follows(port: int) -> None:
    """Welcome snapshots list who is here; join and leave update the count for the rest."""
    async with open_websocket_url(url(port, "ann")) as ann:
        welcome = await next_json(ann, type="welcome")
        assert welcome["count"] == 1
        assert [m["name"] for m in welcome["members"]] == ["ann"]
        async with open_websocket_url(url(port, "bob")) as bob:
            bob_welcome = await next_json(bob, type="welcome")
            assert bob_welcome["count"] == 2
            assert [m["name"] for m in bob_welcome["members"]] == ["ann", "bob"]
            joined = await next_json(ann, type="join")
            assert (joined["count"], joined["member"]["name"]) == (2, "bob")
            assert joined["member"]["id"] == bob_welcome["you"]
            async with open_websocket_url(url(port, "eve", room="other")) as eve:
                assert (await next_json(eve, type="welcome"))["count"] == 1  # another room
        left = await next_json(ann, type="leave")
    assert (left["id"], left["count"]) == (bob_welcome["you"], 1)


async def test_a_member_that_drops_is_counted_out(port: int) -> None:
    """A connection that ends without a close handshake still leaves (the finally runs)."""
    async with open_websocket_url(url(port, "ann")) as ann:
        await next_json(ann, type="welcome")
        # bob: a handshake over a bare TCP connection, then the connection just closes
        bob = await trio.open_tcp_stream("127.0.0.1", port)
        await bob.send_all(
            b"GET /presence?room=lobby&name=bob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await next_json(ann, type="join"))["count"] == 2
        await bob.aclose()  # no close frame
        assert (await next_json(ann, type="leave"))["count"] == 1
        async with open_websocket_url(url(port, "cy")) as cy:  # bob is gone from the state too
            assert [m["name"] for m in (await next_json(cy, type="welcome"))["members"]] == [
                "ann",
                "cy",
            ]


async def test_cursor_moves_reach_others_coalesced(port: int, presence: ModuleType) -> None:
    """A burst of moves reaches the others as fewer messages, ending at the latest position;
    the mover does not get its own cursor back."""
    presence.CURSOR_INTERVAL = 0.2
    async with open_websocket_url(url(port, "ann")) as ann:
        ann_id = (await next_json(ann, type="welcome"))["you"]
        async with open_websocket_url(url(port, "bob")) as bob:
            bob_id = (await next_json(bob, type="welcome"))["you"]
            await next_json(ann, type="join")
            for i in range(1, 51):
                await bob.send_message(json.dumps({"x": i / 50, "y": 0.5}))
            cursors = [await next_json(ann, type="cursor")]
            while cursors[-1]["x"] != 1.0:
                cursors.append(await next_json(ann, type="cursor"))
            # bob's own cursor never came back to him: his next message is ann's.
            await ann.send_message(json.dumps({"x": 0.25, "y": 0.75}))
            own = {"type": "cursor", "id": ann_id, "x": 0.25, "y": 0.75}
            assert await next_json(bob, type="cursor") == own
    assert len(cursors) < 50
    assert cursors[-1] == {"type": "cursor", "id": bob_id, "x": 1.0, "y": 0.5}


@pytest.mark.parametrize(
    "bad",
    [
        "hello",
        '{"x": 2, "y": 0}',
        '{"x": "NaN", "y": 0}',
        "[1, 2]",
        '{"x": 1' + "0" * 400 + ', "y": 0}',  # an int too large for a float: OverflowError
        '{"x": 0, "y": 1e400}',  # read as inf
    ],
)
async def test_a_bad_position_gets_an_error(port: int, bad: str) -> None:
    async with open_websocket_url(url(port, "ann")) as ann:
        await next_json(ann, type="welcome")
        await ann.send_message(bad)
        assert "between 0 and 1" in (await next_json(ann, type="error"))["detail"]


async def test_a_bad_name_is_refused_with_400(port: int) -> None:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url(port, "")):
            pass
    assert rejected.value.status_code == 400


async def test_the_page_is_served(port: int) -> None:
    """GET / is a self-contained page (no external script) that opens /presence."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/")
    assert response.headers["content-type"].startswith("text/html")
    assert "/presence?" in response.text and "src=" not in response.text
