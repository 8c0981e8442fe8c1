"""A WebSocket's input: who reads the socket, and the messages read but not yet received.

Reading in a task of its own costs a scheduler round trip per message: the reader wakes for
the bytes, queues the message, and wakes the handler waiting in ``receive()``.  For the usual
handler, a loop over ``receive()``, that hop is most of a small echo's time.  So the socket has
one reader at a time, and two candidates:

* the **handler**, while it waits in ``receive()`` with nothing queued: it reads, feeds the
  core and takes the message itself, in its own task.  It keeps the role between calls, so a
  receive loop never hands it back and forth;
* the **frame reader** (a task beside the handler), while the handler is not reading: a
  handler that only sends, or one busy elsewhere, must still have its pings answered, the
  client's close echoed and an EOF noticed (which cancels the handler).  It stands by, parked,
  while the handler reads, and takes the socket back once the handler has been away from
  ``receive()`` for :data:`HANDLER_AWAY` seconds (up to twice that), or at once when our close
  needs its reply read.  The handler coming and going wakes nobody: on leaving it notes the
  time and starts a timer of the server's :class:`~rawstream.server.timers.Timers` if none is
  running; when it fires and the handler has been away since it started, the reader is woken,
  and if the handler came back and left again, the timer starts again.  A busy receive loop
  so costs one timer per interval, and the frame reader is woken only to read.

Either way the bound holds: nothing more is taken while the outbox is full (pongs would pile up
behind a client that does not read) or while the queue holds ``Config.ws_queue_bytes``; one
read's messages may go past it, so the queue holds at most the limit plus one read.  (With the
readiness watcher reading the socket, the receiver's buffer, ``read_buffer_bytes``, fills
meanwhile, and then reading stops.)

The handler's read must end at once when another task closes the WebSocket
(:meth:`MessageInput.close_queue`).  Where the tunnel offers a ``wait`` (the watcher reads
the socket), the handler waits for bytes there, and the close wakes it: no cancel scope per
message, which costs about as much as a small message's round trip.  Otherwise its read runs
in a cancel scope the close cancels.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable

import trio
from trio.lowlevel import ParkingLot

from ..core.websocket import Closed, Message, Pong, WebSocketConnection, payload_size
from ..pacing import paced_checkpoint
from .channel import Tunnel
from .exchange import Exchange
from .timers import Timer

__all__ = ["HANDLER_AWAY", "MessageInput"]

log = logging.getLogger("rawstream.websocket")

#: How long the handler may be away from ``receive()`` while it holds the socket before the
#: frame reader reads again: the longest a ping, a close or an EOF waits for a busy handler.
HANDLER_AWAY = 0.05


class _MessageQueue:
    """Received messages waiting for the handler, counted in bytes."""

    def __init__(self, limit: int) -> None:
        self._items: deque[tuple[str | bytes, int]] = deque()
        self._bytes = 0
        self._limit = limit
        self.closed = False
        self._readable = ParkingLot()
        self._room = ParkingLot()

    @property
    def full(self) -> bool:
        """At its limit: nothing more is read from the socket until the handler takes some."""
        return self._bytes >= self._limit and not self.closed

    def append(self, message: str | bytes) -> None:
        """Queue ``message`` (dropped once the queue is closed)."""
        if not self.closed:
            size = payload_size(message)
            self._items.append((message, size))
            self._bytes += size
            self._readable.unpark_all()

    def pop(self) -> str | bytes | None:
        """The next message, if one is queued."""
        if not self._items:
            return None
        message, size = self._items.popleft()
        self._bytes -= size
        if self._room:
            self._room.unpark_all()
        return message

    async def wait_readable(self) -> None:
        await self._readable.park()

    async def wait_room(self) -> None:
        while self.full:
            await self._room.park()

    def wake(self) -> None:
        """Wake a handler waiting for a message, to look again (it may read itself now)."""
        self._readable.unpark_all()

    def close(self) -> None:
        self.closed = True
        self._readable.unpark_all()
        self._room.unpark_all()


class MessageInput:
    """One WebSocket's reading and its queue of messages (see the module doc).

    ``on_pong`` is called for each pong; ``flush`` writes what the core produced (pongs,
    close replies) to the outbox.
    """

    def __init__(
        self,
        exchange: Exchange,
        core: WebSocketConnection,
        *,
        on_pong: Callable[[], None],
        flush: Callable[[], None],
    ) -> None:
        self._exchange = exchange
        self._core = core
        self._on_pong = on_pong
        self._flush = flush
        self._queue = _MessageQueue(exchange.config.ws_queue_bytes)
        self._receive: Callable[[], Awaitable[bytes]] | None = None
        #: Set once the input is over (the peer's close, EOF, a failure): no more messages.
        self.ended = trio.Event()
        #: A reader waits for room in the outbox (a pong cannot be seen meanwhile).
        self.blocked = False
        self._handler_reads = False  # the role is the handler's (else the frame reader's)
        self._receivers = 0  # handler tasks inside receive() (one, as a rule)
        self._left_at = -math.inf  # when one last left receive()
        self._waiting = 0  # ... of them waiting for a message someone else reads
        self._handler_reading = False  # a handler's read is in progress ...
        self._handler_read: trio.CancelScope | None = None  # ... in this scope, if it has one
        self._tunnel: Tunnel | None = None
        self._timers = exchange.server.timers
        self._away_timer: Timer | None = None  # (started by the handler's leaving receive())
        self._standing_by = False  # the frame reader is parked while the handler reads
        self._reader_lot = ParkingLot()

    @property
    def full(self) -> bool:
        """The queue is at its limit (nothing is being read)."""
        return self._queue.full

    def close_queue(self) -> None:
        """Take no more messages: ``receive`` returns what is queued, then None (a handler's
        read in progress is ended, which loses no byte: it ends before its read or not at
        all).  The input goes on, and the frame reader reads our close's reply."""
        self._queue.close()
        if self._handler_read is not None:
            self._handler_read.cancel()
        elif self._handler_reading and self._tunnel is not None and self._tunnel.wake is not None:
            self._tunnel.wake()
        self._wake_reader()

    # -- the frame reader's task -------------------------------------------------------------

    async def run_reader(self, tunnel: Tunnel) -> None:
        """Read while the handler does not; end the input on close or EOF (a task)."""
        self._tunnel = tunnel
        self._receive = tunnel.receive
        try:
            if not self._take_events():  # (bytes that followed the handshake are in the core)
                return
            while not self.ended.is_set():
                if self._waiting:  # the handler waits in receive(): it reads from now on
                    self._handler_reads = True
                    self._queue.wake()
                if self._handler_reads:
                    await self._wait_while_the_handler_reads()
                elif self._queue.full:
                    await self._queue.wait_room()
                elif not await self._read_once():
                    return
        finally:
            self._end()

    async def _wait_while_the_handler_reads(self) -> None:
        """Park until the handler has been away from ``receive()`` for HANDLER_AWAY, or our
        close wants its reply read (then the role is the frame reader's again)."""
        while not self.ended.is_set():
            if self._queue.closed and not self._receivers:  # it will not read again
                break
            if not self._receivers:
                if self._left_at + HANDLER_AWAY <= trio.current_time():
                    break
                self._start_away_timer()  # (it left before the reader stood by)
            self._standing_by = True
            try:
                await self._reader_lot.park()
            finally:
                self._standing_by = False
        self._handler_reads = False

    def _start_away_timer(self) -> None:
        if self._away_timer is None or not self._away_timer.running:
            self._away_timer = self._timers.start(HANDLER_AWAY, self._check_handler_away)

    def _check_handler_away(self) -> None:
        """The away timer fired: wake the standing-by reader if the handler is still away."""
        if not self._standing_by or self._receivers:
            return  # (back in receive(): its next leaving starts a timer)
        if self._left_at + HANDLER_AWAY <= trio.current_time():
            self._reader_lot.unpark_all()
        else:  # it came back and left again since the timer started
            self._start_away_timer()

    def _wake_reader(self) -> None:
        if self._standing_by:
            self._reader_lot.unpark_all()

    # -- the handler's side ------------------------------------------------------------------

    async def receive(self) -> str | bytes | None:
        """The next message; None once the queue is closed and empty."""
        await paced_checkpoint()
        self._receivers += 1  # (a running away timer is left: it looks again when it fires)
        try:
            while True:
                message = self._queue.pop()
                if message is not None:
                    return message
                if self._queue.closed:
                    return None
                if self._handler_reads and not self._handler_reading:
                    await self._read_for_the_handler()
                else:  # the frame reader reads, or another receive() does
                    self._waiting += 1
                    try:
                        await self._queue.wait_readable()
                    finally:
                        self._waiting -= 1
        finally:
            self._receivers -= 1
            self._left_at = trio.current_time()
            if self._standing_by:
                if self._queue.closed:  # the frame reader reads our close's reply
                    self._reader_lot.unpark_all()
                else:
                    self._start_away_timer()

    async def _read_for_the_handler(self) -> None:
        """One read in the handler's task, which :meth:`close_queue` ends: it wakes the
        tunnel's wait when the driver offers one (no cancel scope per message), else it
        cancels the read's scope.  Either way no byte is lost: the read ends before it
        reads, or not at all."""
        wait = self._tunnel.wait if self._tunnel is not None else None
        outbox = self._exchange.outbox
        more = True  # (False once the input is over)
        self._handler_reading = True
        try:
            if wait is not None and not (outbox.full or outbox.broken):
                if await wait() and not self._queue.closed:  # (else our close woke it)
                    more = await self._read_once()  # (it does not wait: bytes, or EOF, are in)
            else:
                with trio.CancelScope() as scope:
                    self._handler_read = scope
                    more = await self._read_once()
        finally:
            self._handler_reading = False
            self._handler_read = None
            if self._waiting:  # another receive() waits: it may read next
                self._queue.wake()
        if not more:
            self._end()

    # -- reading, by either --------------------------------------------------------------------

    async def _read_once(self) -> bool:
        """Read once, feed the core, act on its events; False once the input is over."""
        outbox = self._exchange.outbox
        if outbox.full or outbox.broken:
            self.blocked = True
            try:
                await outbox.wait_writable()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return self._eof()  # the client is gone: the write side saw it first
            finally:
                self.blocked = False
        assert self._receive is not None
        data = await self._receive()
        if not data:
            return self._eof()
        self._core.receive_data(data)
        return self._take_events()

    def _eof(self) -> bool:
        self._core.receive_eof()
        self._exchange.client_gone()
        return False

    def _take_events(self) -> bool:
        for event in self._core.events():
            if isinstance(event, Message):
                self._queue.append(event.data)
            elif isinstance(event, Pong):
                self._on_pong()
            elif isinstance(event, Closed):
                self._flush()
                if not event.by_peer:  # the client broke the protocol: drop it
                    log.info("WebSocket closed %d: %s", event.code, event.reason)
                    self._exchange.end_after_refusal()
                return False
        self._flush()
        return True

    def _end(self) -> None:
        if self._away_timer is not None:
            self._away_timer.cancel()
        if not self.ended.is_set():
            self.ended.set()
            self._queue.close()
            self._reader_lot.unpark_all()
