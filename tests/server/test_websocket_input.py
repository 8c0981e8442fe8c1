"""Who reads a WebSocket (server/wsinput.py): the handler while it waits in receive(), the
frame reader while it is away, so a busy handler still answers pings and sees the client go."""

from __future__ import annotations

import trio
import trio.testing
import wsproto.events as ws_events

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
