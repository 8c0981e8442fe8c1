"""The read side of a connection: one task reads ahead into a bounded buffer.

Reading ahead (rather than only when a protocol driver asks) is what makes a vanished client
visible at once: EOF or a reset sets :attr:`Receiver.closed` while a handler is busy streaming,
and the connection cancels that handler.  The buffer is bounded: above ``limit`` bytes the task
stops reading, the kernel's receive window fills, and TCP pushes back on the client.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
from trio.lowlevel import ParkingLot

from .fastio import paced_checkpoint, socket_io

__all__ = ["Receiver"]

RECEIVE_SIZE = 64 * 1024


class Receiver:
    """Bytes read from ``stream`` and not yet consumed: below ``limit`` plus one read."""

    def __init__(self, stream: trio.abc.ReceiveStream, *, limit: int) -> None:
        # Plain TCP: reads straight from the socket (see fastio); anything else: receive_some.
        self._direct = socket_io(stream)
        self._receive_some = (self._direct or stream).receive_some
        self._scope = trio.CancelScope()
        self._handed_off = False  # hand_off() was called ...
        self._stopped = False  # ... and the reading task has stopped: receive() reads itself
        self._limit = limit
        self._buffer = bytearray()
        # Consumers waiting for data, and the reading task waiting for room (never both).
        self._changed = ParkingLot()
        self._on_gone: Callable[[], None] | None = None
        #: Set once the client closed its side or the connection failed.
        self.closed = trio.Event()
        self.bytes_received = 0

    @property
    def buffered(self) -> int:
        """Bytes read but not yet consumed."""
        return len(self._buffer)

    async def run(self) -> None:
        """Read until EOF or a connection error, pausing while the buffer is full (or until
        :meth:`hand_off`)."""
        try:
            with self._scope:
                while True:
                    while len(self._buffer) >= self._limit:
                        self._notify_gone()
                        await self._changed.park()
                    data = await self._receive_some(RECEIVE_SIZE)
                    if not data:
                        break
                    self.bytes_received += len(data)
                    self._buffer += data
                    self._changed.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if self._handed_off and not self.closed.is_set():
                self._stopped = True  # receive() reads from now on
            else:
                self.closed.set()
                self._notify_gone()
            self._changed.unpark_all()

    def hand_off(self) -> None:
        """Stop reading ahead: from now on :meth:`receive` reads the socket itself, in its
        caller's task.  For a WebSocket, whose frame reader reads all the time (so it sees
        EOF) and bounds what it takes: one task fewer between the socket and the handler for
        every message.  Plain TCP only (elsewhere, nothing changes)."""
        if self._direct is not None and not self._handed_off:
            self._handed_off = True
            self._scope.cancel()

    def watch(self, on_gone: Callable[[], None] | None) -> None:
        """Call ``on_gone()`` once when the client closes, or when the buffer is full and
        reading stops (after which a close could no longer be seen); at once if that has
        happened.  None stops watching.  (A callback, not a task per connection: an idle
        stream costs less memory.)"""
        self._on_gone = on_gone
        if self.closed.is_set() or len(self._buffer) >= self._limit:
            self._notify_gone()

    def _notify_gone(self) -> None:
        on_gone, self._on_gone = self._on_gone, None
        if on_gone is not None:
            on_gone()

    async def receive(self) -> bytes:
        """Everything buffered, waiting for at least one byte; ``b""`` once the client closed."""
        if self._stopped and not self._buffer and not self.closed.is_set():
            return await self._receive_directly()  # (SocketIO's read is the checkpoint)
        await paced_checkpoint()
        while not self._buffer and not self.closed.is_set():
            if self._stopped:
                return await self._receive_directly()
            await self._changed.park()
        data = bytes(self._buffer)
        self._buffer.clear()
        self._changed.unpark_all()
        return data

    async def _receive_directly(self) -> bytes:
        assert self._direct is not None, "only a plain TCP receiver hands off"
        try:
            data = await self._direct.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self.bytes_received += len(data)
        else:
            self.closed.set()
        return data
