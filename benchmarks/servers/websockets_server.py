"""Benchmark server: the ``websockets`` library's own asyncio server (WebSocket URLs only).

Idiom: ``websockets.asyncio.server.serve`` with one handler routing on
``connection.request.path``; ``process_request`` answers plain HTTP ``/healthz`` (and 404s
unknown paths) before the handshake, as the websockets docs show for health checks.
WS fan-out uses ``websockets.asyncio.server.broadcast`` over the set of /ws/fanout
connections (it frames the message per connection and writes without backpressure).
compression=None (no permessage-deflate); asyncio's default event loop; backlog 4096.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from http import HTTPStatus

from common import fanout_payload, parse_args, ws_publish_params
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

WS_PATHS = {"/ws/echo", "/ws/fanout", "/ws/publish"}
SUBSCRIBERS: set[ServerConnection] = set()


def route(request: Request) -> str:
    return request.path.partition("?")[0]


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = route(request)
    if path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok")
    if path not in WS_PATHS:
        return connection.respond(HTTPStatus.NOT_FOUND, "not found")
    return None


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def fanout(ws: ServerConnection) -> None:
    SUBSCRIBERS.add(ws)
    try:
        await ws.send("ready")
        await ws.wait_closed()
    finally:
        SUBSCRIBERS.discard(ws)


async def publish(ws: ServerConnection) -> None:
    async for message in ws:
        n, size, burst = ws_publish_params(message)
        subscribers = len(SUBSCRIBERS)
        for i in range(n):
            broadcast(SUBSCRIBERS, fanout_payload(i, size))
            if (i + 1) % burst == 0:
                await asyncio.sleep(0)
        await ws.send(json.dumps({"published": n, "subscribers": subscribers}))


HANDLERS = {"/ws/echo": echo, "/ws/fanout": fanout, "/ws/publish": publish}


async def handler(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        await HANDLERS[route(ws.request)](ws)


async def main(port: int) -> None:
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        process_request=process_request,
        backlog=4096,
    ) as server:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.close)
        await server.wait_closed()


if __name__ == "__main__":
    # broadcast() keeps writing to a subscriber whose socket died within the current burst
    # (its connection only turns CLOSED at the next yield); asyncio then logs one WARNING
    # "socket.send() raised exception." per write.  Harmless: keep those off stderr.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    asyncio.run(main(parse_args(__doc__.splitlines()[0]).port))
