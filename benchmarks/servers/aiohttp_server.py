"""aiohttp web + aiohttp-sse, written the way their docs say.

* ``/sse/fanout``: aiohttp-sse's chat-example pattern: a per-subscriber ``asyncio.Queue``,
  registered first, then ``async with sse_response(request)``, ``resp.send("", retry=1000)``
  and ``await resp.send(await queue.get())`` while ``resp.is_connected()``.
  ``POST /publish`` does ``put_nowait`` to every queue.
* ``/sse/stream``: ``await resp.send(payload)`` per event inside ``sse_response``.
* ``/sse/tokens``: the same at a fixed rate: ``asyncio.sleep`` until each token is due
  (on the loop's clock), then ``await resp.send(payload)``.
* ``/ws/echo``: ``WebSocketResponse(compress=False)``, ``async for msg in ws`` and
  ``send_str``/``send_bytes`` of the same type.
* ``/ws/fanout``: a per-subscriber queue drained by a task doing ``send_str`` while the
  handler reads (``async for msg in ws``) until the client leaves.  ``/ws/publish``
  publishes to those queues.

``web.run_app(..., handler_cancellation=True)``: the docs' recommendation when scalability
matters; a client that leaves cancels its handler, so its subscriber is unregistered at once.
A send that races the disconnect raises ``ConnectionResetError``, caught where it can happen.
``shutdown_timeout=1``: open streams never finish by themselves, so SIGTERM/SIGINT would
otherwise wait 2 x 60 s before aiohttp drops them.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress

from aiohttp import WSMsgType, web
from aiohttp_sse import sse_response
from common import (
    fanout_payload,
    parse_args,
    publish_params,
    stream_params,
    stream_payload,
    token_params,
    token_payload,
    ws_publish_params,
)

Subscribers = set[asyncio.Queue[str]]
sse_subscribers: Subscribers = set()
ws_subscribers: Subscribers = set()


async def publish(subscribers: Subscribers, n: int, size: int, burst: int) -> int:
    """Queue ``n`` payloads for every subscriber, yielding after every ``burst``."""
    for seq in range(n):
        payload = fanout_payload(seq, size)
        for queue in subscribers:
            queue.put_nowait(payload)
        if seq % burst == burst - 1:
            await asyncio.sleep(0)
    return len(subscribers)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def sse_fanout(request: web.Request) -> web.StreamResponse:
    queue: asyncio.Queue[str] = asyncio.Queue()
    sse_subscribers.add(queue)
    try:
        async with sse_response(request) as resp:
            with suppress(ConnectionResetError):  # the client left before its cancellation
                await resp.send("", retry=1000)
                while resp.is_connected():
                    await resp.send(await queue.get())
    finally:
        sse_subscribers.discard(queue)
    return resp


async def publish_sse(request: web.Request) -> web.Response:
    n, size, burst = publish_params(dict(request.query))
    subscribers = await publish(sse_subscribers, n, size, burst)
    return web.json_response({"published": n, "subscribers": subscribers})


async def sse_stream(request: web.Request) -> web.StreamResponse:
    n, size = stream_params(dict(request.query))
    async with sse_response(request) as resp:
        with suppress(ConnectionResetError):  # the client left before its cancellation
            for seq in range(n):
                await resp.send(stream_payload(seq, size))
    return resp


async def sse_tokens(request: web.Request) -> web.StreamResponse:
    n, size, rate, start_us, delay = token_params(dict(request.query))
    loop = asyncio.get_running_loop()
    start = loop.time() + delay
    async with sse_response(request) as resp:
        with suppress(ConnectionResetError):  # the client left before its cancellation
            for seq in range(n):
                delay = start + seq / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await resp.send(token_payload(seq, size, start_us, rate))
    return resp


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    with suppress(ConnectionResetError):  # the client left while being answered
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    return ws


async def forward(ws: web.WebSocketResponse, queue: asyncio.Queue[str]) -> None:
    """Send ``ready``, then every queued payload until the client is gone."""
    with suppress(ConnectionResetError):
        await ws.send_str("ready")
        while True:
            await ws.send_str(await queue.get())


async def ws_fanout(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue()
    ws_subscribers.add(queue)
    sender = asyncio.create_task(forward(ws, queue))
    try:
        async for _ in ws:  # until the client leaves
            pass
    finally:
        ws_subscribers.discard(queue)
        sender.cancel()
        with suppress(asyncio.CancelledError):
            await sender  # (any other error it met is raised here, not lost)
    return ws


async def ws_publish(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    with suppress(ConnectionResetError):  # the client left before the reply
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                n, size, burst = ws_publish_params(msg.data)
                subscribers = await publish(ws_subscribers, n, size, burst)
                await ws.send_str(json.dumps({"published": n, "subscribers": subscribers}))
    return ws


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    app = web.Application()
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/sse/fanout", sse_fanout),
            web.post("/publish", publish_sse),
            web.get("/sse/stream", sse_stream),
            web.get("/sse/tokens", sse_tokens),
            web.get("/ws/echo", ws_echo),
            web.get("/ws/fanout", ws_fanout),
            web.get("/ws/publish", ws_publish),
        ]
    )
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=2048,
        handler_cancellation=True,
        shutdown_timeout=1,
    )


if __name__ == "__main__":
    main()
