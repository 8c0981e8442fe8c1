"""The read side of a connection: reading ahead into a bounded buffer, and who reads.

Reading ahead (rather than only when a protocol driver asks) is what makes a vanished client
visible at once: EOF or a reset marks the receiver closed while a handler is busy streaming,
and the connection cancels that handler.  The buffer is bounded: above ``limit`` bytes the task
stops reading, the kernel's receive window fills, and TCP pushes back on the client.

A connection that may stay silent for hours (an SSE subscriber, a kept-alive connection
between requests) need not keep a task waiting on its socket: a parked receiver hands the
socket to the server's one :class:`~rawstream.server.readiness.ReadinessWatcher`, which reads
it when the client sends something or leaves, into the same bounded buffer, and wakes whoever
waits in :meth:`Receiver.receive`.  A reading task is started again only for what the watcher
cannot do: wait for room when the buffer is full.

The receiver is a small state machine (:class:`ReceiverState`); every change of state goes
through :meth:`Receiver._enter`, which checks it against :data:`TRANSITIONS`::

                  watch(park=True)                     task restarted
      READING ───────────────────────► RESTARTING ──────────────────► READING
       │   ▲                               │
       │   │ buffer full,                  │ (it parks before the cancel lands)
       │   │ watch(park=False),            ▼
       │   │ or the watcher stopped      PARKED
       ▼   │
      PARKED      (READING to PARKED: nothing to read, and parking wanted)
       │
       │ hand_off()        READING / RESTARTING ── hand_off() ──► HANDING_OFF
       ▼                                                            │ task ended
      HANDED_OFF ◄──────────────────────────────────────────────────┘
       │
       ▼ EOF or an error (while READING, PARKED or HANDED_OFF), or stop() from any state
      CLOSED

      PARKED, not yet in the watcher ── receive() ──► CALLER_READS ── read returns ──► PARKED
                                                       (CLOSED on EOF, an error, or stop())

(EOF seen while RESTARTING restarts first, and the new task sees it; seen while HANDING_OFF,
the hand-off completes and receive() sees it.)

READING, RESTARTING and HANDING_OFF have a reading task; PARKED has the watcher instead (it
reads, in its own task, whenever the socket is readable); HANDED_OFF and CALLER_READS have
neither (:meth:`Receiver.receive` reads the socket in its caller's task: for good after a
hand-off; once, for a connection's first read, before anything made the watcher hold it).

An HTTP/1.1 connection's receiver parks whenever nothing is to be read (``park_idle``), and
starts parked: its first request is read in the request cycle's task, and from the first
handler on (whose client leaving cancels it) the watcher holds the socket for the rest of the
connection, so waiting for the next request and running a handler cost no task and no change
to the watcher's registrations, only the watcher's read when bytes arrive.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

import trio
from trio.lowlevel import ParkingLot

from ..pacing import note_yield, paced_checkpoint
from .fastio import socket_io
from .readiness import ReadinessWatcher
from .tasks import TaskStarter

__all__ = ["TRANSITIONS", "Receiver", "ReceiverState"]

log = logging.getLogger("rawstream.connection")

RECEIVE_SIZE = 64 * 1024


class ReceiverState(enum.Enum):
    """Who reads the socket now (see the module doc's diagram)."""

    # (Members are singletons: identity hashing is correct, and several times cheaper than
    # Enum's hash of the name, paid by every checked change of state, a few per request.)
    __hash__ = object.__hash__

    READING = "reading"  # the reading task reads ahead (or waits for room in the buffer)
    RESTARTING = "restarting"  # the task was cancelled to start again (so that it can park)
    PARKED = "parked"  # no task: the readiness watcher reads the socket when it is readable
    HANDING_OFF = "handing_off"  # the task was cancelled; receive() will read by itself
    HANDED_OFF = "handed_off"  # no task: receive() reads the socket in its caller's task
    CALLER_READS = "caller_reads"  # parked, not yet in the watcher: a receive() reads, once
    CLOSED = "closed"  # EOF, a connection error, or the connection is ending


_S = ReceiverState

#: Every allowed change of state (anything else is a bug, and asserts).
TRANSITIONS: dict[ReceiverState, frozenset[ReceiverState]] = {
    _S.READING: frozenset({_S.RESTARTING, _S.PARKED, _S.HANDING_OFF, _S.CLOSED}),
    _S.RESTARTING: frozenset({_S.READING, _S.PARKED, _S.HANDING_OFF, _S.CLOSED}),
    _S.PARKED: frozenset({_S.READING, _S.HANDED_OFF, _S.CALLER_READS, _S.CLOSED}),
    _S.CALLER_READS: frozenset({_S.PARKED, _S.CLOSED}),
    _S.HANDING_OFF: frozenset({_S.HANDED_OFF, _S.CLOSED}),
    _S.HANDED_OFF: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}


class Receiver:
    """Bytes read from ``stream`` and not yet consumed: below ``limit`` plus one read."""

    __slots__ = (
        "_buffer",
        "_changed",
        "_direct",
        "_full_is_gone",
        "_limit",
        "_on_gone",
        "_park",
        "_park_idle",
        "_parked_fd",
        "_receive_some",
        "_scope",
        "_state",
        "_tasks",
        "_watcher",
        "_woken",
        "bytes_received",
    )

    def __init__(
        self,
        stream: trio.abc.ReceiveStream,
        *,
        limit: int,
        watcher: ReadinessWatcher | None = None,
        park_idle: bool = False,
    ) -> None:
        # Plain TCP: reads straight from the socket (see fastio); anything else: receive_some.
        self._direct = socket_io(stream)
        self._receive_some = (self._direct or stream).receive_some
        # Parking needs the watcher's epoll and a plain socket (TLS may hold decrypted bytes
        # the socket's readiness does not show).
        self._watcher = watcher if watcher is not None and self._direct is not None else None
        self._state = ReceiverState.READING
        self._tasks: TaskStarter | None = None
        self._scope: trio.CancelScope | None = None  # the reading task's, while it runs
        self._parked_fd = -1  # the socket the watcher holds (PARKED only; -1 before any)
        self._limit = limit
        self._buffer = bytearray()
        # Consumers waiting for data, and the reading task waiting for room (never both).
        self._changed = ParkingLot()
        # What watch() asked for: a callback when the client goes, and whether to park.
        self._on_gone: Callable[[], None] | None = None
        self._full_is_gone = True
        self._park = False
        #: Park whenever nothing is to be read, watched for or not (see receive()).
        self._park_idle = park_idle and self._watcher is not None
        self._woken = False  # (wake() was called: a wait_readable() returns False)
        self.bytes_received = 0

    @property
    def state(self) -> ReceiverState:
        """Who reads the socket now."""
        return self._state

    @property
    def buffered(self) -> int:
        """Bytes read but not yet consumed."""
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        """The client closed its side, or the connection failed or is ending."""
        return self._state is ReceiverState.CLOSED

    def _enter(self, state: ReceiverState) -> None:
        """The one place the state changes."""
        assert state in TRANSITIONS[self._state], f"receiver: {self._state} -> {state}"
        self._state = state

    def start(self, tasks: TaskStarter) -> None:
        """Read ahead from now on: in a task started with ``tasks`` (the connection's), or,
        parking whenever idle, parked from the start (no task is started only to find
        nothing to read and park)."""
        self._tasks = tasks
        self._park = self._park_idle and self._watcher is not None and self._watcher.available
        if self._park:
            # Parked, but not yet in the watcher: the first receive() reads at once (a new
            # connection's request is usually there already), and the socket is registered
            # only when someone must wait for it (see _ensure_watched).
            self._enter(ReceiverState.PARKED)
        else:
            self._start_task()

    def stop(self) -> None:
        """The connection is ending: give up a parked socket (before it is closed)."""
        self._unpark()
        if self._state is not ReceiverState.CLOSED:
            self._enter(ReceiverState.CLOSED)
        self._tasks = None

    def _start_task(self) -> None:
        assert self._tasks is not None
        self._scope = trio.CancelScope()
        self._tasks.start_soon(self._run, self._scope, name="receiver")

    async def _run(self, scope: trio.CancelScope) -> None:
        """Read until EOF or a connection error, pausing while the buffer is full; end early
        when cancelled (to restart or hand off), or to park."""
        try:
            with scope:
                while True:
                    while len(self._buffer) >= self._limit:
                        self._notify_gone(full=True)
                        await self._changed.park()
                    data: bytes | bytearray | None
                    if self._parking_possible():
                        assert self._direct is not None
                        data = self._direct.try_receive(RECEIVE_SIZE)
                        if data is None:  # nothing to read: the watcher waits for us
                            self._park_socket()
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
            self._task_ended()

    def _parking_possible(self) -> bool:
        """Park when nothing is to be read: asked for, and the watcher is running (never
        once the connection ends, nor while a hand-off is on its way; a restart asked for
        is not needed when the task parks anyway)."""
        return (
            self._park
            and self._state in (ReceiverState.READING, ReceiverState.RESTARTING)
            and self._watcher is not None
            and self._watcher.available
        )

    def _park_socket(self) -> None:
        self._enter(ReceiverState.PARKED)
        self._ensure_watched()

    def _task_ended(self) -> None:
        """The reading task ended: what follows depends on why (the state says)."""
        state = self._state
        if state is ReceiverState.PARKED:
            return  # it parked: nothing changed for a consumer, no wake-up
        if state is ReceiverState.RESTARTING:
            self._enter(ReceiverState.READING)
            self._start_task()
        elif state is ReceiverState.HANDING_OFF:
            self._enter(ReceiverState.HANDED_OFF)  # receive() reads from now on
        elif state is ReceiverState.READING:  # EOF or an error
            self._enter(ReceiverState.CLOSED)
            self._notify_gone(full=False)
        self._changed.unpark_all()

    def _ensure_watched(self) -> None:
        """A parked socket is about to be waited for: make sure the watcher holds it (or,
        the watcher gone, that a reading task reads it)."""
        if self._state is ReceiverState.PARKED and self._parked_fd < 0:
            assert self._direct is not None and self._watcher is not None
            if self._watcher.available:
                self._parked_fd = self._direct.fileno()
                self._watcher.watch(self._parked_fd, self._on_readable)
            else:
                self._resume_reading()

    def _on_readable(self) -> None:
        """The watcher saw the parked socket readable (data, EOF or an error), or stopped
        (then a reading task takes over).  Called from the watcher's task: read once, as
        the reading task would, without waiting."""
        assert self._state is ReceiverState.PARKED and self._direct is not None
        watcher = self._watcher
        if watcher is None or not watcher.available:
            self._parked_fd = -1  # (the watcher let go of it)
            try:
                self._resume_reading()
            except RuntimeError:  # the connection is ending too: it takes no task
                self._enter(ReceiverState.CLOSED)
                self._changed.unpark_all()
            return
        self._read_parked_now()

    def _read_parked_now(self) -> None:
        """One read of the parked socket, without waiting, as the reading task would."""
        assert self._direct is not None
        try:
            data = self._direct.try_receive(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data is None:
            return  # nothing to read (the watcher, if it holds the socket, waits on)
        if not data:  # EOF or an error
            self._unpark()
            self._enter(ReceiverState.CLOSED)
            self._notify_gone(full=False)
        else:
            self.bytes_received += len(data)
            self._buffer += data
            if len(self._buffer) >= self._limit:  # only a task can wait for room
                self._unpark()
                self._resume_reading()
        if self._changed:  # (a ParkingLot is true while a task waits in it)
            self._changed.unpark_all()

    def _resume_reading(self) -> None:
        self._enter(ReceiverState.READING)
        self._start_task()

    def _unpark(self) -> None:
        if self._state is ReceiverState.PARKED and self._parked_fd >= 0:
            assert self._watcher is not None
            self._watcher.unwatch(self._parked_fd)
            self._parked_fd = -1

    def hand_off(self) -> None:
        """Stop reading ahead: from now on :meth:`receive` reads the socket itself, in its
        caller's task.  For a WebSocket, whose frame reader reads all the time (so it sees
        EOF) and bounds what it takes: one task fewer between the socket and the handler for
        every message.  Plain TCP only (elsewhere, nothing changes)."""
        if self._direct is None:
            return
        state = self._state
        assert state is not ReceiverState.CALLER_READS, "hand_off() while a receive() reads"
        if state is ReceiverState.PARKED:
            self._unpark()
            self._enter(ReceiverState.HANDED_OFF)
            self._changed.unpark_all()  # (a receive() waiting for the watcher reads itself)
        elif state in (ReceiverState.READING, ReceiverState.RESTARTING):
            self._enter(ReceiverState.HANDING_OFF)
            assert self._scope is not None
            self._scope.cancel()

    def watch(
        self, on_gone: Callable[[], None] | None, *, full: bool = True, park: bool = False
    ) -> None:
        """Call ``on_gone()`` once when the client closes, or (``full``) when the buffer is
        full and reading stops (after which a close could no longer be seen); at once if
        that has happened.  None stops watching.  (A callback, not a task per connection:
        an idle stream costs less memory.)

        ``park``: while nothing arrives, no task waits on the socket; the server's readiness
        watcher reads it when something does (for long, mostly silent streams)."""
        if self._park_idle and self._state is ReceiverState.PARKED and self._parked_fd >= 0:
            # (Parked in the watcher for good, as every plain request's watch finds it: only
            # the callback changes.  A full buffer or EOF would have left PARKED.)
            self._on_gone = on_gone
            self._full_is_gone = full
            return
        self._on_gone = on_gone
        self._full_is_gone = full
        was_parking = self._park
        self._park = (
            (self._park_idle or (park and on_gone is not None))
            and self._watcher is not None
            and self._watcher.available
        )
        if not self._park and self._state is ReceiverState.PARKED:
            self._unpark()
            self._resume_reading()
        elif on_gone is not None and self._state is ReceiverState.PARKED:
            self._ensure_watched()  # (a client leaving must be seen)
        elif self._park and not was_parking and self._state is ReceiverState.READING:
            self._enter(ReceiverState.RESTARTING)  # the task waits on the socket: restart it
            assert self._scope is not None
            self._scope.cancel()
        if self.closed or (full and len(self._buffer) >= self._limit):
            self._notify_gone(full=not self.closed)

    def _notify_gone(self, *, full: bool) -> None:
        if full and not self._full_is_gone:
            return
        on_gone, self._on_gone = self._on_gone, None
        if on_gone is not None:
            if full:
                # (A full buffer counts as gone only when the watcher asked for it: a stream,
                # whose client has nothing to send but a pipelined request or two, so a full
                # read buffer is abuse, and would also hide its EOF from us.)
                log.info("client filled the read buffer during a stream")
            on_gone()

    async def receive(self) -> bytes:
        """Everything buffered, waiting for at least one byte; ``b""`` once the client closed.

        Parked, the watcher reads what arrives and wakes the caller: the next request on a
        kept-alive connection (or a request body) costs no reading task and no change to
        what the watcher holds."""
        if not self._buffer and self._state is ReceiverState.HANDED_OFF:
            return await self._receive_directly()  # (SocketIO's read is the checkpoint)
        if not self._buffer and self._state is ReceiverState.PARKED and self._parked_fd < 0:
            return await self._read_unwatched()
        if self._buffer or self.closed:
            await paced_checkpoint()  # (below, the wait is the checkpoint)
        while not self._buffer and not self.closed:
            if self._state is ReceiverState.HANDED_OFF:
                return await self._receive_directly()
            await self._park_for_bytes()
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._changed:  # (a reading task waiting for room)
            self._changed.unpark_all()
        return data

    @property
    def parks(self) -> bool:
        """Parked in the watcher whenever idle, for good (an HTTP/1.1 connection on plain
        TCP with the watcher running): :meth:`wait_readable` and :meth:`wake` apply."""
        return self._park_idle and self._park and self._state is ReceiverState.PARKED

    async def wait_readable(self) -> bool:
        """Until :meth:`receive` would not wait (True: bytes buffered, or the client
        closed), or until :meth:`wake` is called (False): a wait another task can end
        without a cancel scope.  A cancellation point only when it waits."""
        self._woken = False
        while not self._buffer and not self.closed:
            if self._woken:
                return False
            await self._park_for_bytes()
        return True

    async def _park_for_bytes(self) -> None:
        """Wait for the watcher (or the reading task) to change something."""
        self._ensure_watched()
        await self._changed.park()
        note_yield()  # (a real yield: the caller's paced checkpoints need not yield again)

    def wake(self) -> None:
        """End a :meth:`wait_readable` in progress (it returns False)."""
        self._woken = True
        if self._changed:
            self._changed.unpark_all()

    async def _read_unwatched(self) -> bytes:
        """A read of a parked socket the watcher does not hold yet (a new connection's first
        request), in the caller's task: its request is usually there already, and if not,
        Trio's own wait costs less than registering the socket and a wake-up by the watcher.
        Whatever asked meanwhile for the client to be watched is done when it returns."""
        self._enter(ReceiverState.CALLER_READS)
        try:
            return await self._receive_directly()
        finally:
            if self._state is ReceiverState.CALLER_READS:
                self._enter(ReceiverState.PARKED)
                if not self._park:
                    self._resume_reading()
                elif self._on_gone is not None:
                    self._ensure_watched()

    async def _receive_directly(self) -> bytes:
        assert self._direct is not None, "only a plain TCP receiver reads in its caller's task"
        try:
            data = await self._direct.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self.bytes_received += len(data)
        elif self._state is ReceiverState.HANDED_OFF:
            self._enter(ReceiverState.CLOSED)  # (its reader sees the EOF: no callback)
        elif self._state is ReceiverState.CALLER_READS:
            self._enter(ReceiverState.CLOSED)
            self._notify_gone(full=False)
        return data
