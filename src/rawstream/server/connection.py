"""The life of one client connection, from accept to cleanup.

:func:`Connection.run` opens the connection's nursery, which owns three kinds of task:

* the **receiver** (:class:`~rawstream.server.receiver.Receiver`) reads ahead into a bounded
  buffer and notices EOF or a reset at once (during a stream, while the client sends nothing,
  the server's :class:`~rawstream.server.readiness.ReadinessWatcher` waits in its place);
* the **writer** (:class:`~rawstream.server.outbox.Outbox`) drains the bounded outbox with one
  ``send_all`` per batch, and exists only while there is something to write;
* the **request cycle** runs in the nursery's body: it parses requests with the sans-IO
  :class:`~rawstream.core.http.HTTPConnection`, routes them and runs their handlers.  A
  streaming handler (SSE, a streamed body, a WebSocket) runs in a cancel scope (a nested
  nursery for a WebSocket, whose frame reader runs beside it) that is cancelled when the
  client goes away (the receiver calls back; for a WebSocket, its frame reader sees it) or
  the server shuts down, so the handler's
  ``finally`` blocks and ``async with`` exits run promptly.

Cleanup is layered: the graceful part (flushing the outbox; after an error answer, a brief
lingering close) runs under deadlines; the outermost ``finally`` always closes the socket with
``trio.aclose_forcefully``.
"""

from __future__ import annotations

import enum
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

import trio
from trio.lowlevel import checkpoint

from ..app import App, Route
from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.http import (
    BodyData,
    ClientClosed,
    EndOfRequest,
    HTTPConnection,
    RequestHead,
)
from ..core.sse import encode_retry
from ..pacing import paced_checkpoint
from ..policy import SlowConsumer
from ..request import HTTPError, Request
from ..response import Response
from .config import Config
from .origin import answer_preflight, cors_headers, route_cors
from .outbox import Outbox
from .receiver import Receiver

if TYPE_CHECKING:
    from .server import Server

__all__ = ["Connection", "ConnectionStatistics", "Phase", "StreamEnd"]

log = logging.getLogger("rawstream.connection")
_ids = itertools.count(1)

#: A connection we close while the client may still be sending (after a 4xx for a head too
#: large, say) reads and discards for at most this long and this much (see _linger).
LINGER_SECONDS = 1.0
LINGER_BYTES = 256 * 1024


class Phase(enum.Enum):
    """What a connection is doing; graceful shutdown acts on it."""

    IDLE = "idle"  # waiting for a request head
    HTTP = "http"  # running a plain handler or writing its response
    STREAM = "stream"  # an SSE stream or a streamed body
    WEBSOCKET = "websocket"


#: What a stream is, for statistics: an SSE stream, a streamed response body, a WebSocket.
StreamKind = Literal["sse", "stream", "websocket"]


class StreamEnd(enum.Enum):
    """How a streaming handler ended."""

    DONE = "done"  # it returned
    CLIENT_GONE = "client_gone"  # EOF or reset from the client
    SHUTDOWN = "shutdown"  # the server is draining
    SLOW_CONSUMER = "slow_consumer"  # the client could not keep up (policy DISCONNECT/BLOCK)
    FAILED = "failed"  # it raised


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    """A snapshot of one connection: what it is doing and what it has moved."""

    phase: Phase
    bytes_buffered: int  # queued for the client, including the write in flight
    bytes_sent: int
    bytes_received: int
    writes: int  # send_all calls: bytes_sent / writes is the coalescing at work
    events_dropped: int  # by the DROP_OLDEST policy
    time_blocked: float  # seconds senders (and a WebSocket's frame reader) waited for room
    #: The phase, with streams told apart: "idle", "http", "sse", "stream" (a streamed
    #: body), "websocket" (a handshake being answered counts as one already).
    kind: str = "idle"
    events_sent: int = 0  # SSE events and WebSocket messages queued (see Outbox.events_sent)


