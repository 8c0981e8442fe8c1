"""The demo application, written with the public API only: read it as an example.

Try it::

    rawstream demo --port 8000
    open http://127.0.0.1:8000/                              # the page
    curl -i http://127.0.0.1:8000/healthz
    curl http://127.0.0.1:8000/metrics                       # Prometheus text
    curl -N http://127.0.0.1:8000/events                      # the ticker channel, live
    curl -N 'http://127.0.0.1:8000/events?channel=news&channel=ticker'
    curl -X POST --data 'hello' 'http://127.0.0.1:8000/publish?channel=news'
    curl -N -H 'Last-Event-ID: ID' 'http://127.0.0.1:8000/events?channel=news'  # replay
    python -m websockets 'ws://127.0.0.1:8000/ws/chat?room=lobby&name=ann'
    python -m websockets ws://127.0.0.1:8000/ws/echo  # type a line, get it back

Routes (a public contract: docs, tests and users rely on these paths):

* ``GET /``: the demo page (chat, ticker, LLM chat, long task); ``GET /static/{name}`` its
  assets (:mod:`rawstream.demo.page`; docs/DEMO.md).
* ``GET /healthz``: ``{"status": "ok" | "degraded", "pid": PID, "broker": ...}``, always 200
  while the process serves (``degraded``: the broker is unreachable; publishes answer 503,
  channel streams end with ``retry:`` until it is back, everything else works).
* ``GET /metrics``: this process's metrics in the Prometheus text format (connections by
  kind, events, bytes, slow consumers, outbox depth, hub subscribers per channel, ...;
  :mod:`rawstream.metrics`; docs/OBSERVABILITY.md).  With ``--workers N`` each worker answers
  for itself (``rawstream_process_info`` names it).
* ``GET /events?channel=NAME[&channel=NAME...]``: SSE from the hub (default channel
  ``ticker``, which gets a ``tick`` event every second, from worker 1 only when
  workers share a broker), resumable from ``Last-Event-ID``
  (header) or ``last_event_id`` (query); see :mod:`rawstream.hub.sse`.
* ``POST /publish?channel=NAME[&event=TYPE]``: publish the body (UTF-8 text) on a channel;
  answers ``{"id": ID, "channel": NAME}``.
* ``GET /ws/chat?room=NAME[&name=WHO][&last_event_id=ID]``: WebSocket chat room; each text
  message a member sends is broadcast as ``{"user": WHO, "text": TEXT}`` (see
  :mod:`rawstream.hub.rooms` for what members receive).
* ``GET /ws/echo``: WebSocket, echoes every text and binary message.
* ``GET /stream?n=N&size=S``: SSE, N events (id 0 to N-1) of S bytes of data each, as fast as
  the connection takes them (``n=0``: endless).  Load and slow-client tests use it.
* ``POST /v1/chat/completions``, ``GET /v1/models``: OpenAI-compatible chat completions over
  the built-in model, or relayed upstream (:mod:`rawstream.llm`; docs/LLM.md).
* ``POST /tasks?steps=N[&interval=MS]``: a long task whose ``progress`` and ``done`` events go
  to the hub channel ``task/ID`` (:mod:`rawstream.demo.tasks`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import trio

from rawstream import App, Event, HTTPError, Request, Response, SSEStream, WebSocket
from rawstream.app import Service
from rawstream.hub import Broker, BrokerUnavailable, Hub, Rooms, open_broker, sse_channels
from rawstream.llm import DEFAULT_TOKEN_RATE, add_chat_completions
from rawstream.llm.relay import Relay
from rawstream.logs import WORKER_ENV
from rawstream.metrics import add_metrics

from .page import add_demo_page
from .tasks import add_tasks

#: Seconds between ticker events (tests shorten it).
TICK_INTERVAL = 1.0
#: Largest event /stream will make (its memory is the client's to ask for, so bound it).
MAX_STREAM_EVENT_BYTES = 1024 * 1024
#: Channels the demo's in-memory hub keeps (each finished task's holds up to ~70 KiB; the
#: least recently published ones without a subscriber are forgotten first).
DEMO_MAX_CHANNELS = 1000
#: The channel the ticker publishes to, and the one /events streams by default.
TICKER = "ticker"


def open_demo_broker(url: str | None = None) -> Broker:
    """The demo's hub: :func:`~rawstream.hub.open_broker` for ``url``, and, in memory, bounded
    to ``DEMO_MAX_CHANNELS`` channels (every task and room is a channel).

    Raises:
        ValueError: an unsupported URL scheme.
    """
    hub = open_broker(url)
    if isinstance(hub, Hub):
        hub.max_channels = DEMO_MAX_CHANNELS
    return hub


def build_demo(
    hub: Broker | None = None,
    *,
    upstream: str | Relay | None = None,
    token_rate: float = DEFAULT_TOKEN_RATE,
) -> App:
    """The demo app over ``hub`` (default: :func:`~rawstream.hub.open_broker`, in memory
    unless ``$RAWSTREAM_BROKER`` names Redis).

    ``/v1/chat/completions`` answers with the built-in token generator at ``token_rate``
    tokens a second, or relays ``upstream`` (an OpenAI-compatible base URL, or a
    :class:`~rawstream.llm.relay.Relay`) when given.
    """
    if hub is None:
        hub = open_demo_broker()
    app = App()
    add_demo_page(app)
    app.service(hub.run)
    if hub.per_process or os.environ.get(WORKER_ENV, "1") == "1":  # shared: one ticker a node
        app.service(_ticker(hub))
    rooms = Rooms(hub)
    sse_channels(app, "/events", hub, default_channels=[TICKER])

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        """Liveness: the process serves requests (``pid`` tells workers apart)."""
        health = hub.health()
        answer = {"status": health.status, "pid": os.getpid(), "broker": type(hub).__name__}
        if health.detail:
            answer["detail"] = health.detail
        return Response.json(answer)

    @app.post("/publish")
    async def publish(request: Request) -> Response:
        """Publish the body on ``?channel=``; answer with the message's id."""
        channel = request.query.get("channel")
        if not channel:
            raise HTTPError(400, "name the channel: /publish?channel=NAME")
        try:
            data = (await request.body()).decode()
        except UnicodeDecodeError:
            raise HTTPError(400, "the body must be UTF-8 text") from None
        try:
            message_id = await hub.publish(channel, data, request.query.get("event"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        except BrokerUnavailable as exc:
            raise HTTPError(503, str(exc)) from None
        return Response.json({"id": message_id, "channel": channel})

    @app.websocket("/ws/chat")
    async def chat(ws: WebSocket) -> None:
        """A chat room: every text message is broadcast to the room's members."""
        room = ws.request.query.get("room", "lobby")
        user = ws.request.query.get("name", "anonymous")[:64]
        try:
            rooms.channel(room)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        async with rooms.join(ws, room, ws.request.last_event_id) as member:
            async for text in ws:
                if isinstance(text, str):
                    await member.broadcast(json.dumps({"user": user, "text": text}))

    add_chat_completions(app, upstream=upstream, token_rate=token_rate)
    add_tasks(app, hub)
    add_metrics(app, "/metrics", hub=hub)
    app.add_route("/ws/echo", echo, kind="websocket")
    app.add_route("/stream", stream_events, kind="sse")
    return app


def _ticker(hub: Broker) -> Service:
    async def ticker(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish a ``tick`` to the ticker channel every ``TICK_INTERVAL`` seconds."""
        task_status.started()
        tick = 0
        while True:
            await trio.sleep(TICK_INTERVAL)
            tick += 1
            data = json.dumps({"tick": tick, "time": round(time.time(), 3)})
            with contextlib.suppress(BrokerUnavailable):  # /healthz says so; ticks resume
                await hub.publish(TICKER, data, "tick")

    return ticker


async def echo(ws: WebSocket) -> None:
    """Send every message back as it came: text as text, binary as binary."""
    async for message in ws:
        await ws.send(message)


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


def __getattr__(name: str) -> App:
    """``rawstream.demo.app``: the demo as ``rawstream run rawstream.demo:app`` serves it,
    built on first use (so importing this module opens no broker)."""
    if name == "app":
        app = build_demo()
        globals()["app"] = app
        return app
    raise AttributeError(name)
