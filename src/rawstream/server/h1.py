"""The HTTP/1.1 connection driver: one socket, one exchange at a time, from accept to close.

:meth:`H1Connection.run` serves the connection; beside its request cycle it may start two
tasks, through :class:`~rawstream.server.tasks.ConnectionTasks` (no nursery of its own: one
costs more than most connections do), which ends them before the socket closes:

* the **receiver** (:class:`~rawstream.server.receiver.Receiver`) reads ahead into a bounded
  buffer and notices EOF or a reset at once (during a stream, while the client sends nothing,
  the server's :class:`~rawstream.server.readiness.ReadinessWatcher` waits in its place);
* the **writer** (:class:`~rawstream.server.outbox.Outbox`) drains the bounded outbox with one
  ``send_all`` per batch, and exists only while there is something to write;
* the **request cycle** runs in the connection's own task: it parses request heads with the
  sans-IO :class:`~rawstream.core.http.HTTPConnection` and serves each as an
  :class:`~rawstream.server.exchange.Exchange`, one at a time (pipelined requests are
  answered in order), for as long as the connection can be reused.

The driver is its exchange's :class:`~rawstream.server.channel.Channel`: it frames the
exchange's response through the core, feeds it the request body, tells it when the client
leaves, and after a WebSocket handshake hands it the socket.

Whether the connection carries another exchange is decided in one place,
:meth:`H1Connection._can_continue`, from the exchange's verdict, the core's keep-alive and
the server's shutdown.  Cleanup is layered: the graceful part (flushing the outbox; after an
error answer, a brief lingering close) runs under deadlines; the outermost ``finally`` always
closes the socket with ``trio.aclose_forcefully``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Protocol

import trio

from ..app import App
from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.http import ClientClosed, HTTPConnection, HTTPEvent, NeedData, RequestHead
from ..core.httpevents import Headers
from ..request import HTTPError
from .channel import HeaderList, ServerContext, Tunnel
from .config import Config
from .connection import ConnectionStatistics, phase_of
from .dispatch import serve_exchange
from .exchange import Exchange
from .outbox import Outbox
from .readiness import ReadinessWatcher
from .receiver import Receiver
from .tasks import ConnectionTasks
from .timers import Timer

__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "H1Connection", "H1Server"]

log = logging.getLogger("rawstream.connection")
_ids = itertools.count(1)

#: A connection we close while the client may still be sending (after a 4xx for a head too
#: large, say) reads and discards for at most this long and this much (see _linger).
LINGER_SECONDS = 1.0
LINGER_BYTES = 256 * 1024


class H1Server(ServerContext, Protocol):
    """What the HTTP/1.1 driver uses of its server beyond what exchanges do."""

    @property
    def readiness(self) -> ReadinessWatcher:
        """The server's one watcher of idle sockets."""
        ...

    @property
    def connections_nursery(self) -> trio.Nursery | None:
        """Where the server runs its connections, and they the tasks they start."""
        ...


