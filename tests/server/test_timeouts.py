"""Every timeout, on a virtual clock (MockClock autojump): no real sleeps."""

from __future__ import annotations

import trio
from support.rawhttp import websocket_upgrade

from rawstream import App, Request, Response, WebSocket

from .helpers import connect, read_all, read_until


def make_app() -> App:
    app = App()

    @app.get("/")
    async def index(request: Request) -> Response:
        return Response.text("hi")

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response.text(str(len(await request.body())))

    @app.websocket("/ws")
    async def closer(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(1000)

    return app


async def test_slow_head_gets_408(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A head that does not finish within header_timeout gets 408 and the connection ends."""
    client, _ = connect(nursery, make_app(), header_timeout=10)
    start = trio.current_time()
    await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no blank line: never finishes
    response = await read_all(client)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert 10 <= trio.current_time() - start < 11


async def test_trickled_websocket_upgrade_gets_408(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A WebSocket upgrade head trickled a byte a second (a slow handshake) gets 408 at
    header_timeout after the accept, however steadily its bytes come; no handshake happens."""
    client, _ = connect(nursery, make_app(), header_timeout=5)
    request = websocket_upgrade("/ws")
    start = trio.current_time()

    async def trickle() -> None:
        for byte in request:
            await client.send_all(bytes([byte]))
            await trio.sleep(1)
        raise AssertionError("the whole head went out: no timeout")

    async with trio.open_nursery() as sending:
        sending.start_soon(trickle)
        response = await read_all(client)
        sending.cancel_scope.cancel()
    assert response.startswith(b"HTTP/1.1 408 ")
    assert b"101 Switching Protocols" not in response
    assert 5 <= trio.current_time() - start < 6


async def test_silent_connection_closed_after_header_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A connection that sends nothing is closed, without a response, after header_timeout."""
    client, _ = connect(nursery, make_app(), header_timeout=7)
    start = trio.current_time()
    assert await read_all(client) == b""
    assert 7 <= trio.current_time() - start < 8


async def test_idle_keepalive_connection_closed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """After a response, an idle kept-alive connection closes after keepalive_timeout."""
    client, _ = connect(nursery, make_app(), header_timeout=30, keepalive_timeout=5)
    await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"hi")
    start = trio.current_time()
    assert await read_all(client) == b""
    assert 5 <= trio.current_time() - start < 6


async def test_keepalive_request_gets_header_timeout_once_started(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A second request that starts in time has header_timeout from its first byte."""
    client, _ = connect(nursery, make_app(), header_timeout=10, keepalive_timeout=5)
    await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"hi")
    await trio.sleep(4)  # virtual time: idle for 4 of the 5 keepalive seconds, then start
    await client.send_all(b"GET / HTT")
    start = trio.current_time()
    response = await read_all(client)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert 10 <= trio.current_time() - start < 11


async def test_stalled_body_gets_408(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A body that stops arriving for header_timeout gets 408."""
    client, _ = connect(nursery, make_app(), header_timeout=3)
    await client.send_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    response = await read_all(client)
    assert response.startswith(b"HTTP/1.1 408 ")


async def test_websocket_close_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A client that never answers our close frame is dropped after close_timeout."""
    client, _ = connect(nursery, make_app(), close_timeout=4)
    await client.send_all(websocket_upgrade("/ws"))
    start = trio.current_time()
    data = await read_all(client)
    assert b"101 Switching Protocols" in data
    assert data.endswith(b"\x88\x02\x03\xe8")  # close frame, code 1000
    assert 4 <= trio.current_time() - start < 5


async def test_close_is_not_stalled_by_a_full_message_queue(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Our close completes as soon as the client replies, even with the queue full."""
    import wsproto
    import wsproto.events as ws_events

    elapsed: list[float] = []
    closed = trio.Event()
    app = App()

    @app.websocket("/ws")
    async def slow_reader(ws: WebSocket) -> None:
        await ws.accept()
        # Virtual time: autojump returns only once every task is blocked, i.e. the client
        # has sent its 20 messages and the queue is full.  We never read it.
        await trio.sleep(1)
        start = trio.current_time()
        await ws.close(1000)
        elapsed.append(trio.current_time() - start)
        closed.set()

    client_stream, _ = connect(nursery, app, ws_queue_bytes=1000, close_timeout=30)
    peer = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await client_stream.send_all(peer.send(ws_events.Request(host="x", target="/ws")))
    accepted = False
    while not accepted:
        peer.receive_data(await client_stream.receive_some(65536))
        accepted = any(isinstance(e, ws_events.AcceptConnection) for e in peer.events())
    for _ in range(20):
        await client_stream.send_all(peer.send(ws_events.BytesMessage(data=b"m" * 1000)))
    replied = False
    while not replied:
        peer.receive_data(await client_stream.receive_some(65536))
        for event in peer.events():
            if isinstance(event, ws_events.CloseConnection):
                await client_stream.send_all(peer.send(event.response()))
                replied = True
    with trio.fail_after(60):
        await closed.wait()
    assert elapsed[0] < 1
