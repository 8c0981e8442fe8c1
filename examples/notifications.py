"""Notifications per user over SSE: replay what was missed, and say so when it is gone.

Try it:
    rawstream run examples/notifications.py --port 8000    # or: python examples/notifications.py
    curl -N http://127.0.0.1:8000/notifications/ann                        # keep it open
    curl -X POST --data 'build 12 passed' http://127.0.0.1:8000/notify/ann  # {"id": ...}
Stop the first curl, notify ann twice more, then resume from the last id it printed: you get
exactly the two you missed, then live ones:
    curl -N -H 'Last-Event-ID: ID' http://127.0.0.1:8000/notifications/ann
An id the history no longer reaches (more than ``HISTORY_MESSAGES`` notifications ago, or from
before a restart) gets ``event: reset`` first, then everything still kept:
    curl -N -H 'Last-Event-ID: nonsense' http://127.0.0.1:8000/notifications/ann
A browser's ``EventSource`` sends ``Last-Event-ID`` by itself when it reconnects.

Why it is built this way:
* One hub channel per user (``user:NAME``) with a bounded history (a count and an age), so a
  client that was away gets what it missed from the server, not from a second API.
* Resuming is exact: no gap, no duplicate, even while notifications race the reconnect.  When
  exactness is impossible the stream says so with a ``reset`` event (data ``{"channel",
  "reason"}``, reason ``expired``/``unknown``/``malformed``), and the client reloads what it
  shows instead of silently missing something.
* The stream opens with ``retry:`` and an id-only event holding its position, so a client cut
  off before its first notification still resumes from the right place.
* A client that cannot keep up is disconnected with a ``retry:`` hint and resumes from history.

Left out: authentication.  Here anyone may read anyone's notifications; a real app takes the
user from its session (a cookie or token checked in the handler, ``HTTPError(401)`` if not).
"""

from __future__ import annotations

import logging
import re
import sys
from functools import partial

import trio

from rawstream import App, HTTPError, Request, Response, SlowConsumer, SSEStream, serve
from rawstream.hub import HistoryLimits, open_broker, stream_subscription

HISTORY_MESSAGES = 100  # kept per user (and for at most a week)
MAX_NOTIFICATION_BYTES = 4096
USER = re.compile(r"[a-z0-9_-]{1,64}")

app = App()
hub = open_broker(history=HistoryLimits(max_messages=HISTORY_MESSAGES, max_age=7 * 86400))
app.service(hub.run)


def channel_of(request: Request) -> str:
    """The user's channel; 400 for a user name that is not one."""
    user = request.path_params["user"]
    if not USER.fullmatch(user):
        raise HTTPError(400, "user names are 1 to 64 of a-z 0-9 _ -")
    return f"user:{user}"


@app.sse("/notifications/{user}", slow_consumer=SlowConsumer.DISCONNECT)
async def notifications(request: Request, stream: SSEStream) -> None:
    """The user's notifications: replay after ``Last-Event-ID`` (or ``?last_event_id=``),
    then live ones."""
    await stream_subscription(hub, (channel_of(request),), stream)


@app.post("/notify/{user}")
async def notify(request: Request) -> Response:
    """Send the body (UTF-8 text) to the user as a ``notification`` event."""
    channel = channel_of(request)
    body = await request.body()
    if not body or len(body) > MAX_NOTIFICATION_BYTES:
        raise HTTPError(400, f"send 1 to {MAX_NOTIFICATION_BYTES} bytes of text")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HTTPError(400, "the body must be UTF-8 text") from None
    message_id = await hub.publish(channel, text, "notification")
    return Response.json({"id": message_id})


if __name__ == "__main__":  # python examples/notifications.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
