"""The read side of a connection: a task reads ahead into a bounded buffer.

Reading ahead (rather than only when a protocol driver asks) is what makes a vanished client
visible at once: EOF or a reset marks the receiver closed while a handler is busy streaming,
and the connection cancels that handler.  The buffer is bounded: above ``limit`` bytes the task
stops reading, the kernel's receive window fills, and TCP pushes back on the client.

A stream that may stay silent for hours (an SSE subscriber) need not keep a task waiting on
its socket: :meth:`Receiver.watch` with ``park=True`` lets the reading task end whenever the
socket has nothing to read, and hands the socket to the server's one
:class:`~rawstream.server.readiness.ReadinessWatcher`, which starts the task again when the
client sends something or leaves.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
from trio.lowlevel import ParkingLot

from ..pacing import paced_checkpoint
from .fastio import socket_io
from .readiness import ReadinessWatcher

__all__ = ["Receiver"]

RECEIVE_SIZE = 64 * 1024


class Receiver:
    """Bytes read from ``stream`` and not yet consumed: below ``limit`` plus one read."""

    __slots__ = (
        "_buffer",
        "_changed",
        "_closed",
        "_direct",
        "_full_is_gone",
        "_handed_off",
        "_limit",
        "_nursery",
        "_on_gone",
        "_park",
        "_parked_fd",
        "_receive_some",
        "_restart",
        "_scope",
        "_stopped",
        "_watcher",
        "bytes_received",
    )

    def __init__(
        self,
        stream: trio.abc.ReceiveStream,
        *,
        limit: int,
        watcher: ReadinessWatcher | None = None,
    ) -> None:
        # Plain TCP: reads straight from the socket (see fastio); anything else: receive_some.
        self._direct = socket_io(stream)
        self._receive_some = (self._direct or stream).receive_some
        # Parking needs the watcher's epoll and a plain socket (TLS may hold decrypted bytes
        # the socket's readiness does not show).
        self._watcher = watcher if watcher is not None and self._direct is not None else None
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None  # the reading task's, while it runs
        self._handed_off = False  # hand_off() was called ...
        self._stopped = False  # ... and the reading task has stopped: receive() reads itself
        self._park = False  # watch(park=True): end the task while there is nothing to read
        self._parked_fd = -1  # ... and it has: the watcher holds this socket
        self._restart = False  # the task was stopped to start again (and park)
        self._closed = False
        self._limit = limit
        self._buffer = bytearray()
        # Consumers waiting for data, and the reading task waiting for room (never both).
        self._changed = ParkingLot()
        self._on_gone: Callable[[], None] | None = None
        self._full_is_gone = True
        self.bytes_received = 0

    @property
    def buffered(self) -> int:
        """Bytes read but not yet consumed."""
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        """The client closed its side, or the connection failed."""
        return self._closed

    def start(self, nursery: trio.Nursery) -> None:
        """Read ahead in a task of ``nursery`` (the connection's) from now on."""
        self._nursery = nursery
        self._start_task()

    def stop(self) -> None:
        """The connection is ending: give up a parked socket (before it is closed)."""
        self._unpark()
        self._nursery = None

    def _start_task(self) -> None:
        if self._nursery is not None:
            self._scope = trio.CancelScope()
            self._nursery.start_soon(self._run, self._scope, name="receiver")

    async def _run(self, scope: trio.CancelScope) -> None:
        """Read until EOF or a connection error, pausing while the buffer is full; end early
        on :meth:`hand_off`, or when parked."""
        parked = False
        try:
            with scope:
                while True:
                    while len(self._buffer) >= self._limit:
                        self._notify_gone(full=True)
                        await self._changed.park()
                    data: bytes | bytearray | None
                    if (
                        self._park
                        and self._nursery is not None
                        and self._watcher is not None
                        and self._watcher.available
                    ):  # (not once the connection ends)
                        assert self._direct is not None
                        data = self._direct.try_receive(RECEIVE_SIZE)
                        if data is None:  # nothing to read: the watcher waits for us
                            parked = True
                            self._parked_fd = self._direct.fileno()
                            self._watcher.watch(self._parked_fd, self._wake)
                            return
                    else:
                        data = await self._receive_some(RECEIVE_SIZE)
                    if not data:
                        break
                    self.bytes_received += len(data)
                    self._buffer += data
                    self._changed.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._scope = None
            # (A restart asked for while this task was about to park anyway is not needed.)
            restart, self._restart = self._restart and not parked, False
            if parked:
                pass  # nothing changed for a consumer: no wake-up
            elif self._handed_off and not self._closed:
                self._stopped = True  # receive() reads from now on
            elif restart:
                self._start_task()
            else:
                self._closed = True
                self._notify_gone(full=False)
            if not parked:
                self._changed.unpark_all()

    def _wake(self) -> None:
        """The watcher saw the parked socket readable (data, EOF or an error)."""
        if self._parked_fd >= 0:
            self._parked_fd = -1
            self._start_task()

    def _unpark(self) -> None:
        if self._parked_fd >= 0:
            assert self._watcher is not None
            self._watcher.unwatch(self._parked_fd)
            self._parked_fd = -1

    def hand_off(self) -> None:
        """Stop reading ahead: from now on :meth:`receive` reads the socket itself, in its
        caller's task.  For a WebSocket, whose frame reader reads all the time (so it sees
        EOF) and bounds what it takes: one task fewer between the socket and the handler for
        every message.  Plain TCP only (elsewhere, nothing changes)."""
        if self._direct is not None and not self._handed_off:
            self._handed_off = True
            if self._parked_fd >= 0:
                self._unpark()
                self._stopped = True
            elif self._scope is not None:
                self._scope.cancel()

    def watch(
        self, on_gone: Callable[[], None] | None, *, full: bool = True, park: bool = False
    ) -> None:
        """Call ``on_gone()`` once when the client closes, or (``full``) when the buffer is
        full and reading stops (after which a close could no longer be seen); at once if
        that has happened.  None stops watching.  (A callback, not a task per connection:
        an idle stream costs less memory.)

        ``park``: while nothing arrives, no task waits on the socket; the server's readiness
        watcher starts one when something does (for long, mostly silent streams)."""
        self._on_gone = on_gone
        self._full_is_gone = full
        self._park = (
            park and on_gone is not None and self._watcher is not None and self._watcher.available
        )
        if not self._park and self._parked_fd >= 0:
            self._unpark()
            self._start_task()
        elif self._park and self._scope is not None and not self._handed_off:
            self._restart = True  # the task waits on the socket: start it again to park
            self._scope.cancel()
        if self._closed or (full and len(self._buffer) >= self._limit):
            self._notify_gone(full=not self._closed)

    def _notify_gone(self, *, full: bool) -> None:
        if full and not self._full_is_gone:
            return
        on_gone, self._on_gone = self._on_gone, None
        if on_gone is not None:
            on_gone()

    async def receive(self) -> bytes:
        """Everything buffered, waiting for at least one byte; ``b""`` once the client closed."""
        if self._stopped and not self._buffer and not self._closed:
            return await self._receive_directly()  # (SocketIO's read is the checkpoint)
        await paced_checkpoint()
        while not self._buffer and not self._closed:
            if self._stopped:
                return await self._receive_directly()
            # (Parked, the watcher starts the reading task when bytes arrive: a stream's
            # handler reading its request body waits here like any other consumer.)
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
            self._closed = True
        return data
