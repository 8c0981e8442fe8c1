"""A client that goes away cancels its handler promptly, even one not writing at the time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
import trio.testing
from support.rawhttp import websocket_upgrade

from rawstream import App, Event, Request, SSEStream, WebSocket

from .helpers import connect, read_until


def waiting_sse_app(cleaned: trio.Event) -> App:
    """``GET /wait``: an SSE stream that opens, then waits forever; ``cleaned`` marks its end."""
    app = App()

    @app.sse("/wait")
    async def wait(request: Request, stream: SSEStream) -> None:
        await stream.open()
        try:
            await trio.sleep_forever()
        finally:
            cleaned.set()

    return app


async def test_sse_handler_waiting_on_something_else_is_cancelled(nursery: trio.Nursery) -> None:
    """EOF cancels an SSE handler blocked on an event that never comes; finally runs."""
    cleaned = trio.Event()
    app = waiting_sse_app(cleaned)

    client, _ = connect(nursery, app)
    await client.send_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"\r\n\r\n")
    await client.aclose()
    with trio.fail_after(1):
        await cleaned.wait()


async def test_generator_closed_with_aclosing(nursery: trio.Nursery) -> None:
    """An async-generator SSE handler is closed (its finally runs) when the client leaves."""
    app = App()
    closed = trio.Event()

    @app.sse("/gen")
    async def gen(request: Request) -> AsyncIterator[Event]:
        try:
            yield Event("first")
            await trio.sleep_forever()
        finally:
            closed.set()

    client, _ = connect(nursery, app)
    await client.send_all(b"GET /gen HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"data: first")
    await client.aclose()
    with trio.fail_after(1):
        await closed.wait()


async def test_websocket_handler_cancelled_on_eof(nursery: trio.Nursery) -> None:
    """EOF without a close frame cancels a WebSocket handler not currently receiving."""
    app = App()
    cleaned = trio.Event()

    @app.websocket("/ws")
    async def hold(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await trio.sleep_forever()
        finally:
            cleaned.set()

    client, _ = connect(nursery, app)
    await client.send_all(websocket_upgrade("/ws"))
    await read_until(client, b"\r\n\r\n")
    await client.aclose()
    with trio.fail_after(1):
        await cleaned.wait()


async def test_client_filling_the_read_buffer_during_a_stream_is_dropped(
    nursery: trio.Nursery,
) -> None:
    """Bytes flooding in during an SSE stream fill the read buffer: the stream is ended."""
    cleaned = trio.Event()
    app = waiting_sse_app(cleaned)

    client, _ = connect(nursery, app, read_buffer_bytes=1000)
    await client.send_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"\r\n\r\n")
    await client.send_all(b"x" * 200_000)
    with trio.fail_after(1):
        await cleaned.wait()


async def test_client_reset_while_websocket_push_is_blocked() -> None:
    """A client vanishing while the frame reader waits on a full outbox ends the connection
    quietly: no error escapes the connection."""
    app = App()
    cleaned = trio.Event()
    sockets: list[WebSocket] = []

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        sockets.append(ws)
        try:
            while True:
                await ws.send(b"z" * 500)
        finally:
            cleaned.set()

    # Our own nursery, not the fixture's: an exception escaping conn.run fails this test.
    async with trio.open_nursery() as nursery:
        client, _ = connect(
            nursery, app, lockstep=True, outbox_high_bytes=1000, permessage_deflate=False
        )
        await client.send_all(websocket_upgrade("/ws"))
        await client.receive_some(100)
        await trio.testing.wait_all_tasks_blocked()  # the handler has filled the outbox
        await client.send_all(b"\x81\x82\x00\x00\x00\x00hi")  # a frame wakes the reader...
        await trio.testing.wait_all_tasks_blocked()  # ...which then waits on the full outbox
        assert sockets[0]._input.blocked, "the frame reader must be waiting on the outbox"
        await client.aclose()  # the writer's send_all now fails: the outbox breaks
        with trio.fail_after(1):
            await cleaned.wait()
