"""Channels as an SSE route, in one line: ``sse_channels(app, "/events", hub)``.

``GET /events?channel=news&channel=prices`` streams both channels on one connection (a browser
page gets six connections per host over HTTP/1.1; one stream can carry every channel it
needs).  The stream:

1. opens with ``retry:`` and an ``id:`` holding the subscription's cursor, so a client that
   loses the connection before any event still resumes without a gap;
2. replays what followed the client's ``Last-Event-ID`` header (or ``last_event_id`` query
   parameter, for clients that cannot set headers), or sends a ``reset`` event when that id
   is too old, unknown or malformed;
3. goes live: each message's bytes, encoded once per publish, go straight from the publish
   into this connection's outbox.  When the outbox is full the route's slow-consumer policy
   decides; by default (``DISCONNECT``) the stream ends with ``retry:`` and the client
   reconnects and resumes from history, so a slow client costs the others nothing.

With one channel the event ids are the channel's ids.  With several, every event's id is the
cursor of the whole subscription (``news=ID,prices=ID``), so one ``Last-Event-ID`` resumes
every channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import trio

from ..app import App
from ..core.sse import Event
from ..policy import SlowConsumer
from ..request import HTTPError, Request
from ..server.fanout import offer
from ..server.sse import SSEStream
from .broker import Broker, BrokerUnavailable, Subscription
from .message import Message, check_channel

__all__ = ["channel_names", "sse_channels"]

log = logging.getLogger("rawstream.hub")

Authorize = Callable[[Request, tuple[str, ...]], Awaitable[None]]


def channel_names(
    request: Request, default: Sequence[str] = (), *, max_channels: int = 16
) -> tuple[str, ...]:
    """The ``channel=`` parameters of ``request`` (or ``default``), validated.

    Raises:
        HTTPError: 400 for no channel, an invalid name, or more than ``max_channels``.
    """
    names = tuple(dict.fromkeys(request.query.getlist("channel"))) or tuple(default)
    if not names:
        raise HTTPError(400, "name at least one channel: ?channel=NAME")
    if len(names) > max_channels:
        raise HTTPError(400, f"at most {max_channels} channels per stream")
    for name in names:
        try:
            check_channel(name)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
    return names


def sse_channels(
    app: App,
    path: str,
    hub: Broker,
    *,
    default_channels: Sequence[str] = (),
    authorize: Authorize | None = None,
    slow_consumer: SlowConsumer = SlowConsumer.DISCONNECT,
    retry_ms: int = 2000,
    max_channels: int = 16,
) -> None:
    """Serve ``hub``'s channels as SSE at ``GET path?channel=NAME[&channel=NAME...]``.

    Args:
        default_channels: the channels of a request that names none.
        authorize: ``await authorize(request, channels)`` may raise
            :class:`~rawstream.request.HTTPError` (401, 403) to refuse the stream.
        slow_consumer: the policy when a client cannot keep up (see the module doc).
        retry_ms: the reconnection delay sent to clients.
        max_channels: channels one stream may carry.
    """

    @app.sse(path, slow_consumer=slow_consumer)
    async def stream_channels(request: Request, stream: SSEStream) -> None:
        channels = channel_names(request, default_channels, max_channels=max_channels)
        if authorize is not None:
            await authorize(request, channels)
        await stream_subscription(hub, channels, stream, retry_ms=retry_ms)


async def stream_subscription(
    hub: Broker, channels: tuple[str, ...], stream: SSEStream, *, retry_ms: int = 2000
) -> None:
    """Replay, then stream live, ``channels`` on ``stream`` from ``stream.last_event_id``
    (what :func:`sse_channels` routes run; call it from a handler of your own)."""
    single = len(channels) == 1
    subscription: Subscription | None = None

    def encode(message: Message) -> bytes:
        if single:
            return message.sse
        assert subscription is not None
        return b"id: " + subscription.cursor().encode() + b"\n" + message.sse_body

    def sink(message: Message) -> bool:
        if single:  # (False: BLOCK policy and a full outbox: catch up from history)
            return offer(stream, message)
        try:
            stream.send_nowait(encode(message))
        except trio.WouldBlock:
            return False
        return True

    try:
        async with hub.subscribe(channels, stream.last_event_id, sink=sink) as subscription:
            await stream.send(Event(id=subscription.cursor(), retry=retry_ms))
            # What the sink did not take (replay, catch-up, resets) goes at the client's pace,
            # waiting for room: the route's policy is for live messages, which cannot wait.
            async for item in subscription:
                data = encode(item) if isinstance(item, Message) else item.sse
                await stream.send_encoded(data, policy=SlowConsumer.BLOCK)
    except BrokerUnavailable as exc:
        # The stream ends cleanly; the client reconnects after retry_ms and resumes.
        log.info("ending a stream of %s: %s", ",".join(channels), exc)
        if not stream.opened:
            raise HTTPError(503, "the message broker is unavailable") from exc
        await stream.send_retry(retry_ms)
