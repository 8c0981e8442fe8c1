"""A live data feed: simulated prices published by a service, streamed over SSE with replay.

Try it:
    rawstream run examples/live_feed.py --port 8000        # or: python examples/live_feed.py
    curl -N http://127.0.0.1:8000/prices                   # every symbol
    curl -N 'http://127.0.0.1:8000/prices?channel=ACME'    # one symbol
    curl -N -H 'Last-Event-ID: ID' 'http://127.0.0.1:8000/prices?channel=ACME'  # resume
    curl -i 'http://127.0.0.1:8000/prices?channel=NOPE'    # 404: not a symbol we publish
In a browser console: ``new EventSource("/prices").onmessage = e => console.log(e.data)``
(``EventSource`` reconnects by itself and sends the last id it saw as ``Last-Event-ID``).

Why it is built this way:
* The producer is an app service (``app.service``): one task for the whole server, started
  before it listens and stopped after the drain; it does not care how many clients there are.
* Each symbol is a hub channel.  ``hub.publish`` encodes a tick once (the SSE bytes, framed
  once) and puts those same bytes into every subscriber's outbox without waiting for any of
  them: ten thousand clients cost ten thousand references, not ten thousand encodings.
* ``sse_channels`` serves the channels: ``Last-Event-ID`` replays what a client missed from the
  bounded history, then goes live with no gap and no duplicate.  With several symbols on one
  stream, the event id is the cursor of the whole stream (``ACME=ID,INITECH=ID``).
* A client too slow for the feed is disconnected with a ``retry:`` hint (the route's
  ``DISCONNECT`` policy) and resumes from history when it comes back; the publisher and the
  other clients never wait for it.

* With several workers sharing a broker (``--workers N --broker redis://...``) the channels
  are shared, so only worker 1 runs the ticker (``RAWSTREAM_WORKER``, set by the CLI):
  every worker would otherwise publish its own ticks, each price twice or more.  With the
  in-memory hub each worker has channels of its own and ticks for its own clients.

Left out: real market data and authentication.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
from functools import partial

import trio

from rawstream import App, HTTPError, Request, serve
from rawstream.hub import BrokerUnavailable, HistoryLimits, open_broker, sse_channels
from rawstream.logs import WORKER_ENV

#: Seconds between two ticks (tests shorten it).
INTERVAL = 0.5
SYMBOLS = ("ACME", "GLOBEX", "INITECH")

app = App()
hub = open_broker(history=HistoryLimits(max_messages=600, max_age=300))  # the last 5 minutes
app.service(hub.run)


async def only_symbols(request: Request, channels: tuple[str, ...]) -> None:
    """Refuse channels that are not symbols we publish (a typed answer, not an empty stream)."""
    unknown = sorted(set(channels) - set(SYMBOLS))
    if unknown:
        raise HTTPError(404, f"unknown symbol(s): {', '.join(unknown)}")


sse_channels(app, "/prices", hub, default_channels=SYMBOLS, authorize=only_symbols)


async def ticker(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Publish one simulated tick per symbol every ``INTERVAL`` seconds (a random walk)."""
    rng = random.Random(42)
    prices = {symbol: 100.0 for symbol in SYMBOLS}
    task_status.started()
    seq = 0
    while True:
        await trio.sleep(INTERVAL)
        seq += 1
        for symbol in SYMBOLS:
            prices[symbol] = max(0.01, prices[symbol] * (1 + rng.gauss(0, 0.002)))
            price = round(prices[symbol], 2)
            tick = {"symbol": symbol, "seq": seq, "price": price, "time": round(time.time(), 3)}
            with contextlib.suppress(BrokerUnavailable):  # Redis down: skip; clients resume
                await hub.publish(symbol, json.dumps(tick), "tick")


def runs_the_ticker() -> bool:
    """One ticker per set of channels: every process with its own (in-memory) hub, but only
    worker 1 when the workers share a broker (the CLI numbers them in RAWSTREAM_WORKER)."""
    return hub.per_process or os.environ.get(WORKER_ENV, "1") == "1"


if runs_the_ticker():
    app.service(ticker)


if __name__ == "__main__":  # python examples/live_feed.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
