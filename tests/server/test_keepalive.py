"""Keepalives on a virtual clock: SSE comments when idle, WebSocket pings and pong deadlines."""

from __future__ import annotations

import itertools

import trio
import trio.testing
import wsproto.events as ws_events

from rawstream import App, Event, Request, SSEStream, WebSocket

from .helpers import connect, websocket_client


def quiet_sse_app(every: float | None = None) -> App:
    app = App()

    @app.sse("/quiet")
    async def quiet(request: Request, stream: SSEStream) -> None:
        await stream.open()
        i = 0
        while True:
            if every is None:
                await trio.sleep_forever()
            await trio.sleep(every)
            i += 1
            await stream.send(Event(str(i)))

    return app


async def comment_times(client: trio.abc.Stream, until: float) -> list[float]:
    """Virtual times at which a keepalive comment arrived, until ``until``."""
    times: list[float] = []
    with trio.move_on_at(until):
        while True:
            data = await client.receive_some(65536)
            times += [trio.current_time()] * data.count(b": \n\n")
    return times


async def test_idle_sse_stream_gets_a_comment_every_interval(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """An idle stream gets ': ' after every sse_keepalive seconds of silence (the server's
    sweeper looks every eighth of that, so within 15 to 15 * 9/8 seconds)."""
    client, _ = connect(nursery, quiet_sse_app(), sse_keepalive=15)
    start = trio.current_time()
    await client.send_all(b"GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n")
    times = [start, *await comment_times(client, start + 55)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert all(15 <= gap <= 15 * 9 / 8 + 0.01 for gap in gaps), gaps


async def test_busy_sse_stream_gets_no_comment(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A stream sending an event every 5 s is never idle for 15 s: no keepalive."""
    client, _ = connect(nursery, quiet_sse_app(every=5), sse_keepalive=15)
    await client.send_all(b"GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await comment_times(client, trio.current_time() + 60) == []


def holding_ws_app() -> App:
    app = App()

    @app.websocket("/ws")
    async def hold(ws: WebSocket) -> None:
        async for _ in ws:
            pass

    return app


async def test_answered_pings_keep_the_websocket_open(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A client that answers pings stays connected: a ping arrives every ws_ping_interval."""
    client_stream, _ = connect(nursery, holding_ws_app(), ws_ping_interval=20, ws_ping_timeout=10)
    peer, _ = await websocket_client(client_stream, "/ws")
    pings: list[float] = []
    start = trio.current_time()
    with trio.move_on_at(start + 70):
        while True:
            data = await client_stream.receive_some(65536)
            assert data, "the server closed a healthy connection"
            peer.receive_data(data)  # type: ignore[attr-defined]
            for event in peer.events():  # type: ignore[attr-defined]
                assert not isinstance(event, ws_events.CloseConnection)
                if isinstance(event, ws_events.Ping):
                    pings.append(trio.current_time() - start)
                    await client_stream.send_all(peer.send(event.response()))  # type: ignore[attr-defined]
    assert [round(t) for t in pings] == [20, 40, 60]


async def test_missing_pong_closes_1011(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """No pong within ws_ping_timeout: close 1011 and the connection ends."""
    client_stream, _ = connect(nursery, holding_ws_app(), ws_ping_interval=20, ws_ping_timeout=10)
    peer, _ = await websocket_client(client_stream, "/ws")
    start = trio.current_time()
    events: list[object] = []
    while data := await client_stream.receive_some(65536):
        peer.receive_data(data)  # type: ignore[attr-defined]
        events += list(peer.events())  # type: ignore[attr-defined]
    closes = [e for e in events if isinstance(e, ws_events.CloseConnection)]
    assert [c.code for c in closes] == [1011]
    assert 30 <= trio.current_time() - start < 31
