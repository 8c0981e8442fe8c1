"""Server-Sent Event streams as handlers see them, and how the server runs SSE routes.

The response head (200, ``text/event-stream``) is sent with the first event, or earlier by
``await stream.open()``.  Until then a handler may still refuse the stream by raising
:class:`~rawstream.request.HTTPError` (401, 404, or 204, which tells an ``EventSource`` to stop
reconnecting).  When the connection's outbox is full, the stream's slow-consumer policy
decides: wait (``BLOCK``, up to ``send_timeout``), end the stream (``DISCONNECT``), or drop
queued events for a ``gap`` event (``DROP_OLDEST``); a slow client affects nobody else.

A stream silent for ``sse_keepalive`` seconds gets a comment line (from the server's one
:class:`~rawstream.server.keepalive.KeepaliveSweeper`).  With ``compress`` and a
client that accepts gzip, each event is compressed and flushed so it decodes on arrival.

When the client goes away the handler is cancelled.  On server shutdown, or when a slow
consumer is disconnected, it is cancelled too, and the stream then ends cleanly with a
``retry:`` hint whose delay is jittered, so clients reconnect spread out in time (resuming
from ``Last-Event-ID``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from functools import partial

import trio

from ..app import Route
from ..core.compression import GzipEventEncoder, accepts_gzip
from ..core.sse import SSE_HEADERS, Event, encode_comment, encode_retry
from ..policy import SlowConsumer, SlowConsumerPolicy
from ..request import Request
from .exchange import Exchange, StreamEnd
from .keepalive import KeepaliveSweeper
from .prepared import Framed

__all__ = ["SSEStream", "run_sse"]

_GZIP_HEADERS = ((b"content-encoding", b"gzip"), (b"vary", b"accept-encoding"))


class SSEStream(SlowConsumerPolicy):
    """The event stream of one SSE response.

    Attributes:
        request: the request that opened the stream.
        last_event_id: where the client asks to resume (``Last-Event-ID`` header or
            ``last_event_id`` query parameter), or None.
        slow_consumer: the policy applied when the client cannot keep up (the route's, or
            the server's default); a handler may change it for its own stream.
    """

    def __init__(
        self,
        exchange: Exchange,
        request: Request,
        slow_consumer: SlowConsumer,
        *,
        gzip: bool = False,
    ) -> None:
        self._exchange = exchange
        self.request = request
        self.last_event_id = request.last_event_id
        self._gzip = GzipEventEncoder() if gzip else None
        headers = SSE_HEADERS + _GZIP_HEADERS if gzip else SSE_HEADERS
        self._headers = headers + exchange.cors_headers  # (the route's CORS, if any)
        self._ended = False
        self._opened = False  # the head is out (once it is, it stays out: cached)
        #: Open, uncompressed and chunked: a broadcast's shared chunk is queued as is.
        self._plain_chunks = False
        self.slow_consumer = slow_consumer

    def _frames_depend_on_each_other(self) -> bool:
        return self._gzip is not None

    @property
    def opened(self) -> bool:
        """The response head has been sent."""
        if not self._opened:  # (read on every event: a flag once true)
            self._opened = self._exchange.response_started
        return self._opened

    async def open(self) -> None:
        """Send the response head now (``EventSource.onopen`` fires on the client)."""
        if not self.opened:
            await self._exchange.start_response(200, self._headers)  # a no-op if another task won

    async def send(self, event: Event | str) -> None:
        """Send one event (a ``str`` is sent as an event's ``data``).

        When the outbox is full, the stream's ``slow_consumer`` policy applies: ``BLOCK``
        waits (up to ``send_timeout``), ``DISCONNECT`` ends the stream, ``DROP_OLDEST``
        replaces the queued events with a ``gap`` event.  A disconnected stream's handler is
        cancelled.
        """
        if isinstance(event, str):
            event = Event(event)
        await self.send_encoded(event.encode())

    async def send_encoded(self, data: bytes, *, policy: SlowConsumer | None = None) -> None:
        """Send bytes already encoded as SSE (e.g. one :meth:`Event.encode` shared by many).

        ``policy`` overrides the stream's for this send: a replay sent at the client's pace
        uses ``BLOCK`` even on a ``DISCONNECT`` stream, whose policy is for live messages.
        """
        self._raise_if_ended()
        if not self.opened:  # (no coroutine for open() on every event)
            await self.open()
        await self._exchange.send_item(
            partial(self._frame, data), policy or self.slow_consumer, self._gap
        )

    def send_nowait(self, event: Event | str | bytes) -> None:
        """Queue an event (or encoded bytes) without waiting: for fan-out from another task.

        Raises:
            trio.WouldBlock: the outbox is full and the policy is ``BLOCK``.
            trio.BrokenResourceError: the client is gone or was just disconnected.
        """
        self._raise_if_ended()
        if isinstance(event, str):
            event = Event(event)
        data = event if isinstance(event, bytes) else event.encode()
        self._queue_nowait(partial(self._frame, data))

    def _send_broadcast_nowait(self, message: Framed) -> None:
        """:meth:`send_nowait` for a broadcast (:func:`~rawstream.broadcast`, the hub): the
        message's encoded event (``message.sse``) and its chunk (``message.sse_chunk``) are
        made once for every subscriber.  A plain chunked stream queues the chunk itself, so
        fan-out copies nothing; others frame the event here.  (Private: a :class:`Framed`
        message's encodings always match each other, which bytes handed in by a caller need
        not.)"""
        if self._plain_chunks and self._exchange.outbox.put_shared(message.sse_chunk):
            return  # the fast path: an open, uncompressed, chunked stream with room (counted)
        self._raise_if_ended()
        self._queue_nowait(partial(self._frame_shared, message.sse, message.sse_chunk))
        self._plain_chunks = self.opened and self._chunk_is_shareable()

    def _queue_nowait(self, frame: Callable[[], bytes], *, event: bool = True) -> None:
        """The head first if not yet out, then the event, under the slow-consumer policy."""
        exchange = self._exchange
        if not self.opened:
            exchange.outbox.put_nowait(exchange.channel.frame_head(200, self._headers))
        exchange.send_item_nowait(frame, self.slow_consumer, self._gap, event=event)

    def _chunk_is_shareable(self) -> bool:
        """A broadcast's shared chunk is exactly this stream's framing of the event."""
        return self._gzip is None and self._exchange.channel.chunk_is_shared_framing

    def _frame_shared(self, data: bytes, chunk: bytes) -> bytes:
        return chunk if self._chunk_is_shareable() else self._frame(data)

    def _send_keepalive(self) -> None:
        """Queue a keepalive comment: :meth:`send_nowait` without counting an event (metrics
        count what handlers send, not the server's keepalives)."""
        self._raise_if_ended()
        self._queue_nowait(partial(self._frame, _KEEPALIVE), event=False)

    async def send_comment(self, text: str = "") -> None:
        """Send a comment line (clients ignore it; proxies see traffic)."""
        await self.send_encoded(encode_comment(text))

    async def send_retry(self, milliseconds: int) -> None:
        """Tell the client how long to wait before reconnecting."""
        await self.send_encoded(encode_retry(milliseconds))

    def _raise_if_ended(self) -> None:
        # A stream object kept by a fan-out must not write into the connection's next response.
        if self._ended:
            raise trio.BrokenResourceError("this SSE stream has ended")

    def _frame(self, data: bytes) -> bytes:
        if self._gzip is not None:
            data = self._gzip.encode(data)
        return self._exchange.channel.frame_body(data)

    def last_bytes(self, data: bytes = b"") -> bytes:
        """The body's final bytes: ``data`` (e.g. a ``retry:`` hint), compressed with the gzip
        trailer if the stream is compressed."""
        return self._gzip.finish(data) if self._gzip is not None else data

    def _keepalive_due(self, now: float, interval: float) -> bool:
        """Silent for ``interval`` seconds: open, nothing queued, nothing put since."""
        outbox = self._exchange.outbox
        return (
            not self._ended
            and self.opened
            and not outbox.buffered
            and now - outbox.last_put >= interval
        )

    def _gap(self, dropped: int) -> bytes:
        return self._frame(Event(json.dumps({"dropped": dropped}), event="gap").encode())


async def run_sse(exchange: Exchange, request: Request, route: Route) -> None:
    """Run an SSE route's handler, in either form, and end its response."""
    config = exchange.config
    policy = route.slow_consumer or config.slow_consumer
    wants_gzip = config.sse_gzip if route.compress is None else route.compress
    stream = SSEStream(
        exchange,
        request,
        policy,
        gzip=wants_gzip
        and policy is not SlowConsumer.DROP_OLDEST
        and accepts_gzip(request.headers.get("accept-encoding")),
    )
    if exchange.channel.is_head_request:  # the SSE head answers HEAD; the handler does not run
        await stream.open()
        await exchange.finish_stream(StreamEnd.DONE)  # (no body, so no gzip trailer either)
        return

    body = (
        partial(_send_generated, stream, route.handler, request)
        if route.is_generator
        else partial(route.handler, request, stream)  # (no coroutine of ours in between)
    )
    keepalive: KeepaliveSweeper = exchange.server.keepalive
    keepalive.add(stream)
    try:
        end = await exchange.run_stream(
            body, watch_disconnect=True, end_on_shutdown=True, kind="sse"
        )
    finally:
        keepalive.discard(stream)
        stream._ended = True
        stream._plain_chunks = False
    if end in (StreamEnd.DONE, StreamEnd.SHUTDOWN) and not exchange.outbox.broken:
        await stream.open()
    hint = b"" if end is StreamEnd.DONE else exchange.shutdown_retry_hint()
    await exchange.finish_stream(end, tail=stream.last_bytes(hint), resumable=True)


async def _send_generated(
    stream: SSEStream,
    handler: Callable[[Request], AsyncGenerator[Event | str, None]],
    request: Request,
) -> None:
    """An async-generator route: send what it yields, and close it however the stream ends."""
    async with aclosing(handler(request)) as events:
        async for event in events:
            await stream.send(event)


_KEEPALIVE = encode_comment()
