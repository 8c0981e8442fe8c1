"""Benchmark server: trio-websocket (WebSocket URLs only).

Idiom: ``trio_websocket.serve_websocket`` (ssl_context=None) with one handler routing on
``request.path``; unknown paths are rejected with 404.  WS fan-out: each /ws/fanout
subscriber owns a Trio memory channel with an unbounded buffer; the publisher
``send_nowait``s every payload into each channel and the subscriber's handler drains it with
``await ws.send_message(payload)``.  A second task in the handler waits on ``get_message()``
so a client that leaves is noticed (and unregistered) even when nothing is being published.
trio-websocket negotiates no compression extension; the listener backlog is Trio's default
(0xFFFF, capped by the kernel's somaxconn).
"""

from __future__ import annotations

import json
import math
import signal

import trio
from common import fanout_payload, parse_args, ws_publish_params
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

SUBSCRIBERS: set[trio.MemorySendChannel[str]] = set()


async def echo(ws: WebSocketConnection) -> None:
    while True:
        await ws.send_message(await ws.get_message())


async def until_closed(ws: WebSocketConnection, scope: trio.CancelScope) -> None:
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed:
        scope.cancel()


async def fanout(ws: WebSocketConnection) -> None:
    send, receive = trio.open_memory_channel[str](math.inf)
    SUBSCRIBERS.add(send)
    try:
        await ws.send_message("ready")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(until_closed, ws, nursery.cancel_scope)
            async for payload in receive:
                await ws.send_message(payload)
    finally:
        SUBSCRIBERS.discard(send)


async def publish(ws: WebSocketConnection) -> None:
    while True:
        message = str(await ws.get_message())
        n, size, burst = ws_publish_params(message)
        subscribers = len(SUBSCRIBERS)
        for i in range(n):
            payload = fanout_payload(i, size)
            for channel in SUBSCRIBERS:
                channel.send_nowait(payload)
            if (i + 1) % burst == 0:
                await trio.sleep(0)  # noqa: ASYNC115 - the contract's yield
        await ws.send_message(json.dumps({"published": n, "subscribers": subscribers}))


HANDLERS = {"/ws/echo": echo, "/ws/fanout": fanout, "/ws/publish": publish}


async def handler(request: WebSocketRequest) -> None:
    route = HANDLERS.get(request.path.partition("?")[0])
    if route is None:
        await request.reject(404)
        return
    ws = await request.accept()
    try:
        await route(ws)
    except* ConnectionClosed:
        pass


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_websocket, handler, "127.0.0.1", port, None)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    trio.run(main, parse_args(__doc__.splitlines()[0]).port)
