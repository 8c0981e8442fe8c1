"""The demo application, written with the public API only: read it as an example.

Try it::

    rawstream demo --port 8000
    curl -i http://127.0.0.1:8000/healthz
    curl -N http://127.0.0.1:8000/events            # a ticker event every second
    curl -N -H 'Last-Event-ID: 41' http://127.0.0.1:8000/events   # resume after id 41
    python -m websockets ws://127.0.0.1:8000/ws/echo  # type a line, get it back

Routes (a public contract: docs, tests and users rely on these paths):

* ``GET /healthz``: 200 with ``{"status": "ok"}``.
* ``GET /events``: SSE, a ``tick`` event every second with increasing ids; a client that
  reconnects with ``Last-Event-ID: N`` continues at ``N + 1``.
* ``GET /ws/echo``: WebSocket, echoes every text and binary message.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import trio

from rawstream import App, Event, Request, Response, WebSocket

app = App()

#: Seconds between ticker events (tests shorten it).
TICK_INTERVAL = 1.0


@app.get("/healthz")
async def healthz(request: Request) -> Response:
    """Liveness: the process serves requests."""
    return Response.json({"status": "ok"})


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
