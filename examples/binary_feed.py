"""A binary feed over WebSocket: samples packed with msgpack, encoded once for every client.

Try it (``pip install msgpack`` first; the example says so and stops if it is missing):
    rawstream run examples/binary_feed.py --port 8000      # or: python examples/binary_feed.py
    python -c "import msgpack; from websockets.sync.client import connect
    with connect('ws://127.0.0.1:8000/feed') as ws:
        for frame in ws: print(msgpack.unpackb(frame))"
Each binary message is one frame of samples: ``{"seq": N, "time": T, "values": [8 floats]}``
(``seq`` counts up by one, so a client can tell when it missed some).  ``python -m
websockets ws://127.0.0.1:8000/feed`` shows the frames arrive, but not what they hold.

Why it is built this way:
* msgpack instead of JSON: numbers stay binary (a float is 9 bytes, not up to 20 characters of
  text), and decoding is cheaper; the WebSocket carries it as binary messages as is.
* One sampler (an app service) packs each frame once and ``rawstream.broadcast`` frames it
  once and queues the same bytes on every client, never waiting: the feed runs at its own
  pace whatever the clients do.
* A client that cannot keep up loses the oldest queued frames, not the newest: the route's
  ``DROP_OLDEST`` policy drops what is queued and not yet written and puts a text message
  ``{"type":"gap","dropped":N}`` in its place (for live samples, stale is worthless).  The
  outbox is bounded in bytes, so a slow client costs a bounded amount of memory.
* The feed only sends: a client that sends anything is closed with 1003 (unsupported data).

Left out: choosing which values to receive, authentication, history (see live_feed.py).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from functools import partial

import trio

from rawstream import App, SlowConsumer, WebSocket, broadcast, serve

try:
    import msgpack
except ImportError:
    raise SystemExit("examples/binary_feed.py needs msgpack: pip install msgpack") from None

#: Seconds between two frames (tests shorten it).
INTERVAL = 0.1
VALUES = 8

app = App()
clients: set[WebSocket] = set()


@app.service
async def sampler(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Pack a frame of simulated samples every ``INTERVAL`` and queue it on every client."""
    task_status.started()
    seq = 0
    while True:
        await trio.sleep(INTERVAL)
        seq += 1
        values = [round(math.sin(seq / 10 + k), 4) for k in range(VALUES)]
        frame = msgpack.packb({"seq": seq, "time": time.time(), "values": values})
        broadcast(clients, frame)  # (one leaving is skipped; its finally removes it)


@app.websocket("/feed", slow_consumer=SlowConsumer.DROP_OLDEST)
async def feed(ws: WebSocket) -> None:
    """Binary msgpack frames until the client leaves."""
    await ws.accept()
    clients.add(ws)
    try:
        async for _ in ws:
            await ws.close(1003, "this feed only sends")
    finally:
        clients.discard(ws)


if __name__ == "__main__":  # python examples/binary_feed.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
