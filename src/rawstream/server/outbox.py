"""The write side of a connection: a byte-bounded outbox drained by one writer task.

Every byte a connection sends (response heads, chunks, SSE events, WebSocket frames, pongs)
goes through :class:`Outbox`.  Senders queue bytes; one writer task takes *everything* queued
and writes it with a single ``send_all``.  So:

* there is exactly one writer per connection, and bytes go out in the order they were queued;
* events queued while a write is in flight leave together in the next write (coalescing:
  one syscall and one scheduler round trip for many events, which is what decides throughput);
* a lone event on an idle connection is written at once, with no added latency;
* the outbox is bounded: :meth:`Outbox.wait_writable` blocks while the queued bytes (including
  the write in flight) are at or above ``limit``, which is how a slow client's backpressure
  reaches the code producing for it.

Producers that frame bytes through a sans-IO core call ``await wait_writable()`` *first* and
then frame and :meth:`Outbox.put_nowait` with no await between: bytes enter the outbox in the
order the core produced them, which stateful framing (permessage-deflate) requires.  The bound
is therefore ``limit`` plus at most one item per concurrent sender.
"""

from __future__ import annotations

import trio
from trio.lowlevel import ParkingLot, checkpoint

__all__ = ["Outbox"]


class Outbox:
    """Bytes waiting to be written to ``stream``, at most ``limit`` (see the module doc)."""

    def __init__(self, stream: trio.abc.SendStream, *, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._broken: BaseException | None = None
        self._writer_wakeup = ParkingLot()
        self._space = ParkingLot()
        self._flushed = ParkingLot()
        self.bytes_sent = 0

    @property
    def buffered(self) -> int:
        """Bytes queued or being written."""
        return self._buffered

    @property
    def broken(self) -> bool:
        """The stream failed; nothing more will be written."""
        return self._broken is not None

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise trio.BrokenResourceError("the client connection is gone") from self._broken

    async def wait_writable(self) -> None:
        """Wait until the outbox is below its limit (always a checkpoint).

        Raises:
            trio.BrokenResourceError: the connection failed.
        """
        await checkpoint()
        while True:
            self._raise_if_broken()
            if self._buffered < self._limit:
                return
            await self._space.park()

    def put_nowait(self, data: bytes) -> None:
        """Queue ``data`` without waiting (callers bound themselves with :meth:`wait_writable`)."""
        self._raise_if_broken()
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            self._writer_wakeup.unpark_all()

    async def flush(self) -> None:
        """Wait until everything queued so far has been written."""
        await checkpoint()
        while self._buffered and self._broken is None:
            await self._flushed.park()

    async def run_writer(self, on_broken: trio.CancelScope) -> None:
        """The connection's one writer: drain the outbox in single writes until cancelled.

        A failed write marks the outbox broken, wakes every waiting sender (they raise
        ``BrokenResourceError``) and cancels ``on_broken``, the connection's scope.
        """
        try:
            while True:
                while not self._chunks:
                    await self._writer_wakeup.park()
                chunks, self._chunks = self._chunks, []
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                await self._stream.send_all(data)
                self.bytes_sent += len(data)
                self._buffered -= len(data)
                self._space.unpark_all()
                if not self._buffered:
                    self._flushed.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._broken = exc
            self._chunks.clear()
            self._buffered = 0
            for lot in (self._space, self._flushed):
                lot.unpark_all()
            on_broken.cancel()
