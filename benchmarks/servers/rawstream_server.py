"""rawstream, written the way its docs say: a hub for fan-out, generators for streams.

* ``/sse/fanout``: :func:`rawstream.hub.sse_channels` on channel ``bench`` (its opening
  ``id:``/``retry:`` event says the subscriber is registered); ``POST /publish`` publishes
  with ``hub.publish``, which encodes each event once and hands the same bytes to every
  subscriber's outbox.
* ``/sse/stream``: an SSE route written as an async generator, one event per ``yield``.
* ``/sse/tokens``: the same at a fixed rate (an LLM answer's pace): the generator sleeps
  with ``trio.sleep_until`` until each token is due (``common.token_params``), then yields
  it.
* ``/ws/echo``: ``async for message in ws: await ws.send(message)``.
* ``/ws/fanout``: a plain hub subscription whose sink queues each message's frame, framed
  once for every subscriber; ``/ws/publish`` publishes on its channel.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial

import trio
import trio.lowlevel
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

from rawstream import App, Event, Request, Response, WebSocket, serve
from rawstream.hub import Hub, Message, sse_channels

SSE_CHANNEL = "bench"
WS_CHANNEL = "bench-ws"

hub = Hub()
app = App()
app.service(hub.run)
sse_channels(app, "/sse/fanout", hub, default_channels=[SSE_CHANNEL])


@app.get("/healthz")
async def healthz(request: Request) -> Response:
    return Response.text("ok")


async def publish(channel: str, n: int, size: int, burst: int) -> int:
    """Publish ``n`` events on ``channel``, yielding between bursts; return the subscribers."""
    for seq in range(n):
        await hub.publish(channel, fanout_payload(seq, size))
        if seq % burst == burst - 1:
            await trio.lowlevel.checkpoint()
    local = hub.channels.get(channel)
    return len(local.subscribers) if local is not None else 0


@app.post("/publish")
async def publish_sse(request: Request) -> Response:
    n, size, burst = publish_params(dict(request.query.items()))
    subscribers = await publish(SSE_CHANNEL, n, size, burst)
    return Response.json({"published": n, "subscribers": subscribers})


@app.sse("/sse/stream")
async def stream(request: Request) -> AsyncIterator[Event]:
    n, size = stream_params(dict(request.query.items()))
    for seq in range(n):
        yield Event(stream_payload(seq, size))


@app.sse("/sse/tokens")
async def tokens(request: Request) -> AsyncIterator[Event]:
    n, size, rate, start_us, delay = token_params(dict(request.query.items()))
    start = trio.current_time() + delay
    for seq in range(n):
        await trio.sleep_until(start + seq / rate)
        yield Event(token_payload(seq, size, start_us, rate))


@app.websocket("/ws/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)


@app.websocket("/ws/fanout")
async def ws_fanout(ws: WebSocket) -> None:
    def sink(message: Message) -> bool:
        try:
            ws._send_broadcast_nowait(message)  # (the hub's fast path)
        except trio.WouldBlock:  # a full outbox: the subscription catches up from history
            return False
        return True

    await ws.accept()
    async with hub.subscribe(WS_CHANNEL, sink=sink) as subscription:
        await ws.send("ready")
        async for item in subscription:  # what the sink did not take, at the client's pace
            await ws.send(item.ws_text)


@app.websocket("/ws/publish")
async def ws_publish(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        n, size, burst = ws_publish_params(message)
        subscribers = await publish(WS_CHANNEL, n, size, burst)
        await ws.send(json.dumps({"published": n, "subscribers": subscribers}))


async def main(port: int) -> None:
    await serve(app, port=port, handle_signals=True)


if __name__ == "__main__":
    trio.run(partial(main, parse_args((__doc__ or "").splitlines()[0]).port))
