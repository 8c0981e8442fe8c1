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
* ``/ws/fanout``: a set of open WebSockets; ``/ws/publish`` sends each payload to all of them
  with ``rawstream.broadcast`` (framed once, queued on each without waiting), and waits only
  for a subscriber it reports full.
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

from rawstream import App, Event, Request, Response, WebSocket, broadcast, serve
from rawstream.hub import Hub, sse_channels

SSE_CHANNEL = "bench"

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


#: The open /ws/fanout WebSockets: what ``/ws/publish`` broadcasts to.
ws_subscribers: set[WebSocket] = set()


@app.websocket("/ws/fanout")
async def ws_fanout(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send("ready")
    ws_subscribers.add(ws)  # (after "ready": nothing is broadcast to it before)
    try:
        async for _ in ws:  # until the client leaves
            pass
    finally:
        ws_subscribers.discard(ws)


async def ws_publish_payloads(n: int, size: int, burst: int) -> int:
    """Broadcast ``n`` payloads to every /ws/fanout subscriber, yielding after every
    ``burst``; a subscriber whose outbox is full (BLOCK) is waited for, so none loses one."""
    for seq in range(n):
        payload = fanout_payload(seq, size)
        for ws in broadcast(ws_subscribers, payload).full:
            await ws.send(payload)
        if seq % burst == burst - 1:
            await trio.lowlevel.checkpoint()
    return len(ws_subscribers)


@app.websocket("/ws/publish")
async def ws_publish(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        n, size, burst = ws_publish_params(message)
        subscribers = await ws_publish_payloads(n, size, burst)
        await ws.send(json.dumps({"published": n, "subscribers": subscribers}))


async def main(port: int) -> None:
    await serve(app, port=port, handle_signals=True)


if __name__ == "__main__":
    trio.run(partial(main, parse_args((__doc__ or "").splitlines()[0]).port))
