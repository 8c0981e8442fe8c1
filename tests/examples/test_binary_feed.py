"""examples/binary_feed.py: msgpack frames over WebSocket, the same bytes for every client."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest
import trio
from conftest import EXAMPLES, LoadExample, require
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url


@pytest.fixture
def msgpack() -> ModuleType:
    return require("msgpack", "the binary feed example packs its frames with it")


@pytest.fixture
async def url(start_server, load_example: LoadExample, msgpack: ModuleType) -> str:
    feed = load_example("binary_feed")
    feed.INTERVAL = 0.005
    server = await start_server(feed.app)
    return f"ws://127.0.0.1:{server.port}/feed"


async def frames(ws: WebSocketConnection, count: int) -> list[bytes]:
    """The next ``count`` binary messages (a text one would be a gap marker: none expected)."""
    received: list[bytes] = []
    with trio.fail_after(10):
        while len(received) < count:
            message = await ws.get_message()
            assert isinstance(message, bytes), message
            received.append(message)
    return received


async def test_frames_decode_with_consecutive_seq(url: str, msgpack: ModuleType) -> None:
    async with open_websocket_url(url) as ws:
        decoded: list[dict[str, Any]] = [msgpack.unpackb(f) for f in await frames(ws, 20)]
    seqs = [frame["seq"] for frame in decoded]
    assert seqs == list(range(seqs[0], seqs[0] + 20))
    assert all(len(frame["values"]) == 8 for frame in decoded)
    assert all(isinstance(v, float) and -1 <= v <= 1 for f in decoded for v in f["values"])
    assert decoded[-1]["time"] >= decoded[0]["time"]


async def test_every_client_gets_the_same_bytes(url: str, msgpack: ModuleType) -> None:
    """Packed once, sent to all: for each seq both clients saw, the frames are identical."""
    async with open_websocket_url(url) as one, open_websocket_url(url) as two:
        first, second = await frames(one, 15), await frames(two, 15)
    by_seq = {msgpack.unpackb(f)["seq"]: f for f in first}
    shared = [f for f in second if msgpack.unpackb(f)["seq"] in by_seq]
    assert shared, "the two clients saw no frame in common"
    assert all(by_seq[msgpack.unpackb(f)["seq"]] == f for f in shared)


async def test_a_client_that_sends_is_closed_with_1003(url: str) -> None:
    async with open_websocket_url(url) as ws:
        await ws.send_message(b"\x80")
        with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.get_message()
    assert closed.value.reason.code == 1003


def test_without_msgpack_it_says_what_to_install() -> None:
    """The example stops with a clear message (not a traceback) when msgpack is missing."""
    blocked = "import sys, runpy; sys.modules['msgpack'] = None; runpy.run_path(sys.argv[1])"
    result = subprocess.run(
        [sys.executable, "-c", blocked, str(EXAMPLES / "binary_feed.py")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "pip install msgpack" in result.stderr
    assert "Traceback" not in result.stderr