class H1Connection:
    """One accepted HTTP/1.1 connection (see the module doc for its tasks)."""

    # (Slots: an idle stream holds this object for as long as it lasts.)
    __slots__ = (
        "_client_left",
        "_cycle_scope",
        "_head_timed_out",
        "_linger_on_close",
        "_reject",
        "_tls",
        "app",
        "client",
        "config",
        "exchange",
        "http",
        "id",
        "outbox",
        "receiver",
        "server",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        client: tuple[str, int],
        app: App,
        config: Config,
        server: H1Server,
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
        self.receiver = Receiver(
            stream, limit=config.read_buffer_bytes, watcher=server.readiness, park_idle=True
        )
        #: The exchange in progress (None while waiting for a request head).
        self.exchange: Exchange | None = None
        #: Refused by the server's limits (503 at max_connections, 429 at the per-address
        #: cap): the first request is read far enough to answer this, with Retry-After.
        self._reject = reject
        #: Encloses the request cycle (every wait for a head, every exchange): cancelled when
        #: a head wait times out, when the client leaves during a plain handler, or by a
        #: shutdown while no exchange runs.  One scope for the connection's life, not one
        #: per request: entering a scope costs more than parsing a request head.
        self._cycle_scope = trio.CancelScope()
        self._head_timed_out = False
        self._client_left = False
        self._linger_on_close = False
        self._tls = isinstance(stream, trio.SSLStream)

    def statistics(self) -> ConnectionStatistics:
        """What this connection is doing and has moved so far."""
        out = self.outbox.statistics()
        phase, kind = phase_of(self.exchange)
        return ConnectionStatistics(
            phase=phase,
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
            nursery = self.server.connections_nursery
            assert nursery is not None, "a connection runs while its server serves"
            tasks = ConnectionTasks(nursery)
            try:
                with tasks.cancel_scope:  # (a task's error cancels it: see tasks.py)
                    await self._serve(tasks)
            except BaseException as exc:
                tasks.raise_errors(exc)
            tasks.raise_errors()
        finally:
            await _close(self.stream)

    async def _serve(self, tasks: ConnectionTasks) -> None:
        try:
            self.outbox.attach(tasks)
            self.receiver.start(tasks)
            with self._cycle_scope:
                await self._serve_requests()
            await self._after_cycle_cancelled()
            if self.outbox.buffered:  # (a scope only when there is something to wait for)
                with trio.move_on_after(self.config.close_timeout):
                    await self.outbox.flush()
            await self._linger()
        finally:
            try:
                self._end_exchange()  # (it is the connection's phase until here)
                self.receiver.stop()  # (before the socket closes)
                self.outbox.detach()
            finally:
                await tasks.aclose()  # (a reader or writer task still running ends first)

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
        while True:
            head = await self._next_request(first=first)
            if head is None:
                return
            exchange = self.exchange = Exchange(
                self,
                head,
                client=self.client,
                config=self.config,
                server=self.server,
                tls=self._tls,
            )
            try:
                if self._reject is not None:
                    retry_after = ((b"retry-after", b"1"),)
                    await exchange.send_error(
                        self._reject.status, self._reject.message, retry_after
                    )
                else:
                    await serve_exchange(exchange, self.app)
            finally:
                self._linger_on_close = self._linger_on_close or exchange.linger
            if not self._can_continue(exchange):
                return
            self.http.start_next_cycle()
            first = False

    def _can_continue(self, exchange: Exchange) -> bool:
        """The one place that decides whether another exchange may follow: the exchange
        allows it (no error that closes, no stream cut short, no client gone), the core
        agrees (keep-alive, the whole request read and the response written), and the server
        is not shutting down."""
        return exchange.reusable and self.http.keep_alive and not self.server.draining

    async def _next_request(self, *, first: bool) -> RequestHead | None:
        """The next request head, or None when the connection should end.

        The first request must arrive within ``header_timeout`` of the accept; on a kept-alive
        connection the next one may start within ``keepalive_timeout`` and must then be
        complete within ``header_timeout`` of its first byte.  (A timeout cancels the cycle
        scope: see :meth:`_after_cycle_cancelled`.)
        """
        self._end_exchange()
        if self.server.draining:
            return None
        http = self.http
        config = self.config
        timers = self.server.timers
        bytes_seen = first or http.buffered_bytes > 0  # pipelined bytes start the head
        timer: Timer | None = None
        try:
            while True:
                try:
                    event = http.next_event()
                except RemoteProtocolError as exc:
                    log.info("bad request: %s", exc)
                    if timer is not None:
                        timer.cancel()  # (the answer is not cut short by the timer)
                    await self._refuse(exc.status_hint, str(exc), exc.headers)
                    return None
                if isinstance(event, RequestHead):
                    return event
                if isinstance(event, ClientClosed):
                    return None
                if timer is None:
                    seconds = config.header_timeout if bytes_seen else config.keepalive_timeout
                    timer = timers.start(seconds, self._head_timed_out_now)
                data = await self.receiver.receive()
                if not data:
                    http.receive_eof()
                    continue
                if not bytes_seen:  # a kept-alive connection's next request starts: its
                    bytes_seen = True  # header_timeout starts at the next wait, if any (no
                    timer.cancel()  # await comes first, so the clock starts at its first byte)
                    timer = None
                http.receive_data(data)
        finally:
            if timer is not None:
                timer.cancel()

    def _head_timed_out_now(self) -> None:
        self._head_timed_out = True
        self._cycle_scope.cancel()

    def client_left(self) -> None:
        self._client_left = True
        self._cycle_scope.cancel()

    async def _after_cycle_cancelled(self) -> None:
        """The request cycle ended: if a timeout cut a head short, answer 408."""
        if self._client_left and self.exchange is not None:
            log.debug("client left during %s", self.exchange.head.path)
        elif self._head_timed_out and not self.server.draining and self.http.buffered_bytes:
            log.info("request head timed out")  # a head began and did not finish
            await self._refuse(408, "request head not received in time")

    def _end_exchange(self) -> None:
        """The previous exchange is over: the connection moves on (or closes)."""
        if self.exchange is not None:
            self.exchange.finish()
            self.exchange = None

    async def _refuse(self, status: int, message: str, headers: Headers = ()) -> None:
        """Answer a request that never became an exchange (its head was bad or late), then
        end the connection with a lingering close."""
        self._linger_on_close = True
        await self.outbox.wait_writable()
        self.http.send_error(status, message, headers, close=True)
        self.outbox.put_nowait(self.http.data_to_send(), write_through=True)

    def begin_shutdown(self) -> None:
        """The server is draining: end this connection as gracefully as its phase allows
        (an idle one at once; an exchange as its state allows)."""
        if self.exchange is None:
            self._cycle_scope.cancel()  # (waiting for a head, or refusing one)
        else:
            self.exchange.begin_shutdown()

    # -- the exchange's channel (see channel.Channel) -------------------------------------------

    @property
    def response_started(self) -> bool:
        return self.http.response_started

    @property
    def is_head_request(self) -> bool:
        return self.http.is_head_request

    @property
    def chunk_is_shared_framing(self) -> bool:
        return self.http.body_is_chunked

    def frame_head(self, status: int, headers: HeaderList) -> bytes:
        self.http.send_response(status, headers)
        return self.http.data_to_send()

    def frame_response(self, status: int, headers: HeaderList, body: bytes) -> bytes:
        self.http.send_whole_response(status, headers, body)
        return self.http.data_to_send()

    def frame_body(self, data: bytes) -> bytes:
        self.http.send_body(data)
        return self.http.data_to_send()

    def frame_end(self, tail: bytes) -> bytes:
        http = self.http
        http.send_body(tail)
        try:
            http.end_response()
        except LocalProtocolError:
            http.data_to_send()  # all or nothing: the tail goes with the end that failed
            raise
        return http.data_to_send()

    def frame_error(self, status: int, message: str, headers: Headers, close: bool) -> bytes:
        self.http.send_error(status, message, headers, close=close)
        return self.http.data_to_send()

    def frame_continue(self) -> bytes:
        self.http.send_continue()
        return self.http.data_to_send()

    def abort(self) -> None:
        self.http.send_failed()

    def next_body_event(self) -> HTTPEvent | NeedData:
        return self.http.next_event()

    async def receive_body_data(self) -> None:
        data = await self.receiver.receive()
        if data:
            self.http.receive_data(data)
        else:
            self.http.receive_eof()

    @property
    def body_unread(self) -> bool:
        return self.http.body_unread

    def watch_client(self, on_gone: Callable[[], None] | None, *, stream: bool) -> None:
        if on_gone is None:
            self.outbox.end_writer_when_empty = False
            self.receiver.watch(None)
        elif stream:
            self.outbox.end_writer_when_empty = True  # (an idle stream: no tasks waiting)
            self.receiver.watch(on_gone, park=True)  # (gone: EOF, or a full read buffer)
        else:
            # (A full read buffer, pipelined requests, is no reason to cancel: only EOF.)
            self.receiver.watch(on_gone, full=False)

    def open_tunnel(self) -> Tunnel:
        data = self.http.upgrade_data()  # (the core is finished: h11 hands over)
        receiver = self.receiver
        if receiver.parks:
            # The watcher reads the socket for the WebSocket's reader, which sees EOF itself
            # (after the bytes before it: a close frame is answered); a full buffer only
            # stops reading.
            receiver.watch(None)
            return Tunnel(data, receiver.receive, receiver.wait_readable, receiver.wake)
        receiver.hand_off()  # the frame reader reads the socket itself from now on
        return Tunnel(data, receiver.receive)


async def _close(stream: trio.abc.Stream) -> None:
    """Close ``stream`` at once.  A plain socket closes without the checkpoint and cancelled
    scope of ``trio.aclose_forcefully`` (a connection that ends need not yield, and each
    costs more than the close); anything else (TLS) is closed forcefully."""
    if isinstance(stream, trio.SocketStream):
        stream.socket.close()
    else:
        await trio.aclose_forcefully(stream)
