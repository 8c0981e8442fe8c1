"""Where rawstream goes around Trio's conveniences on the hot path, and why.

Every ``await stream.send_all()`` or ``receive_some()`` on a ``trio.SocketStream`` that
succeeds at once still yields to the scheduler (a full checkpoint), and so does every
``trio.lowlevel.checkpoint()``.  A scheduler round trip costs several microseconds: at tens of
thousands of events per second per core, those yields, not the protocol code, decide the
speed (a plain Trio server doing one ``send_all`` per event delivers about 34k events/s to
1000 subscribers; draining each subscriber's queue into one write, about 1.9 million).

* :func:`~rawstream.pacing.paced_checkpoint` (in :mod:`rawstream.pacing`, which the hub uses
  too) is what rawstream's hot loops await instead of a checkpoint: a real yield at most once
  a millisecond.
* :class:`SocketIO` reads and writes a plain TCP socket's file descriptor directly
  (``os.read``/``os.write`` on the non-blocking socket Trio made), waiting with
  ``trio.lowlevel.wait_readable``/``wait_writable`` only when the kernel would block.  It is
  used for plain TCP streams only; TLS streams keep ``trio.SSLStream``.  Trio still owns the
  socket: closing it wakes our waits with ``ClosedResourceError``.  Its :meth:`SocketIO.try_send`
  is the outbox's write-through (:meth:`~rawstream.server.outbox.Outbox.put_nowait`).

Direct I/O needs a socket that is a file descriptor: POSIX (:data:`DIRECT_IO`).  Elsewhere
(Windows) :func:`socket_io` returns None for every stream, so the outbox and the receiver use
Trio's own ``send_all``/``receive_some``, as they do for TLS: no write-through, no handoff to a
WebSocket's frame reader, and no idle-socket parking (which needs a plain socket too).
"""

from __future__ import annotations

import errno
import os

import trio
from trio.lowlevel import checkpoint_if_cancelled, wait_readable, wait_writable

from ..pacing import note_yield, paced_checkpoint

__all__ = ["DIRECT_IO", "SocketIO", "socket_io"]

#: Plain TCP streams are read and written through their file descriptor (:class:`SocketIO`):
#: POSIX only, where a socket is one.  Read by :func:`socket_io` at each call, so a test can
#: set it False to run the server on Trio's stream methods alone (tests/conftest.py does,
#: for every test, under ``RAWSTREAM_TEST_PORTABLE_IO=1``).
DIRECT_IO: bool = os.name == "posix"

_CLOSED = (errno.EBADF, errno.ENOTSOCK)


class SocketIO:
    """Non-blocking reads and writes on a connected socket's file descriptor."""

    __slots__ = ("_drained", "_fileno")

    def __init__(self, sock: trio.socket.SocketType) -> None:
        # The fd is read per call: -1 once Trio closed the socket (EBADF, never a reused fd).
        self._fileno = sock.fileno
        #: The last read was short: the kernel's buffer was emptied, so the next read would
        #: most likely fail with EAGAIN (a request answered, the client thinking): wait first.
        self._drained = False

    def fileno(self) -> int:
        """The socket's file descriptor (-1 once closed)."""
        return self._fileno()

    async def send_all(self, data: bytes) -> None:
        """Write all of ``data``, waiting for the socket only when its buffer is full.

        Raises:
            trio.BrokenResourceError: the peer is gone.
            trio.ClosedResourceError: the socket was closed.
        """
        await checkpoint_if_cancelled()
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self._fileno(), view)
            except BlockingIOError:
                sent = 0  # (waited for below: not inside the handler, which keeps the error)
            except OSError as exc:
                raise _translate(exc) from exc
            if sent:
                view = view[sent:]
            else:
                await wait_writable(self._fileno())
                note_yield()

    def try_send(self, data: bytes) -> int:
        """Write what the kernel takes of ``data`` now, without waiting: the count written
        (0 if it would block, or on any error, which the writer's next write then meets)."""
        try:
            return os.write(self._fileno(), data)
        except OSError:
            return 0

    def try_receive(self, max_bytes: int) -> bytes | None:
        """Up to ``max_bytes`` bytes if there are any now, ``b""`` at EOF, None if a read
        would block.

        Raises:
            trio.BrokenResourceError: the connection was reset.
            trio.ClosedResourceError: the socket was closed.
        """
        try:
            return os.read(self._fileno(), max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise _translate(exc) from exc

    async def receive_some(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes, waiting until there is at least one; ``b""`` at EOF.

        Raises:
            trio.BrokenResourceError: the connection was reset.
            trio.ClosedResourceError: the socket was closed.
        """
        if self._drained and self._fileno() >= 0:  # (a wait is a checkpoint; the read checks)
            await wait_readable(self._fileno())
            note_yield()
        else:
            await paced_checkpoint()
        while True:
            try:
                data = os.read(self._fileno(), max_bytes)
            except BlockingIOError:
                pass  # waited for below: an idle connection keeps no exception alive
            except OSError as exc:
                raise _translate(exc) from exc
            else:
                self._drained = len(data) < max_bytes
                return data
            await wait_readable(self._fileno())
            note_yield()


def _translate(exc: OSError) -> Exception:
    """What trio's SocketStream raises for the same error (closed, or broken for any other)."""
    if exc.errno in _CLOSED:
        return trio.ClosedResourceError("the socket was closed")
    return trio.BrokenResourceError(f"the connection is gone: {exc.strerror}")


def socket_io(stream: object) -> SocketIO | None:
    """A :class:`SocketIO` for a plain ``trio.SocketStream`` (None for any other stream, and
    for every stream when :data:`DIRECT_IO` is False)."""
    if DIRECT_IO and isinstance(stream, trio.SocketStream):
        return SocketIO(stream.socket)
    return None
