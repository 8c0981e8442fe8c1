"""WebSocket end to end, through trio-websocket and websockets (two independent clients)."""

from __future__ import annotations

import pytest
import trio
from support.rawhttp import websocket_upgrade
from support.testapp import Probes, build_app
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url
from websockets.exceptions import ConnectionClosed as WSConnectionClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
async def port(start_server, probes: Probes) -> int:
    server = await start_server(build_app(probes), ws_max_message_bytes=64 * 1024)
    return server.port


async def test_echo_text_and_binary_trio_websocket(port: int) -> None:
    """trio-websocket: text comes back as text, binary as binary."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/echo") as ws:
        await ws.send_message("héllo")
        assert await ws.get_message() == "héllo"
        await ws.send_message(b"\x00\xffbinary")
        assert await ws.get_message() == b"\x00\xffbinary"


async def test_echo_websockets_with_permessage_deflate(port: int) -> None:
    """websockets: compression is negotiated and large compressible messages round-trip."""

    def talk() -> tuple[str | None, list[object]]:
        with connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
            replies = []
            for message in ("a" * 50_000, b"b" * 50_000, "short"):
                ws.send(message)
                replies.append(ws.recv())
            return extensions, replies

    extensions, replies = await trio.to_thread.run_sync(talk)
    assert extensions is not None and extensions.startswith("permessage-deflate")
    assert replies == ["a" * 50_000, b"b" * 50_000, "short"]


async def test_deflate_can_be_disabled(start_server, probes: Probes) -> None:
    """With permessage_deflate=False the extension is not accepted."""
    server = await start_server(build_app(probes), permessage_deflate=False)

    def talk() -> str | None:
        with connect(f"ws://127.0.0.1:{server.port}/ws/echo") as ws:
            ws.send("x")
            ws.recv()
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert await trio.to_thread.run_sync(talk) is None


async def test_fragmented_message_is_assembled(port: int) -> None:
    """A message sent in fragments reaches the handler whole."""

    def talk() -> object:
        with connect(f"ws://127.0.0.1:{port}/ws/echo", compression=None) as ws:
            ws.send(iter(["frag", "ment", "ed"]))
            return ws.recv()

    assert await trio.to_thread.run_sync(talk) == "fragmented"


async def test_subprotocol_selection(port: int) -> None:
    """The route's preferred subprotocol among those offered is selected."""
    async with open_websocket_url(
        f"ws://127.0.0.1:{port}/ws/chat", subprotocols=["chat.v1", "chat.v2"]
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        assert await ws.get_message() == "subprotocol=chat.v2"


async def test_no_common_subprotocol(port: int) -> None:
    """Without a common subprotocol the connection is accepted without one."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/chat", subprotocols=["other"]) as ws:
        assert await ws.get_message() == "subprotocol=None"


async def test_client_close_code_reaches_handler(port: int, probes: Probes) -> None:
    """The client's close code is seen by the handler after async-for ends."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/listen") as ws:
        await ws.send_message("one")
        await ws.aclose(code=4321, reason="leaving")
    with trio.fail_after(5):
        await probes.cleaned_up.wait()
    assert probes.seen == ["one"]
    assert probes.ws_close_code == 4321


async def test_server_close_with_code(port: int) -> None:
    """A handler's close(code, reason) reaches the client."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/bye") as ws:
        assert await ws.get_message() == "bye"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code == 4000
    assert closed.value.reason.reason == "done here"


async def test_message_too_big_closes_1009(port: int) -> None:
    """A message over ws_max_message_bytes gets close 1009."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/echo") as ws:
        await ws.send_message(b"x" * 100_000)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code == 1009


async def test_handler_exception_closes_1011(port: int) -> None:
    """A handler that raises after accepting gets close 1011; the server goes on."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/crash") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code == 1011
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/echo") as ws:
        await ws.send_message("still here")
        assert await ws.get_message() == "still here"


async def test_reject_with_status(port: int) -> None:
    """A handler's reject(403) is an HTTP 403 to the client."""
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/reject"):
            pass
    assert rejected.value.status_code == 403


async def test_websockets_client_sees_rejection(port: int) -> None:
    """The websockets client sees the same rejection status."""

    def talk() -> int:
        try:
            with connect(f"ws://127.0.0.1:{port}/ws/reject"):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert await trio.to_thread.run_sync(talk) == 403


async def test_client_vanishing_cancels_handler(port: int, probes: Probes) -> None:
    """A client that drops TCP without a close frame cancels its handler promptly."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(websocket_upgrade("/ws/hold"))
    with trio.fail_after(5):
        await probes.started.wait()
    await stream.aclose()
    with trio.fail_after(5):
        await probes.cleaned_up.wait()
    assert probes.handler_cancelled


async def test_ping_is_answered(port: int) -> None:
    """The server answers pings with no handler code."""

    def talk() -> float:
        with connect(f"ws://127.0.0.1:{port}/ws/listen") as ws:
            return ws.ping(b"are you there").wait(5) and 1.0

    assert await trio.to_thread.run_sync(talk) == 1.0


async def test_closed_connection_raises_in_websockets_client(port: int) -> None:
    """After the server closes, the websockets client reports a clean close with the code."""

    def talk() -> int | None:
        with connect(f"ws://127.0.0.1:{port}/ws/bye") as ws:
            ws.recv()
            try:
                ws.recv()
            except WSConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
        return None

    assert await trio.to_thread.run_sync(talk) == 4000


async def test_concurrent_first_sends_accept_once(port: int) -> None:
    """Two tasks sending first (each accepting implicitly): one accept, both messages."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/two-senders") as ws:
        received = sorted([await ws.get_message(), await ws.get_message()])
    assert received == ["a", "b"]


async def test_receive_after_reject_ends(port: int, probes: Probes) -> None:
    """After reject(), iterating the WebSocket ends at once instead of hanging."""
    with pytest.raises(ConnectionRejected):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/reject-then-receive"):
            pass
    with trio.fail_after(5):
        await probes.cleaned_up.wait()


async def test_unsolicited_pong_and_client_close_leave_no_error(
    port: int, probes: Probes, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a pong before any ping of ours, and a handler that returns after the
    client closed, used to hit attributes the WebSocket never initialised (the reader
    crashed; close() raised AttributeError and the session was logged as failed)."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/echo") as ws:
        await ws.pong(b"unasked")
        await ws.send_message("still here")
        assert await ws.get_message() == "still here"
    with trio.fail_after(5):
        while probes.ws_close_code is None:  # noqa: ASYNC110 (set by the server's handler)
            await trio.sleep(0.01)
    assert probes.ws_close_code == 1000
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
