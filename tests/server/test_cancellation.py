"""A client that goes away cancels its handler promptly, even one not writing at the time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
import trio.testing
from support.rawhttp import websocket_upgrade

from rawstream import App, Event, Request, SSEStream, WebSocket

from .helpers import connect, read_until


async def test_sse_handler_waiting_on_something_else_is_cancelled(nursery: trio.Nursery) -> None:
    """EOF cancels an SSE handler blocked on an event that never comes; finally runs."""
    app = App()
    cleaned = trio.Event()

    @app.sse("/wait")
    async def wait(request: Request, stream: SSEStream) -> None:
        await stream.open()
        try:
            await trio.sleep_forever()
        finally:
            cleaned.set()

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
