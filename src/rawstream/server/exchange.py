"""One request and what answers it: the exchange.

An :class:`Exchange` begins when a protocol driver has read a request head and ends when its
answer is written or cut off.  The answer is a plain response, a streamed body, an SSE stream
or a WebSocket session; the handles handlers see (:class:`~rawstream.request.Request`, the
request body, :class:`~rawstream.server.sse.SSEStream`,
:class:`~rawstream.server.websocket.WebSocket`) talk to their exchange only, never to the
connection.  The exchange talks to its driver through a
:class:`~rawstream.server.channel.Channel`: framing (sans-IO, bytes out), the outbox its bytes
go into, the request body's bytes, the client's departure and, for a WebSocket, the upgraded
byte stream.  The HTTP/1.1 driver (:mod:`rawstream.server.h1`) is the channel of its one
exchange at a time; HTTP/2 would give each stream its own channel, and nothing above changes.

The exchange owns what is the same in every protocol: its lifecycle (:class:`ExchangeState`,
changed only in :meth:`Exchange._enter`) and its one end reason (:class:`StreamEnd`, first
reason wins); running a streaming handler in a scope that the client's departure, a
slow-consumer decision or shutdown cancels (:meth:`Exchange.run_stream`); the slow-consumer
decision for every stream item (:meth:`Exchange.send_item`); the request body; and whether
the connection may carry another exchange after it (:attr:`Exchange.reusable`).
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Literal

import trio
from trio.lowlevel import checkpoint

from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.http import BodyData, ClientClosed, EndOfRequest, RequestHead
from ..core.sse import encode_retry
from ..pacing import paced_checkpoint
from ..policy import SlowConsumer
from ..request import HTTPError
from .channel import Channel, HeaderList, ServerContext
from .config import Config

__all__ = ["TRANSITIONS", "Exchange", "ExchangeState", "RequestBody", "StreamEnd", "StreamKind"]

log = logging.getLogger("rawstream.connection")


class ExchangeState(enum.Enum):
    """Where an exchange is (graceful shutdown and statistics act on it)."""

    __hash__ = object.__hash__  # (singletons: cheaper than Enum's, paid per state change)

    HANDLING = "handling"  # routed: a plain handler runs, or an answer is being written
    STREAMING = "streaming"  # a stream runs: SSE, a streamed body, a WebSocket session
    WEBSOCKET = "websocket"  # ... a WebSocket session whose handshake was accepted
    ENDED = "ended"  # answered; the driver moved on


_S = ExchangeState

#: Every allowed change of state.
TRANSITIONS: dict[ExchangeState, frozenset[ExchangeState]] = {
    _S.HANDLING: frozenset({_S.STREAMING, _S.ENDED}),
    _S.STREAMING: frozenset({_S.WEBSOCKET, _S.ENDED}),
    _S.WEBSOCKET: frozenset({_S.ENDED}),
    _S.ENDED: frozenset(),
}


class StreamEnd(enum.Enum):
    """How a streaming handler ended."""

    DONE = "done"  # it returned
    CLIENT_GONE = "client_gone"  # EOF or reset from the client
    SHUTDOWN = "shutdown"  # the server is draining
    SLOW_CONSUMER = "slow_consumer"  # the client could not keep up (policy DISCONNECT/BLOCK)
    FAILED = "failed"  # it raised


StreamKind = Literal["sse", "stream", "websocket"]  # (what a stream is, for statistics)


class Exchange:
    """One request and its answer (see the module doc).

    Attributes:
        head: the request head.
        client: the client's ``(host, port)``.
        state: where the exchange is (changed only by :meth:`_enter`).
        end: why its stream ended (None while it runs, or if it had none).
        kind: what its stream is, once it has one (statistics).
        reusable: the connection may carry another exchange after this one.
        linger: if the connection closes after this exchange, it closes lingering (the
            client may still be sending what we refused).
        cors_headers: the route's CORS headers, for every answer (see :mod:`.origin`).
        tls: the request came over TLS (for the same-origin check of a WebSocket).
    """

    # (Slots: an idle stream holds this object for as long as it lasts.)
    __slots__ = (
        "_end_on_shutdown",
        "_nursery",
        "_on_shutdown",
        "_scope",
        "channel",
        "client",
        "config",
        "cors_headers",
        "end",
        "head",
        "kind",
        "linger",
        "outbox",
        "reusable",
        "server",
        "state",
        "tls",
    )

    def __init__(
        self,
        channel: Channel,
        head: RequestHead,
        *,
        client: tuple[str, int],
        config: Config,
        server: ServerContext,
        tls: bool,
    ) -> None:
        self.channel = channel
        self.head = head
        self.client = client
        self.config = config
        self.server = server
        self.tls = tls
        self.outbox = channel.outbox
        self.state = ExchangeState.HANDLING
        self.end: StreamEnd | None = None
        self.kind: StreamKind = "stream"
        self.reusable = True
        self.linger = False
        self.cors_headers: tuple[tuple[bytes, bytes], ...] = ()
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._end_on_shutdown = False
        self._on_shutdown: Callable[[], None] | None = None

    def _enter(self, state: ExchangeState) -> None:
        """The one place the state changes."""
        assert state in TRANSITIONS[self.state], f"exchange: {self.state} -> {state}"
        self.state = state

    def finish(self) -> None:
        """The exchange is over (its driver moves on)."""
        if self.state is not ExchangeState.ENDED:
            self._enter(ExchangeState.ENDED)

    def accepted_websocket(self) -> None:
        """The WebSocket handshake was accepted."""
        self._enter(ExchangeState.WEBSOCKET)

    def set_shutdown_action(self, action: Callable[[], None] | None) -> None:
        """What :meth:`begin_shutdown` does for an accepted WebSocket (send close 1001)."""
        self._on_shutdown = action

    @property
    def response_started(self) -> bool:
        """The response head has been sent (queued)."""
        return self.channel.response_started

    # -- sending -----------------------------------------------------------------------------

    async def emit(self, produce: Callable[[], bytes]) -> None:
        """Wait for room in the outbox, then run the core call ``produce`` and queue its bytes.

        No await separates the core call from queueing, so bytes enter the outbox in the
        order the core produced them.
        """
        outbox = self.outbox  # (with room, wait_writable is a paced checkpoint: skip a level)
        await (outbox.wait_writable() if outbox.full else paced_checkpoint())
        outbox.put_nowait(produce(), write_through=True)

    async def send_error(
        self,
        status: int,
        message: str = "",
        headers: tuple[tuple[bytes, bytes], ...] = (),
        *,
        close: bool = True,
    ) -> None:
        """Answer with an error status; unless ``close`` is false the connection then ends.

        A route's CORS headers are added, so a page allowed to read its responses can read
        its errors too.  Once a response has started it is too late for a status: the
        response is cut off instead.
        """
        headers = (*headers, *self.cors_headers)
        if close:
            self.reusable = False
            self.linger = True  # the client may still be sending

        def produce() -> bytes:
            if self.channel.response_started:
                self.reusable = False
                self.channel.abort()
                return b""
            return self.channel.frame_error(status, message, headers, close)

        await self.emit(produce)

    async def start_response(self, status: int, headers: HeaderList) -> None:
        """Send a response head whose body will be streamed (once, if tasks race to do it)."""
        channel = self.channel
        await self.emit(
            lambda: b"" if channel.response_started else channel.frame_head(status, headers)
        )

    def shutdown_retry_hint(self) -> bytes:
        """A ``retry:`` field with a random delay in ``shutdown_retry_ms``."""
        low, high = self.config.shutdown_retry_ms
        return encode_retry(random.randint(low, high))

    # -- the request body ----------------------------------------------------------------------

    async def read_body(self) -> bytes:
        """The whole request body (see :meth:`Request.body <rawstream.request.Request.body>`)."""
        return b"".join([chunk async for chunk in RequestBody(self)])

    async def discard_unread_body(self) -> None:
        """Read what the handler left of the body, so the connection can be reused; or give
        up reuse if it cannot be read.  (Not while the server drains: the connection ends.)"""
        if not self.reusable or self.server.draining or not self.channel.body_unread:
            return
        try:
            await self.read_body()
        except HTTPError:
            self.reusable = False

    # -- streaming handlers ------------------------------------------------------------------

    async def run_stream(
        self,
        body: Callable[[], Awaitable[None]],
        *,
        watch_disconnect: bool,
        end_on_shutdown: bool = False,
        with_tasks: bool = False,
        kind: StreamKind = "stream",
    ) -> StreamEnd:
        """Run a streaming handler in a scope the client's departure cancels.

        With ``end_on_shutdown`` (SSE and WebSocket: streams that never end by themselves)
        shutdown cancels it too; other streams are responses in progress, left to finish
        until the drain deadline.  ``with_tasks`` runs it in a nursery, so
        :meth:`start_task` can add siblings (a WebSocket's frame reader); without, a cancel
        scope is all it needs (an idle SSE stream is cheaper for it).  ``kind`` names the
        stream in statistics.
        """
        self._enter(ExchangeState.STREAMING)
        self.kind = kind
        self.outbox.streaming = True
        self._end_on_shutdown = end_on_shutdown
        failure: HTTPError | None = None
        # (The body is awaited right here, in the scope, not through a helper coroutine:
        # every coroutine between a connection's task and its handler's wait is memory an
        # idle stream holds.  ``nullcontext`` costs no frame once entered.)
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() if with_tasks else nullcontext() as nursery:
                    self._nursery = nursery
                    self._stream_started(end_on_shutdown, watch_disconnect)
                    try:
                        await body()
                        self._end_stream(StreamEnd.DONE)  # (cancels what runs beside it)
                    except Exception as exc:
                        failure = self._stream_failed(exc)
        finally:
            self._nursery = self._scope = None
            self.outbox.streaming = False
            self.channel.watch_client(None, stream=False)
        end = self.end or StreamEnd.DONE
        if failure is not None and not self.outbox.broken:
            # Outside the (cancelled) stream scope: the answer must still go out.
            await self.send_error(failure.status, failure.message)
        if end is not StreamEnd.DONE:
            log.debug("stream ended: %s", end.value)
        return end

    def _stream_started(self, end_on_shutdown: bool, watch_disconnect: bool) -> None:
        """In the stream's scope: end it at once if the server is draining or the client
        has gone already; otherwise have the driver call back when the client leaves."""
        if end_on_shutdown and self.server.draining:
            self._end_stream(StreamEnd.SHUTDOWN)
        if watch_disconnect:
            self.channel.watch_client(self.client_gone, stream=True)

    def _stream_failed(self, exc: Exception) -> HTTPError | None:
        """Record how a streaming handler failed; return the error to answer with, if any."""
        if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
            self._end_stream(StreamEnd.CLIENT_GONE)
            return None
        self._end_stream(StreamEnd.FAILED)
        if isinstance(exc, HTTPError):
            return exc
        log.exception("streaming handler failed", exc_info=exc)
        return HTTPError(500, "internal server error")

    def start_task(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Start a sibling of the streaming handler (a WebSocket's frame reader)."""
        assert self._nursery is not None, "no stream with tasks is running"
        self._nursery.start_soon(fn)

    def _end_stream(self, end: StreamEnd) -> None:
        """Record why the stream ends (first reason wins) and cancel what is left of it."""
        if self.end is None:
            self.end = end
        self.outbox.streaming = False
        if self._scope is not None:
            self._scope.cancel()

    def end_after_refusal(self) -> None:
        """The client broke the protocol and has been told (a close frame is queued): end
        the stream, then close with a brief lingering close, so the bytes it still sends do
        not make the kernel reset the connection and discard our answer unread."""
        self.linger = True
        self.client_gone()

    def client_gone(self) -> None:
        """The client closed or reset the connection: cancel its handler now."""
        self.reusable = False
        self._end_stream(StreamEnd.CLIENT_GONE)

    async def finish_stream(
        self, end: StreamEnd, *, tail: bytes = b"", resumable: bool = False
    ) -> None:
        """End a streamed response after :meth:`run_stream`: cleanly, or by cutting it off.

        On a clean end, ``tail`` (e.g. a ``retry:`` hint, a gzip trailer) and the end of the
        body are queued without waiting for room: they are few, and the final flush is
        bounded by ``close_timeout``.  A ``resumable`` stream (SSE: the client reconnects and
        resumes) also ends cleanly when cut by shutdown or for being slow; any other stream
        cut short is left unterminated, so its client can see the body is incomplete.
        """
        channel = self.channel
        cut_short = (StreamEnd.SHUTDOWN, StreamEnd.SLOW_CONSUMER)
        ends_cleanly = end is StreamEnd.DONE or (resumable and end in cut_short)
        if not (ends_cleanly and channel.response_started and not self.outbox.broken):
            self.reusable = False
            if channel.response_started:
                channel.abort()
            return
        try:
            self.outbox.put_nowait(channel.frame_end(tail))
        except LocalProtocolError as exc:  # e.g. fewer bytes than a declared Content-Length
            log.error("cannot end the response: %s", exc)
            self.reusable = False
            channel.abort()
        if end is not StreamEnd.DONE:
            self.reusable = False

    # -- slow consumers ----------------------------------------------------------------------

    async def send_item(
        self,
        frame: Callable[[], bytes],
        policy: SlowConsumer,
        gap: Callable[[int], bytes] | None = None,
        *,
        event: bool = True,
    ) -> None:
        """Queue one item of a stream, applying ``policy`` when the outbox is full.

        ``frame`` runs the core and returns the item's bytes; ``gap`` frames a gap marker
        for a number of dropped events (``DROP_OLDEST`` only).  Nothing awaits between
        framing and queueing, so bytes keep the core's order.  A stream disconnected here
        cancels the calling handler.  The item counts in ``outbox.events_sent`` unless
        ``event`` is false (a chunk of a plain body, a keepalive).
        """
        outbox = self.outbox
        if policy is SlowConsumer.BLOCK and outbox.full:
            with trio.move_on_after(self.config.send_timeout) as timer:
                await outbox.wait_writable()
            if timer.cancelled_caught:
                self._mark_slow_consumer("blocked longer than send_timeout")
        elif outbox.buffered >= outbox.low_water:
            # Filling up: let the writer drain before the policy could take a fast reader
            # (one that simply has not had a turn) for a slow one.
            await checkpoint()
        else:
            await paced_checkpoint()  # a cancellation point; a yield once a millisecond
        try:
            self._queue_item(frame, policy, gap, waited=True, event=event)
        except trio.BrokenResourceError:
            await checkpoint()  # the stream's scope was just cancelled: Cancelled raises here
            raise

    def send_item_nowait(
        self,
        frame: Callable[[], bytes],
        policy: SlowConsumer,
        gap: Callable[[int], bytes] | None = None,
        *,
        event: bool = True,
    ) -> None:
        """:meth:`send_item` without waiting, for fan-out from another task.

        Raises:
            trio.WouldBlock: the outbox is full and the policy is ``BLOCK``.
            trio.BrokenResourceError: the stream has ended, or was just disconnected
                (``DISCONNECT``).
        """
        self._queue_item(frame, policy, gap, waited=False, event=event)

    def _queue_item(
        self,
        frame: Callable[[], bytes],
        policy: SlowConsumer,
        gap: Callable[[int], bytes] | None,
        *,
        waited: bool,
        event: bool,
    ) -> None:
        """The slow-consumer decision, shared by both sends (``waited``: the sender awaited
        its turn, in its own task: a ``BLOCK`` sender may overshoot the bound by this one
        item, and an idle connection writes it through at once)."""
        if self.end is not None:
            raise trio.BrokenResourceError(f"the stream has ended ({self.end.value})")
        outbox = self.outbox
        if outbox.full:
            if policy is SlowConsumer.DISCONNECT:
                self._mark_slow_consumer("outbox full")
                raise trio.BrokenResourceError("slow consumer disconnected")
            if policy is SlowConsumer.DROP_OLDEST:
                assert gap is not None, "DROP_OLDEST needs a gap marker"
                dropped = outbox.drop_pending(gap)
                if dropped:
                    log.debug("slow consumer: dropped %d queued events", dropped)
            elif not waited:
                raise trio.WouldBlock
        outbox.put_nowait(
            frame(), droppable=policy is SlowConsumer.DROP_OLDEST, write_through=waited
        )
        if event:
            outbox.events_sent += 1

    def _mark_slow_consumer(self, reason: str) -> None:
        log.info("disconnecting a slow consumer: %s", reason)
        self.server.slow_consumers_disconnected += 1
        self._end_stream(StreamEnd.SLOW_CONSUMER)

    # -- graceful shutdown -------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """The server is draining: end this exchange as gracefully as its state allows (a
        plain response in progress finishes)."""
        if self.state is ExchangeState.STREAMING and self._end_on_shutdown:
            self._end_stream(StreamEnd.SHUTDOWN)
        elif self.state is ExchangeState.WEBSOCKET and self._on_shutdown is not None:
            self._on_shutdown()


class RequestBody:
    """The request body of an exchange as an async iterator of chunks.

    ``100 Continue`` goes out when the body is first asked for, so a client waiting for it
    sends nothing a handler never wanted.  Each pause of the client is bounded by
    ``header_timeout`` (408), the size by ``max_body_bytes`` (413, from the core).
    """

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._continued = False

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        channel = exchange.channel
        if not self._continued:
            self._continued = True
            await exchange.emit(channel.frame_continue)
        while True:
            try:
                event = channel.next_body_event()
            except RemoteProtocolError as exc:
                exchange.reusable = False
                raise HTTPError(exc.status_hint, str(exc)) from exc
            if isinstance(event, BodyData):
                return event.data
            if isinstance(event, EndOfRequest):
                raise StopAsyncIteration
            if isinstance(event, ClientClosed):
                exchange.reusable = False
                raise HTTPError(400, "connection closed before the request body was complete")
            with trio.move_on_after(exchange.config.header_timeout) as timer:
                await channel.receive_body_data()
            if timer.cancelled_caught:
                exchange.reusable = False
                raise HTTPError(408, "request body not received in time")
