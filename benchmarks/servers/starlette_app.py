"""Starlette + sse-starlette, written the way their docs say; run by uvicorn_server.py
(asyncio) and hypercorn_trio.py (trio), so it uses anyio primitives only.

* ``/sse/fanout``: ``EventSourceResponse`` over an async generator that registers an
  unbounded anyio memory object stream, yields ``ServerSentEvent(retry=1000)``, then
  ``{"data": payload}`` per event (sse-starlette encodes each event per subscriber).  The
  generator's ``finally`` unregisters the subscriber when sse-starlette cancels it on
  ``http.disconnect``.  ``POST /publish`` does ``send_nowait`` to every subscriber.
* ``/sse/stream``: ``EventSourceResponse`` over an async generator, one ``yield`` per event.
* ``/sse/tokens``: the same at a fixed rate: the generator ``anyio.sleep_until``s each
  token's due time, then yields it.
* ``/ws/echo``: ``websocket.receive()`` and ``send_text``/``send_bytes`` of the same type.
* ``/ws/fanout``: a per-subscriber memory object stream drained by a task doing
  ``send_text``, while the handler reads (``iter_text``) to notice the client leaving.
  ``/ws/publish`` publishes to those streams.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import suppress

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from common import (
    fanout_payload,
    publish_params,
    stream_params,
    stream_payload,
    token_params,
    token_payload,
    ws_publish_params,
)
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

Subscribers = set[MemoryObjectSendStream[str]]
sse_subscribers: Subscribers = set()
ws_subscribers: Subscribers = set()


async def publish(subscribers: Subscribers, n: int, size: int, burst: int) -> int:
    """Send ``n`` payloads to every subscriber, yielding after every ``burst``."""
    for seq in range(n):
        payload = fanout_payload(seq, size)
        for subscriber in subscribers:
            subscriber.send_nowait(payload)
        if seq % burst == burst - 1:
            await anyio.sleep(0)  # noqa: ASYNC115 - the contract's yield, on either backend
    return len(subscribers)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def sse_fanout(request: Request) -> Response:
    async def events() -> AsyncIterator[ServerSentEvent | dict[str, str]]:
        send, receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
        with send, receive:
            sse_subscribers.add(send)
            try:
                yield ServerSentEvent(retry=1000)
                async for payload in receive:
                    yield {"data": payload}
            finally:
                sse_subscribers.discard(send)

    return EventSourceResponse(events())


async def publish_sse(request: Request) -> Response:
    n, size, burst = publish_params(dict(request.query_params))
    subscribers = await publish(sse_subscribers, n, size, burst)
    return JSONResponse({"published": n, "subscribers": subscribers})


async def sse_stream(request: Request) -> Response:
    n, size = stream_params(dict(request.query_params))

    async def events() -> AsyncIterator[dict[str, str]]:
        for seq in range(n):
            yield {"data": stream_payload(seq, size)}

    return EventSourceResponse(events())


async def sse_tokens(request: Request) -> Response:
    n, size, rate, start_us, delay = token_params(dict(request.query_params))
    start = anyio.current_time() + delay

    async def events() -> AsyncIterator[dict[str, str]]:
        for seq in range(n):
            await anyio.sleep_until(start + seq / rate)
            yield {"data": token_payload(seq, size, start_us, rate)}

    return EventSourceResponse(events())


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    with suppress(WebSocketDisconnect):
        while (message := await websocket.receive())["type"] == "websocket.receive":
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])


async def forward(
    websocket: WebSocket, receive: MemoryObjectReceiveStream[str], scope: anyio.CancelScope
) -> None:
    """Send ``ready``, then every published payload; stop the handler if sending fails."""
    with suppress(WebSocketDisconnect):
        await websocket.send_text("ready")
        async for payload in receive:
            await websocket.send_text(payload)
    scope.cancel()


async def ws_fanout(websocket: WebSocket) -> None:
    await websocket.accept()
    send, receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
    with send, receive:
        ws_subscribers.add(send)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(forward, websocket, receive, tg.cancel_scope)
                async for _ in websocket.iter_text():  # until the client leaves
                    pass
                tg.cancel_scope.cancel()
        finally:
            ws_subscribers.discard(send)


async def ws_publish(websocket: WebSocket) -> None:
    await websocket.accept()
    with suppress(WebSocketDisconnect):
        async for text in websocket.iter_text():
            n, size, burst = ws_publish_params(text)
            subscribers = await publish(ws_subscribers, n, size, burst)
            await websocket.send_text(json.dumps({"published": n, "subscribers": subscribers}))


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/sse/fanout", sse_fanout),
        Route("/publish", publish_sse, methods=["POST"]),
        Route("/sse/stream", sse_stream),
        Route("/sse/tokens", sse_tokens),
        WebSocketRoute("/ws/echo", ws_echo),
        WebSocketRoute("/ws/fanout", ws_fanout),
        WebSocketRoute("/ws/publish", ws_publish),
    ]
)
