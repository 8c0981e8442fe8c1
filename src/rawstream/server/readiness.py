"""One task that waits for, and reads, every idle socket at once.

A Trio task waiting on a socket costs about 2.5 KiB (the task, its coroutines, its wait), and
an idle connection has little to wait for: an SSE subscriber only needs to learn that the
client left, which the kernel reports as the socket turning readable (EOF or a reset); a
kept-alive connection waits for its next request.  So a server keeps one
:class:`ReadinessWatcher`: parked sockets are registered in a private epoll instance, and one
task waits for *that* descriptor to turn readable (an epoll descriptor is itself pollable, so
Trio's own loop watches it like any socket).  Whenever a parked socket is readable, its
callback runs in the watcher's task; the receiver that parked it reads it there, without
waiting, so a request arriving on a kept-alive connection costs one read and a wake-up of the
task waiting for it, and no change to any registration.

Registrations are level-triggered and last until :meth:`ReadinessWatcher.unwatch`: a callback
must read what made the socket readable (or unwatch it), or it is called again at once.

Linux only (``select.epoll``); elsewhere :attr:`ReadinessWatcher.available` is False and
every connection keeps its reading task.
"""

from __future__ import annotations

import contextlib
import logging
import select
from collections.abc import Callable

import trio

from ..pacing import note_yield

__all__ = ["ReadinessWatcher"]

log = logging.getLogger("rawstream.readiness")

_EVENTS = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLRDHUP", 0)


class ReadinessWatcher:
    """Calls back whenever a registered socket is readable (see the module doc)."""

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None  # made and closed by run(), its one owner
        self._callbacks: dict[int, Callable[[], None]] = {}

    @property
    def available(self) -> bool:
        """Sockets can be parked here now (Linux, and :meth:`run` is running)."""
        return self._epoll is not None

    @property
    def watched(self) -> int:
        """How many sockets are parked here."""
        return len(self._callbacks)

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable()``, from the watcher's task, whenever ``fd`` is readable
        (soon, if it is now), until :meth:`unwatch`; once more if the watcher stops, which
        ends the registration (then :attr:`available` is False).  The caller must
        :meth:`unwatch` before it closes ``fd``."""
        assert self._epoll is not None, "check available first"
        try:
            self._epoll.register(fd, _EVENTS)
        except FileExistsError:  # a closed socket's stale entry, its number reused
            self._epoll.modify(fd, _EVENTS)
        self._callbacks[fd] = on_readable

    def unwatch(self, fd: int) -> None:
        """Forget ``fd`` (no callback will come)."""
        if self._callbacks.pop(fd, None) is not None and self._epoll is not None:
            with contextlib.suppress(OSError):  # (already gone with its socket)
                self._epoll.unregister(fd)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wait and call back until cancelled, then close; parked sockets are handed back
        (their connections read for themselves).  Without epoll, return at once."""
        if not hasattr(select, "epoll"):
            task_status.started()
            return
        epoll = self._epoll = select.epoll()
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                note_yield()  # (the tasks it wakes need not yield again before they run)
                for fd, _ in epoll.poll(0):
                    callback = self._callbacks.get(fd)
                    if callback is None:  # (a stale entry: its socket was closed unwatched)
                        with contextlib.suppress(OSError):
                            epoll.unregister(fd)
                    else:
                        self._call(fd, callback)
        finally:
            self._epoll = None  # nothing parks from now on ...
            epoll.close()
            callbacks, self._callbacks = self._callbacks, {}
            for fd, callback in callbacks.items():  # ... and what was parked reads for itself
                self._call(fd, callback)

    def _call(self, fd: int, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # one connection's failure must not stop the others' wake-ups
            log.exception("a parked connection failed to wake")
            self.unwatch(fd)  # (or it would be called again, and fail again, at once)
