"""The write side of a connection: a byte-bounded outbox drained by one writer task.

Every byte a connection sends (response heads, chunks, SSE events, WebSocket frames, pongs)
goes through :class:`Outbox`.  Senders queue bytes; one writer task takes what is queued (up
to ``max_write`` bytes) and writes it with a single ``send_all``.  So:

* there is at most one writer per connection, and bytes go out in the order they were queued;
* while a stream idles (:attr:`Outbox.end_writer_when_empty`: an SSE subscriber waiting for
  news), the writer exists only while there is something to write: the first item queued
  into an empty outbox starts it, and it ends once the outbox is empty, so the idle
  connection holds no writer task and its memory.  Otherwise the writer waits, parked, for
  the next item (waking a parked task is a little cheaper than starting one, and a WebSocket
  or a keep-alive connection has tasks waiting anyway);
* events queued while a write is in flight leave together in the next write (coalescing:
  one syscall and one scheduler round trip for many events, which is what decides throughput);
* a lone event on an idle connection is written at once, with no added latency;
* the outbox is bounded, with hysteresis: once the queued bytes (including the write in
  flight) reach ``high_water``, :meth:`Outbox.wait_writable` blocks until they are back down
  to ``low_water``.  That is how a slow client's backpressure reaches the code producing for
  it, without waking the producer for every few bytes the client takes.

Producers that frame bytes through a sans-IO core call ``await wait_writable()`` *first* and
then frame and :meth:`Outbox.put_nowait` with no await between: bytes enter the outbox in the
order the core produced them, which stateful framing (permessage-deflate) requires.  The bound
is therefore ``high_water`` plus at most one item per concurrent sender.

Items queued as *droppable* (self-contained events: one SSE chunk, one uncompressed or
context-free WebSocket frame) may be removed again before they are written, by
:meth:`Outbox.drop_pending`: that is the ``drop_oldest`` slow-consumer policy.

Counters (for :meth:`Outbox.statistics` and ``/metrics``) are plain integers added to once per
write or once per event, never a lock or an allocation: :attr:`Outbox.events_sent` counts the
events (SSE events, WebSocket messages) queued here, by :meth:`Outbox.put_shared` itself and by
the connection's stream sends for the others (heads, chunks of plain bodies, keepalives, pongs
and close frames are bytes, not events).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio
from trio.lowlevel import ParkingLot, checkpoint

from ..pacing import paced_checkpoint
from .fastio import socket_io
from .tasks import TaskStarter

__all__ = ["WRITE_THROUGH_GAP", "Outbox", "OutboxStatistics"]

#: An empty outbox on a plain TCP socket that has not written through for this long writes
#: a new item at once, in the sender's task (see :meth:`Outbox.put_nowait`).
WRITE_THROUGH_GAP = 0.001

_KEEP = -1
_EVENT = 0


@dataclass(frozen=True, slots=True)
class OutboxStatistics:
    """A snapshot of one outbox (see :meth:`Outbox.statistics`)."""

    bytes_buffered: int
    bytes_sent: int
    writes: int
    items_dropped: int
    time_blocked: float
    events_sent: int


class Outbox:
    """Bytes waiting to be written to ``stream`` (see the module doc)."""

    def __init__(
        self,
        stream: trio.abc.SendStream,
        *,
        high_water: int,
        low_water: int | None = None,
        max_write: int | None = None,
    ) -> None:
        # Plain TCP: writes straight to the socket (see fastio); anything else: send_all.
        direct = socket_io(stream)
        self._send_all = (direct or stream).send_all
        self._try_send = direct.try_send if direct is not None else None
        self._last_write_through = -math.inf
        self._high = high_water
        # Waiting senders resume at or below low water, which is below high water.
        self._low = high_water // 2 if low_water is None else min(low_water, high_water - 1)
        self._max_write = max(max_write or 4 * high_water, 1)
        self._chunks: list[bytes] = []
        # Per chunk: _KEEP, _EVENT (droppable), or N > 0 for a gap marker standing for N events.
        self._drops: list[int] = []
        self._pending = 0  # bytes in _chunks
        self._buffered = 0  # pending + the write in flight
        self._broken: BaseException | None = None
        self._tasks: TaskStarter | None = None
        self._writing = False  # a writer task runs (or has been started)
        # The writer, waiting for items (made when it first waits: a stream's never does).
        self._writer_wakeup: ParkingLot | None = None
        self._end_writer_when_empty = False
        # Senders waiting for room and flushers waiting for empty (each re-checks on waking).
        self._drained = ParkingLot()
        self._watched: list[tuple[bytes, trio.Event]] = []  # items someone waits to see written
        #: A stream is running and takes items (the connection clears it the moment the
        #: stream ends, so a broadcast arriving later takes the general path and fails).
        self.streaming = False
        self.bytes_sent = 0
        self.writes = 0
        self.items_dropped = 0
        self.time_blocked = 0.0
        #: Events queued (SSE events, WebSocket messages; see the module doc): those later
        #: dropped by ``drop_oldest`` stay counted here, and are counted in ``items_dropped``.
        self.events_sent = 0
        #: ``trio.current_time()`` when the latest batch started to queue (keepalives use it
        #: to see idleness; read once a batch, not once an item).
        self.last_put = trio.current_time()

    @property
    def buffered(self) -> int:
        """Bytes queued or being written."""
        return self._buffered

    @property
    def low_water(self) -> int:
        """Where waiting senders resume (below ``high_water``)."""
        return self._low

    @property
    def full(self) -> bool:
        """At or above the high-water mark: a blocking sender would wait now."""
        return self._buffered >= self._high

    @property
    def broken(self) -> bool:
        """The stream failed; nothing more will be written."""
        return self._broken is not None

    def statistics(self) -> OutboxStatistics:
        """Bytes buffered and sent, writes made, items dropped, time senders spent blocked,
        events queued."""
        return OutboxStatistics(
            self._buffered,
            self.bytes_sent,
            self.writes,
            self.items_dropped,
            self.time_blocked,
            self.events_sent,
        )

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise trio.BrokenResourceError("the client connection is gone") from self._broken

    async def wait_writable(self) -> None:
        """Return at once below the high-water mark; at or above it, wait until the outbox
        has drained to the low-water mark.  Always a cancellation point; a yield to the
        scheduler at least once a millisecond (:func:`~rawstream.pacing.paced_checkpoint`:
        events queued without a yield between them leave in one write).

        Raises:
            trio.BrokenResourceError: the connection failed.
        """
        await paced_checkpoint()
        self._raise_if_broken()
        if self._buffered < self._high:
            return
        start = trio.current_time()
        try:
            while self._buffered > self._low:
                await self._drained.park()
                self._raise_if_broken()
        finally:
            self.time_blocked += trio.current_time() - start

    def put_nowait(
        self,
        data: bytes,
        *,
        droppable: bool = False,
        written: trio.Event | None = None,
        write_through: bool = False,
    ) -> None:
        """Queue ``data`` without waiting (callers bound themselves with :meth:`wait_writable`
        or a slow-consumer policy).  ``written`` is set once these bytes have been written
        (or the connection failed): a WebSocket ping's deadline starts there.

        *Write-through* (``write_through``: a sender answering in its own task, never a
        fan-out, whose publisher must not make a syscall per subscriber): on a plain TCP
        socket, an item put into an empty outbox that has not written through for
        ``WRITE_THROUGH_GAP`` seconds is written here, at once, as far as the kernel takes
        it (the rest is queued).  A reply to a request (a WebSocket echo, a
        response head) then costs no wake-up of the writer task; a producer sending in a
        loop writes through once, and its next items, less than the gap later, wait for the
        writer and leave together."""
        self._raise_if_broken()
        if written is not None:
            assert data and not droppable, "only non-empty items that stay can be watched"
            self._watched.append((data, written))
        if (
            write_through
            and data
            and written is None  # (a watched item is reported by the writer)
            and not self._buffered
            and self._try_send is not None
        ):
            now = time.perf_counter()
            if now - self._last_write_through >= WRITE_THROUGH_GAP:
                self._last_write_through = now
                sent = self._try_send(data)
                if sent:
                    self.bytes_sent += sent
                    self.writes += 1
                    self.last_put = trio.current_time()
                    if sent == len(data):
                        return
                    data, droppable = data[sent:], False  # the rest goes to the writer
        if data:
            self._chunks.append(data)
            self._drops.append(_EVENT if droppable else _KEEP)
            self._pending += len(data)
            self._buffered += len(data)
            if len(self._chunks) == 1:  # the first of a batch
                self.last_put = trio.current_time()
                self._wake_writer()

    def put_shared(self, data: bytes) -> bool:
        """The fan-out fast path: queue ``data`` (non-empty, droppable) if a stream is running
        and the outbox has room; False if not (the caller takes the general path, which
        applies the slow-consumer policy or raises).  Counts the event (:attr:`events_sent`)."""
        if self._buffered >= self._high or not self.streaming or self._broken is not None:
            return False
        self.events_sent += 1
        self._chunks.append(data)
        self._drops.append(_EVENT)
        self._pending += len(data)
        self._buffered += len(data)
        if len(self._chunks) == 1:
            self.last_put = trio.current_time()
            self._wake_writer()
        return True

    def drop_pending(self, make_marker: Callable[[int], bytes]) -> int:
        """Remove every droppable item not yet being written, and put one gap notice,
        ``make_marker(count)``, where the first of them was.

        An earlier gap notice still queued is merged into the new one (its count added), so
        under constant pressure the queue holds at most one notice: it cannot grow.  Returns
        how many events were dropped now (0: nothing was droppable, and nothing changed).
        """
        dropped = self._drops.count(_EVENT)
        if not dropped:
            return 0
        covered = dropped + sum(n for n in self._drops if n > 0)
        marker = make_marker(covered)
        in_flight = self._buffered - self._pending
        chunks: list[bytes] = []
        drops: list[int] = []
        for chunk, kind in zip(self._chunks, self._drops, strict=True):
            if kind == _KEEP:
                chunks.append(chunk)
                drops.append(_KEEP)
            elif marker:
                chunks.append(marker)
                drops.append(covered)
                marker = b""
        self._chunks, self._drops = chunks, drops
        self._pending = sum(map(len, chunks))
        self._buffered = in_flight + self._pending
        self.items_dropped += dropped
        self._drained.unpark_all()
        return dropped

    async def flush(self) -> None:
        """Wait until the outbox is empty (everything queued has been written)."""
        await checkpoint()
        while self._buffered and self._broken is None:
            await self._drained.park()

    def _take_batch(self) -> tuple[bytes, list[bytes]]:
        if self._pending <= self._max_write:
            chunks, self._chunks, self._drops = self._chunks, [], []
        else:  # cap one write; the rest goes in the next
            size = count = 0
            for chunk in self._chunks:
                if count and size + len(chunk) > self._max_write:
                    break
                size += len(chunk)
                count += 1
            chunks = self._chunks[:count]
            del self._chunks[:count], self._drops[:count]
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._pending -= len(data)
        return data, chunks

    def _notify_written(self, chunks: list[bytes]) -> None:
        waiting = []
        for item, event in self._watched:
            if any(chunk is item for chunk in chunks):
                event.set()
            else:
                waiting.append((item, event))
        self._watched = waiting

    def attach(self, tasks: TaskStarter) -> None:
        """Write from now on, in a task started with ``tasks`` (the connection's).  A failed
        write cancels its ``cancel_scope`` (the whole connection)."""
        self._tasks = tasks
        if self._chunks:
            self._wake_writer()

    def detach(self) -> None:
        """The connection is closing: no writer starts any more, and a later put raises
        (called while the connection still takes tasks, so none can meet it
        closed)."""
        self._tasks = None
        if self._writer_wakeup is not None:
            self._writer_wakeup.unpark_all()
        if self._broken is None:
            self._broken = trio.ClosedResourceError("the connection is closed")

    @property
    def end_writer_when_empty(self) -> bool:
        """The writer task ends whenever the outbox is empty (and starts again with the next
        item), instead of waiting parked: for a stream that may idle for hours."""
        return self._end_writer_when_empty

    @end_writer_when_empty.setter
    def end_writer_when_empty(self, value: bool) -> None:
        self._end_writer_when_empty = value
        if value and self._writer_wakeup is not None:
            self._writer_wakeup.unpark_all()  # a parked writer ends now

    def _wake_writer(self) -> None:
        if self._writing:
            if self._writer_wakeup is not None:
                self._writer_wakeup.unpark_all()
        elif self._tasks is not None:
            self._writing = True
            self._tasks.start_soon(self._write, trio.CancelScope(), name="writer")

    async def _write(self, scope: trio.CancelScope) -> None:
        """Drain the outbox in single writes; then wait for more, or end (see
        :attr:`end_writer_when_empty`).

        A failed write marks the outbox broken, wakes every waiting sender (they raise
        ``BrokenResourceError``) and cancels the connection's scope.
        """
        try:
            with scope:  # (through which the connection stops this task: see tasks.py)
                while True:
                    while self._chunks:
                        data, chunks = self._take_batch()
                        await self._send_all(data)
                        self.bytes_sent += len(data)
                        self.writes += 1
                        if self._watched:
                            self._notify_written(chunks)
                        self._buffered -= len(data)
                        if self._buffered <= self._low and len(self._drained):
                            self._drained.unpark_all()
                    if self._end_writer_when_empty or self._tasks is None:
                        return
                    if self._writer_wakeup is None:
                        self._writer_wakeup = ParkingLot()
                    await self._writer_wakeup.park()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._broken = exc
            self._chunks.clear()
            self._drops.clear()
            self._pending = self._buffered = 0
            self._drained.unpark_all()
            for _, event in self._watched:
                event.set()
            self._watched.clear()
            if self._tasks is not None:
                self._tasks.cancel_scope.cancel()
        finally:
            self._writing = False
