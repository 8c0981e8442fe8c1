"""The demo application, written with the public API only: read it as an example.

Try it::

    rawstream demo --port 8000
    curl -i http://127.0.0.1:8000/healthz
    curl -N http://127.0.0.1:8000/events            # a ticker event every second
    curl -N -H 'Last-Event-ID: 41' http://127.0.0.1:8000/events   # resume after id 41
    python -m websockets ws://127.0.0.1:8000/ws/echo  # type a line, get it back

Routes (a public contract: docs, tests and users rely on these paths):

* ``GET /healthz``: 200 with ``{"status": "ok", "pid": PID}``.
* ``GET /events``: SSE, a ``tick`` event every second with increasing ids; a client that
  reconnects with ``Last-Event-ID: N`` continues at ``N + 1``.
* ``GET /ws/echo``: WebSocket, echoes every text and binary message.
* ``GET /stream?n=N&size=S``: SSE, N events (id 0 to N-1) of S bytes of data each, as fast as
  the connection takes them (``n=0``: endless).  Load and slow-client tests use it.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import trio

from rawstream import App, Event, HTTPError, Request, Response, SSEStream, WebSocket

app = App()

#: Seconds between ticker events (tests shorten it).
TICK_INTERVAL = 1.0
#: Largest event /stream will make (its memory is the client's to ask for, so bound it).
MAX_STREAM_EVENT_BYTES = 1024 * 1024


@app.get("/healthz")
async def healthz(request: Request) -> Response:
    """Liveness: the process serves requests (``pid`` tells workers apart)."""
    return Response.json({"status": "ok", "pid": os.getpid()})


@app.sse("/events")
async def events(request: Request) -> AsyncIterator[Event]:
    """A ticker: one event a second, ids counting up, resumable from ``Last-Event-ID``."""
    last = request.last_event_id
    tick = int(last) + 1 if last is not None and last.isdigit() else 1
    yield Event(retry=2000, comment="ticker")
    while True:
        yield Event(data=f'{{"tick":{tick},"time":{time.time():.3f}}}', event="tick", id=str(tick))
        tick += 1
        await trio.sleep(TICK_INTERVAL)


@app.websocket("/ws/echo")
async def echo(ws: WebSocket) -> None:
    """Send every message back as it came: text as text, binary as binary."""
    async for message in ws:
        await ws.send(message)


@app.sse("/stream")
async def stream_events(request: Request, stream: SSEStream) -> None:
    """N events of S bytes as fast as the client takes them (backpressure sets the pace)."""
    try:
        count = int(request.query.get("n", "100"))
        size = int(request.query.get("size", "64"))
    except ValueError:
        raise HTTPError(400, "n and size must be integers") from None
    if count < 0 or not 0 <= size <= MAX_STREAM_EVENT_BYTES:
        raise HTTPError(400, f"need n >= 0 and 0 <= size <= {MAX_STREAM_EVENT_BYTES}")
    data = "x" * size
    i = 0
    while count == 0 or i < count:
        await stream.send(Event(data, id=str(i)))
        i += 1
