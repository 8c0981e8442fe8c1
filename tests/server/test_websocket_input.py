"""Who reads a WebSocket (server/wsinput.py): the handler while it waits in receive(), the
frame reader while it is away, so a busy handler still answers pings and sees the client go."""

from __future__ import annotations

import select

import pytest
import trio
import trio.testing
import wsproto.events as ws_events
from trio_websocket import open_websocket_url

from rawstream import App, WebSocket
from rawstream.server.wsinput import HANDLER_AWAY

from .helpers import connect, websocket_client


async def exchange(
    client_stream: trio.abc.Stream, peer: object, event: object, until: type
) -> list[object]:
    await client_stream.send_all(peer.send(event))  # type: ignore[attr-defined]
    events: list[object] = []
    with trio.fail_after(5):
        while not any(isinstance(e, until) for e in events):
            data = await client_stream.receive_some(65536)
            assert data, "closed early"
            peer.receive_data(data)  # type: ignore[attr-defined]
            events += peer.events()  # type: ignore[attr-defined]
    return events


async def test_a_handler_away_from_receive_still_answers_pings_and_sees_the_client_go(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The handler reads its first message itself, then stays away (busy): after
    HANDLER_AWAY the frame reader reads again, so a ping gets its pong, and the client's
    EOF cancels the handler."""
    app = App()
    got: list[str | bytes] = []
    cancelled = trio.Event()

    @app.websocket("/ws")
    async def busy(ws: WebSocket) -> None:
        try:
            got.append(await ws.receive())
            await ws.send("working")
            await trio.sleep_forever()  # busy elsewhere, never back in receive()
        except trio.Cancelled:
            cancelled.set()
            raise

    client_stream, _ = connect(nursery, app, permessage_deflate=False)
    peer, _ = await websocket_client(client_stream, "/ws")
    await exchange(client_stream, peer, ws_events.TextMessage("first"), ws_events.TextMessage)
    assert got == ["first"]
    start = trio.current_time()
    events = await exchange(client_stream, peer, ws_events.Ping(b"alive?"), ws_events.Pong)
    assert [e.payload for e in events if isinstance(e, ws_events.Pong)] == [b"alive?"]
    assert trio.current_time() - start <= HANDLER_AWAY + 0.01  # (within the stand-by)
    await client_stream.aclose()
    with trio.fail_after(1):
        await cancelled.wait()


async def test_a_receive_loop_gets_every_message_in_order_and_the_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Messages read by the handler itself and by the frame reader, in turn, arrive once
    each and in order; the client's close ends the loop and is echoed."""
    app = App()
    got: list[str | bytes] = []
    ended = trio.Event()

    @app.websocket("/ws")
    async def collect(ws: WebSocket) -> None:
        async for message in ws:
            got.append(message)
            if len(got) % 7 == 0:
                await trio.sleep(HANDLER_AWAY * 2)  # away: the frame reader takes over
        ended.set()

    client_stream, _ = connect(nursery, app, permessage_deflate=False)
    peer, _ = await websocket_client(client_stream, "/ws")
    for i in range(40):
        await client_stream.send_all(peer.send(ws_events.TextMessage(f"m{i}")))  # type: ignore[attr-defined]
        if i % 5 == 0:
            await trio.sleep(0.01)
    events = await exchange(
        client_stream, peer, ws_events.CloseConnection(1000), ws_events.CloseConnection
    )
    assert [e.code for e in events if isinstance(e, ws_events.CloseConnection)] == [1000]
    with trio.fail_after(5):
        await ended.wait()
    assert got == [f"m{i}" for i in range(40)]


async def test_close_from_another_task_ends_a_receive_that_is_reading(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The handler waits in receive(), reading the socket itself; another task closes: the
    receive ends at once (its read is cancelled, no byte lost), though the client never
    answers the close, and the session ends at close_timeout."""
    app = App()
    loop_ended = trio.Event()
    session_ended = trio.Event()

    @app.websocket("/ws")
    async def closes_from_beside(ws: WebSocket) -> None:
        async def closer() -> None:
            await trio.sleep(1)
            await ws.close(1000)

        try:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(closer)
                async for _ in ws:
                    pass
                loop_ended.set()
        finally:
            session_ended.set()

    client_stream, _ = connect(nursery, app, permessage_deflate=False, close_timeout=0.5)
    peer, _ = await websocket_client(client_stream, "/ws")
    await exchange(
        client_stream, peer, ws_events.Ping(b"1"), ws_events.Pong
    )  # reading: the handler
    start = trio.current_time()
    with trio.fail_after(5):
        await loop_ended.wait()
    assert trio.current_time() - start <= 1.01  # at the close, not at a later byte
    with trio.fail_after(5):
        await session_ended.wait()


async def test_two_tasks_may_receive_at_once(start_server) -> None:  # type: ignore[no-untyped-def]
    """Two tasks in receive() together, over a real socket (read directly, as the server
    reads plain TCP): one reads, the other waits for what it brings; every message goes to
    exactly one of them, and neither meets the other's read."""
    app = App()
    got: list[str | bytes] = []
    done = trio.Event()

    @app.websocket("/ws")
    async def two_readers(ws: WebSocket) -> None:
        async def take() -> None:
            while len(got) < 8:
                got.append(await ws.receive())
            done.set()

        async with trio.open_nursery() as tasks:
            tasks.start_soon(take)
            tasks.start_soon(take)
            await done.wait()
            tasks.cancel_scope.cancel()

    server = await start_server(app)
    async with open_websocket_url(f"ws://127.0.0.1:{server.port}/ws") as client:
        for i in range(8):
            await client.send_message(f"m{i}")
            await trio.sleep(HANDLER_AWAY * 1.5 if i in (2, 5) else 0.001)
        with trio.fail_after(5):
            await done.wait()
    assert sorted(got, key=lambda m: int(str(m)[1:])) == [f"m{i}" for i in range(8)]


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="parking needs epoll (Linux)")
async def test_over_a_parked_socket_a_close_from_another_task_ends_a_waiting_receive(
    start_server,  # type: ignore[no-untyped-def]
) -> None:
    """Over a real socket the readiness watcher reads for the WebSocket, and the handler
    waits for its bytes without a cancel scope: a close from another task still ends the
    receive() at once (the tunnel's wait is woken), though the client never answers the
    close, and the session ends at close_timeout.  Messages before it arrive in order."""
    app = App()
    got: list[str | bytes] = []
    closed_at: list[float] = []
    three = trio.Event()
    loop_ended = trio.Event()
    session_ended = trio.Event()

    @app.websocket("/ws")
    async def closes_from_beside(ws: WebSocket) -> None:
        async def closer() -> None:
            await three.wait()
            await trio.sleep(0.05)  # (the handler is back in receive(), waiting)
            closed_at.append(trio.current_time())
            await ws.close(1000)

        try:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(closer)
                async for message in ws:
                    got.append(message)
                    if len(got) == 3:
                        three.set()
                loop_ended.set()
        finally:
            session_ended.set()

    server = await start_server(app, permessage_deflate=False, close_timeout=3)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        peer, _ = await websocket_client(stream, "/ws")
        for text in ("a", "b", "c"):
            await stream.send_all(peer.send(ws_events.TextMessage(text)))
        # (Had the receive waited on, close_timeout would cancel the handler and the loop
        # would never end: no bound on how soon, only whether it ends.)
        with trio.fail_after(10):
            await loop_ended.wait()
        assert got == ["a", "b", "c"]
        assert closed_at
        with trio.fail_after(5):
            await session_ended.wait()  # at close_timeout, the client never answering