class Connection:
    """One accepted client connection (see the module doc for its tasks)."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        client: tuple[str, int],
        app: App,
        config: Config,
        server: Server,
        *,
        reject: HTTPError | None = None,
    ) -> None:
        self.id = next(_ids)
        self.stream = stream
        self.client = client
        self.app = app
        self.config = config
        self.server = server
        self.http = HTTPConnection(
            max_head_bytes=config.max_head_bytes,
            max_request_line_bytes=config.max_request_line_bytes,
            max_header_count=config.max_header_count,
            max_body_bytes=config.max_body_bytes,
        )
        self.outbox = Outbox(
            stream,
            high_water=config.outbox_high_bytes,
            low_water=config.outbox_low_bytes,
            max_write=config.max_write_bytes,
        )
        self.receiver = Receiver(stream, limit=config.read_buffer_bytes, watcher=server.readiness)
        self.phase = Phase.IDLE
        self.closing = False
        #: Refused by the server's limits (503 at max_connections, 429 at the per-address
        #: cap): the first request is read far enough to answer this, with Retry-After.
        self._reject = reject
        self._idle_scope: trio.CancelScope | None = None
        self._stream_nursery: trio.Nursery | None = None
        self._stream_scope: trio.CancelScope | None = None
        self._linger_on_close = False
        self._stream_end: StreamEnd | None = None
        self._on_shutdown: Callable[[], None] | None = None
        self._end_on_shutdown = False
        self._stream_kind: StreamKind = "stream"
        #: CORS headers for the current request's answers (see :mod:`.origin`), or none.
        self.cors_headers: tuple[tuple[bytes, bytes], ...] = ()

    def statistics(self) -> ConnectionStatistics:
        """What this connection is doing and has moved so far."""
        out = self.outbox.statistics()
        kind = self._stream_kind if self.phase is Phase.STREAM else self.phase.value
        return ConnectionStatistics(
            phase=self.phase,
            bytes_buffered=out.bytes_buffered,
            bytes_sent=out.bytes_sent,
            bytes_received=self.receiver.bytes_received,
            writes=out.writes,
            events_dropped=out.items_dropped,
            time_blocked=out.time_blocked,
            kind=kind,
            events_sent=out.events_sent,
        )

    # -- the connection's task tree ----------------------------------------------------------

    async def run(self) -> None:
        """Serve requests until the client leaves, an error ends the connection, or shutdown."""
        try:
            async with trio.open_nursery() as nursery:
                self.outbox.attach(nursery)
                self.receiver.start(nursery)
                try:
                    await self._serve_requests()
                    with trio.move_on_after(self.config.close_timeout):
                        await self.outbox.flush()
                    await self._linger()
                finally:
                    self.receiver.stop()  # (before the socket closes)
                    self.outbox.detach()
                    nursery.cancel_scope.cancel()
        finally:
            await trio.aclose_forcefully(self.stream)

    async def _linger(self) -> None:
        """After an error answer that ends the connection: close our side, then read and
        discard what the client still sends, briefly.

        Closing a socket with unread data makes the kernel send a reset, and a client still
        sending (the rest of a head we refused as too large) may then lose our answer before
        reading it.  Sending our FIN first and draining until the client's (bounded in time
        and bytes) lets it read the answer; it is what "lingering close" means in servers.
        """
        if not self._linger_on_close or self.server.draining:
            return  # only after refusing a request; never slowing a shutdown
        if self.receiver.closed or self.outbox.broken or self.outbox.buffered:
            return  # (unwritten bytes: the flush timed out; the writer owns the send side)
        if not isinstance(self.stream, trio.abc.HalfCloseableStream):
            return  # TLS has no half close: such a connection closes at once
        with trio.move_on_after(LINGER_SECONDS):
            try:
                await self.stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            discarded = 0
            while discarded < LINGER_BYTES:
                data = await self.receiver.receive()
                if not data:
                    return
                discarded += len(data)

    async def _serve_requests(self) -> None:
        first = True
        while not self.closing:
            head = await self._next_request(first=first)
            if head is None:
                return
            await self._dispatch(head)
            if self.closing or not self.http.keep_alive or self.server.draining:
                return
            self.http.start_next_cycle()
            first = False

    async def _next_request(self, *, first: bool) -> RequestHead | None:
        """The next request head, or None when the connection should end.

        The first request must arrive within ``header_timeout`` of the accept; on a kept-alive
        connection the next one may start within ``keepalive_timeout`` and must then be
        complete within ``header_timeout`` of its first byte.
        """
        self.phase = Phase.IDLE
        if self.server.draining:
            return None
        config = self.config
        bytes_seen = first or self.http.buffered_bytes > 0  # pipelined bytes start the head
        deadline = trio.current_time() + (
            config.header_timeout if bytes_seen else config.keepalive_timeout
        )
        with trio.CancelScope() as self._idle_scope:
            while True:
                try:
                    event = self.http.next_event()
                except RemoteProtocolError as exc:
                    log.info("bad request: %s", exc)
                    await self.send_error(exc.status_hint, str(exc), exc.headers)
                    return None
                if isinstance(event, RequestHead):
                    return event
                if isinstance(event, ClientClosed):
                    return None
                with trio.move_on_at(deadline) as timer:
                    data = await self.receiver.receive()
                if timer.cancelled_caught:
                    if self.http.buffered_bytes:  # a head began and did not finish
                        log.info("request head timed out")
                        await self.send_error(408, "request head not received in time")
                    return None
                if not data:
                    self.http.receive_eof()
                    continue
                if not bytes_seen:  # a kept-alive connection's next request starts
                    bytes_seen = True
                    deadline = trio.current_time() + config.header_timeout
                self.http.receive_data(data)
        return None  # cancelled by shutdown while idle

    # -- routing -----------------------------------------------------------------------------

    async def _dispatch(self, head: RequestHead) -> None:
        self.phase = Phase.HTTP
        if self._reject is not None:
            retry_after = ((b"retry-after", b"1"),)
            await self.send_error(self._reject.status, self._reject.message, retry_after)
            return
        path = unquote(head.path)
        preflight = answer_preflight(self.app, self.config, head, path)
        if preflight is not None:  # a CORS preflight for a route that has CORS
            if preflight.reason:
                log.info("CORS preflight refused: %s", preflight.reason)
            answer = (preflight.status, preflight.reason, preflight.headers)
            await self.send_error(*answer, close=False)
            await self._finish_request_body()
            return
        match = self.app.match(head.method, path)
        if match.route is None:
            extra = ((b"allow", ", ".join(match.allowed).encode()),) if match.allowed else ()
            await self.send_error(match.status, "", extra, close=False)
        else:
            request = Request(
                head, self.client, self.read_body, match.path_params, server=self.server
            )
            # On the route's every answer: its response, an SSE head, an error it raises.
            self.cors_headers = cors_headers(
                route_cors(match.route, self.config), head.header(b"origin")
            )
            try:
                await self._run_route(match.route, request)
            finally:
                self.cors_headers = ()
        await self._finish_request_body()

    async def _run_route(self, route: Route, request: Request) -> None:
        # Imported here: these modules build on this one.
        from .sse import run_sse
        from .websocket import run_websocket

        if route.kind == "websocket":
            if request.head.wants_upgrade_to != "websocket":
                await self.send_error(426, "", ((b"upgrade", b"websocket"),), close=False)
            else:
                self.closing = True  # after a WebSocket, the TCP connection ends
                await run_websocket(self, request, route)
        elif route.kind == "sse":
            await run_sse(self, request, route)
        else:
            await self._run_http(route, request)

    async def _run_http(self, route: Route, request: Request) -> None:
        try:
            response = await self._call_handler(route, request)
            if response is None:  # the client left while the handler ran
                self.closing = True
                return
            if not isinstance(response, Response):
                raise TypeError(f"the handler returned {response!r}, not a Response")
            await self.send_response(response)
        except HTTPError as exc:
            await self.send_error(exc.status, exc.message, close=exc.status in (400, 408, 413))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closing = True  # the client is gone
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            await self.send_error(500, "internal server error")

    async def _call_handler(self, route: Route, request: Request) -> Response | None:
        """Run a plain handler; cancel it if the client closes the connection meanwhile.

        A handler may wait a long time before it answers (a relay waiting for its upstream's
        first byte, a long poll): when the client has gone, the wait is cancelled, and what
        the handler holds is released by its ``finally`` and ``async with`` blocks.  The
        receiver reads ahead during the handler, so EOF is seen as soon as it arrives.  (A
        client that half-closes after its request and still expects an answer is not served:
        like nginx's and uvicorn's, this server reads EOF as the client leaving.)
        """
        with trio.CancelScope() as scope:
            # (A full read buffer, pipelined requests, is no reason to cancel: only EOF.)
            self.receiver.watch(scope.cancel, full=False)
            try:
                response: Response | None = await route.handler(request)
                return response
            finally:
                self.receiver.watch(None)
        log.debug("client left during %s", request.path)
        return None

    # -- request bodies ----------------------------------------------------------------------

    async def read_body(self) -> bytes:
        """Read the current request's body (see :meth:`Request.body`)."""
        chunks: list[bytes] = []
        async for chunk in _BodyIterator(self):
            chunks.append(chunk)
        return b"".join(chunks)

    async def _finish_request_body(self) -> None:
        """Consume an unread request body so the connection can be reused, or close."""
        if self.closing or self.http.will_close or self.http.request_complete:
            return  # (after an unanswered 100-continue the core has chosen to close)
        try:
            await self.read_body()
        except HTTPError:
            self.closing = True

    # -- sending -----------------------------------------------------------------------------

    async def _emit(self, produce: Callable[[], None]) -> None:
        """Wait for room in the outbox, then run the core call ``produce`` and queue its bytes.

        No await separates the core call from queueing, so bytes enter the outbox in the
        order the core produced them.
        """
        await self.outbox.wait_writable()
        produce()
        self.outbox.put_nowait(self.http.data_to_send(), write_through=True)

    async def send_response(self, response: Response) -> None:
        """Send ``response``; a streamed body runs until done, the client leaves, or shutdown."""
        headers = response.encoded_headers()
        if self.cors_headers and not any(k == b"access-control-allow-origin" for k, _ in headers):
            headers.extend(self.cors_headers)  # (unless the handler chose its own)
        body = response.body
        if isinstance(body, bytes):
            if response.status >= 200 and response.status not in (204, 304):
                # RFC 9110 8.6: never on 1xx or 204; a 304's would describe the cached body.
                headers.append((b"content-length", str(len(body)).encode()))

            def produce() -> None:
                self.http.send_response(response.status, headers)
                self.http.send_body(body)
                self.http.end_response()

            await self._emit(produce)
            return

        if self.http.is_head_request:  # the head answers HEAD: never start the stream
            if hasattr(body, "aclose"):
                await body.aclose()
            await self._emit(partial(self.http.send_response, response.status, headers))
            await self._emit(self.http.end_response)
            return

        async def stream_body() -> None:
            # An async generator is closed (its finally runs) however the stream ends, even
            # when the client leaves while the head is still being sent.
            closing = aclosing(body) if hasattr(body, "aclose") else nullcontext(body)  # type: ignore[type-var]
            async with closing as chunks:
                await self._emit(lambda: self.http.send_response(response.status, headers))
                async for chunk in chunks:
                    # A plain download has no gap to report: it waits, up to send_timeout.
                    await self.send_stream_item(
                        partial(self.frame_body, chunk), SlowConsumer.BLOCK, event=False
                    )

        end = await self.run_stream(stream_body, watch_disconnect=True)
        await self.finish_stream(end)

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
        its errors too.
        """
        headers = (*headers, *self.cors_headers)
        self.closing = self.closing or close
        self._linger_on_close = self._linger_on_close or close  # the client may still be sending

        def produce() -> None:
            if self.http.response_started:  # too late for a status: the connection just ends
                self.closing = True
                self.http.send_failed()
            else:
                self.http.send_error(status, message, headers, close=close)

        await self._emit(produce)

    async def start_response(self, status: int, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        """Send a response head whose body will be streamed (once, if tasks race to do it)."""

        def produce() -> None:
            if not self.http.response_started:
                self.http.send_response(status, headers)

        await self._emit(produce)

    def frame_body(self, data: bytes) -> bytes:
        """Frame a piece of the streamed response body (a chunk) and return its bytes."""
        self.http.send_body(data)
        return self.http.data_to_send()

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

        With ``end_on_shutdown`` (SSE: streams that never end by themselves) shutdown cancels
        it too; other streams are responses in progress, left to finish until the drain
        deadline.  ``with_tasks`` runs it in a nursery, so :meth:`start_stream_task` can add
        siblings (a WebSocket's frame reader); without, a cancel scope is all it needs (an
        idle SSE stream is cheaper for it).  ``kind`` names the stream in statistics.
        """
        self.phase = Phase.STREAM
        self._stream_kind = kind
        self._stream_end = None
        self.outbox.streaming = True
        self._end_on_shutdown = end_on_shutdown
        failure: HTTPError | None = None
        # (The body is awaited right here, in the scope, not through a helper coroutine:
        # every coroutine between a connection's task and its handler's wait is memory an
        # idle stream holds.  ``nullcontext`` costs no frame once entered.)
        try:
            with trio.CancelScope() as self._stream_scope:
                async with trio.open_nursery() if with_tasks else nullcontext() as nursery:
                    self._stream_nursery = nursery
                    self._stream_started(end_on_shutdown, watch_disconnect)
                    try:
                        await body()
                        self._end_stream(StreamEnd.DONE)  # (cancels what runs beside it)
                    except Exception as exc:
                        failure = self._stream_failed(exc)
        finally:
            self._stream_nursery = self._stream_scope = None
            self.outbox.streaming = False
            self.outbox.end_writer_when_empty = False
            self.receiver.watch(None)
        end = self._stream_end or StreamEnd.DONE
        if failure is not None and not self.outbox.broken:
            # Outside the (cancelled) stream scope: the answer must still go out.
            await self.send_error(failure.status, failure.message)
        if end is not StreamEnd.DONE:
            log.debug("stream ended: %s", end.value)
        return end

    def _stream_started(self, end_on_shutdown: bool, watch_disconnect: bool) -> None:
        """In the stream's scope: end it at once if the server is draining or the client
        has gone already; otherwise have the receiver call back when the client leaves."""
        if end_on_shutdown and self.server.draining:
            self._end_stream(StreamEnd.SHUTDOWN)
        if watch_disconnect:
            self.receiver.watch(self._client_left, park=True)
            self.outbox.end_writer_when_empty = True  # (an idle stream: no tasks waiting)

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

    def start_stream_task(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Start a sibling of the streaming handler (a WebSocket's frame reader)."""
        assert self._stream_nursery is not None, "no stream is running"
        self._stream_nursery.start_soon(fn)

    def _end_stream(self, end: StreamEnd) -> None:
        """Record why the stream ends (first reason wins) and cancel what is left of it."""
        if self._stream_end is None:
            self._stream_end = end
        self.outbox.streaming = False
        if self._stream_scope is not None:
            self._stream_scope.cancel()

    @property
    def stream_end(self) -> StreamEnd | None:
        """Why the current stream ended (None while it runs)."""
        return self._stream_end

    def end_after_refusal(self) -> None:
        """The client broke the protocol and has been told (a close frame is queued): end
        the stream, then close with a brief lingering close, so the bytes it still sends do
        not make the kernel reset the connection and discard our answer unread."""
        self._linger_on_close = True
        self.client_gone()

    def client_gone(self) -> None:
        """The client closed or reset the connection: cancel its handler now."""
        self.closing = True
        self._end_stream(StreamEnd.CLIENT_GONE)

    def _client_left(self) -> None:
        """The receiver saw the client close (or fill the read buffer) during a stream."""
        if not self.receiver.closed:
            # A client has nothing to send during a stream but a pipelined request or two; a
            # full read buffer is abuse, and would also hide its EOF from us.
            log.info("client filled the read buffer during a stream")
        self.client_gone()

    async def finish_stream(
        self, end: StreamEnd, *, tail: bytes = b"", resumable: bool = False
    ) -> None:
        """End a streamed response after :meth:`run_stream`: cleanly, or by closing.

        On a clean end, ``tail`` (e.g. a ``retry:`` hint, a gzip trailer) and the terminating
        chunk are queued without waiting for room: they are few, and the final flush is
        bounded by ``close_timeout``.  A ``resumable`` stream (SSE: the client reconnects and
        resumes) also ends cleanly when cut by shutdown or for being slow; any other stream
        cut short is left unterminated, so its client can see the body is incomplete.
        """
        cut_short = (StreamEnd.SHUTDOWN, StreamEnd.SLOW_CONSUMER)
        ends_cleanly = end is StreamEnd.DONE or (resumable and end in cut_short)
        if not (ends_cleanly and self.http.response_started and not self.outbox.broken):
            self.closing = True
            if self.http.response_started:
                self.http.send_failed()
            return
        try:
            self.http.send_body(tail)
            self.http.end_response()
        except LocalProtocolError as exc:  # e.g. fewer bytes than a declared Content-Length
            log.error("cannot end the response: %s", exc)
            self.closing = True
            self.http.send_failed()
        self.outbox.put_nowait(self.http.data_to_send())
        if end is not StreamEnd.DONE:
            self.closing = True

    # -- slow consumers ----------------------------------------------------------------------

    async def send_stream_item(
        self,
        frame: Callable[[], bytes],
        policy: SlowConsumer,
        gap: Callable[[int], bytes] | None = None,
        *,
        event: bool = True,
    ) -> None:
        """Queue one event of a stream, applying ``policy`` when the outbox is full.

        ``frame`` runs the core and returns the event's bytes; ``gap`` frames a gap marker
        for a number of dropped events (``DROP_OLDEST`` only).  Nothing awaits between
        framing and queueing, so bytes keep the core's order.  A stream disconnected here
        cancels the calling handler.  The item counts in ``outbox.events_sent`` unless
        ``event`` is false (a chunk of a plain body, a keepalive).
        """
        if policy is SlowConsumer.BLOCK and self.outbox.full:
            with trio.move_on_after(self.config.send_timeout) as timer:
                await self.outbox.wait_writable()
            if timer.cancelled_caught:
                self._mark_slow_consumer("blocked longer than send_timeout")
        elif self.outbox.buffered >= self.outbox.low_water:
            # Filling up: let the writer drain before the policy could take a fast reader
            # (one that simply has not had a turn) for a slow one.
            await checkpoint()
        else:
            await paced_checkpoint()  # a cancellation point; a yield once a millisecond
        try:
            self._queue_stream_item(frame, policy, gap, waited=True, event=event)
        except trio.BrokenResourceError:
            await checkpoint()  # the stream's scope was just cancelled: Cancelled raises here
            raise

    def send_stream_item_nowait(
        self,
        frame: Callable[[], bytes],
        policy: SlowConsumer,
        gap: Callable[[int], bytes] | None = None,
        *,
        event: bool = True,
    ) -> None:
        """:meth:`send_stream_item` without waiting, for fan-out from another task.

        Raises:
            trio.WouldBlock: the outbox is full and the policy is ``BLOCK``.
            trio.BrokenResourceError: the stream has ended, or was just disconnected
                (``DISCONNECT``).
        """
        self._queue_stream_item(frame, policy, gap, waited=False, event=event)

    def _queue_stream_item(
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
        if self._stream_end is not None:
            raise trio.BrokenResourceError(f"the stream has ended ({self._stream_end.value})")
        if self.outbox.full:
            if policy is SlowConsumer.DISCONNECT:
                self._mark_slow_consumer("outbox full")
                raise trio.BrokenResourceError("slow consumer disconnected")
            if policy is SlowConsumer.DROP_OLDEST:
                assert gap is not None, "DROP_OLDEST needs a gap marker"
                self._drop_pending(gap)
            elif not waited:
                raise trio.WouldBlock
        self.outbox.put_nowait(
            frame(), droppable=policy is SlowConsumer.DROP_OLDEST, write_through=waited
        )
        if event:
            self.outbox.events_sent += 1

    def _drop_pending(self, gap: Callable[[int], bytes]) -> None:
        dropped = self.outbox.drop_pending(gap)
        if dropped:
            log.debug("slow consumer: dropped %d queued events", dropped)

    def _mark_slow_consumer(self, reason: str) -> None:
        log.info("disconnecting a slow consumer: %s", reason)
        self.server.slow_consumers_disconnected += 1
        self._end_stream(StreamEnd.SLOW_CONSUMER)

    # -- graceful shutdown -------------------------------------------------------------------

    def set_shutdown_action(self, action: Callable[[], None] | None) -> None:
        """What :meth:`begin_shutdown` does while a stream runs (a WebSocket sends 1001)."""
        self._on_shutdown = action

    def begin_shutdown(self) -> None:
        """The server is draining: end this connection as gracefully as its phase allows."""
        self.closing = True
        if self.phase is Phase.IDLE and self._idle_scope is not None:
            self._idle_scope.cancel()
        elif self.phase is Phase.STREAM and self._end_on_shutdown:
            self._end_stream(StreamEnd.SHUTDOWN)
        elif self.phase is Phase.WEBSOCKET and self._on_shutdown is not None:
            self._on_shutdown()
        # Otherwise a response in progress finishes; the connection then closes.

    def shutdown_retry_hint(self) -> bytes:
        """A ``retry:`` field with a random delay in ``shutdown_retry_ms``."""
        low, high = self.config.shutdown_retry_ms
        return encode_retry(random.randint(low, high))


class _BodyIterator:
    """The request body, chunk by chunk, read through the connection's receiver."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._continued = False

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if not self._continued:
            self._continued = True
            await conn._emit(conn.http.send_continue)
        while True:
            try:
                event = conn.http.next_event()
            except RemoteProtocolError as exc:
                conn.closing = True
                raise HTTPError(exc.status_hint, str(exc)) from exc
            if isinstance(event, BodyData):
                return event.data
            if isinstance(event, EndOfRequest):
                raise StopAsyncIteration
            if isinstance(event, ClientClosed):
                conn.closing = True
                raise HTTPError(400, "connection closed before the request body was complete")
            with trio.move_on_after(conn.config.header_timeout) as timer:
                data = await conn.receiver.receive()
            if timer.cancelled_caught:
                conn.closing = True
                raise HTTPError(408, "request body not received in time")
            if data:
                conn.http.receive_data(data)
            else:
                conn.http.receive_eof()
