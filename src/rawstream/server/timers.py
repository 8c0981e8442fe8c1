"""Fixed-length timeouts for every connection of a server, fired by one task.

A connection waiting for its next request head must give up after ``keepalive_timeout`` (or
``header_timeout`` once the head has begun).  A Trio cancel scope with a deadline per wait
does that, but entering and leaving one costs more than parsing the head it waits for, and a
keep-alive connection waits once per request.  Most such waits end long before their
deadline, so :class:`Timers` makes starting and cancelling one cheap instead: a timer is a
small object appended to a queue, cancelling it clears a field, and one task sleeps until the
earliest deadline and calls back whatever expired.

Timers of one length expire in the order they started, so each length has a plain FIFO
queue: the earliest deadline is always at its front, and no heap is needed.  Cancelled timers
are dropped when they reach the front, or when they outnumber the live ones (so a queue holds
at most about twice as many timers as are running, however many requests pass).
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable

import trio

__all__ = ["Timer", "Timers"]

log = logging.getLogger("rawstream.server")

#: A queue is compacted when it holds more than twice its live timers plus this many.
COMPACT_SLACK = 64


class Timer:
    """One running timeout; :meth:`cancel` it when the wait it bounds ends in time."""

    __slots__ = ("_on_expiry", "_queue", "deadline")

    def __init__(self, deadline: float, on_expiry: Callable[[], None], queue: _Queue) -> None:
        self.deadline = deadline
        self._on_expiry: Callable[[], None] | None = on_expiry
        self._queue = queue

    @property
    def running(self) -> bool:
        """Neither expired nor cancelled yet."""
        return self._on_expiry is not None

    def cancel(self) -> None:
        """The callback will not run (nothing happens if it already has)."""
        if self._on_expiry is not None:
            self._on_expiry = None
            self._queue.live -= 1

    def _expire(self) -> None:
        on_expiry = self._on_expiry
        self.cancel()
        if on_expiry is not None:
            on_expiry()


class _Queue:
    """The timers of one length, in the order they started (so by deadline)."""

    __slots__ = ("live", "timers")

    def __init__(self) -> None:
        self.timers: collections.deque[Timer] = collections.deque()
        self.live = 0

    def compact(self) -> None:
        self.timers = collections.deque(t for t in self.timers if t.running)


class Timers:
    """The server's timeouts (see the module doc); :meth:`run` must run for any to fire.
    One Trio run's (it keeps that run's clock)."""

    def __init__(self) -> None:
        self._queues: dict[float, _Queue] = {}
        self._wakeup = trio.lowlevel.ParkingLot()
        self._sleeping_until = math.inf  # (the deadline :meth:`run` waits for)
        # The run's clock, asked directly (trio.current_time() goes through three calls).
        self._clock: trio.abc.Clock | None = None

    def start(self, seconds: float, on_expiry: Callable[[], None]) -> Timer:
        """Call ``on_expiry()`` from the timers' task ``seconds`` from now, unless the timer
        returned is cancelled first."""
        queue = self._queues.get(seconds)
        if queue is None:
            queue = self._queues[seconds] = _Queue()
        clock = self._clock
        if clock is None:
            clock = self._clock = trio.lowlevel.current_clock()
        timer = Timer(clock.current_time() + seconds, on_expiry, queue)
        if len(queue.timers) > 2 * queue.live + COMPACT_SLACK:
            queue.compact()
        queue.timers.append(timer)
        queue.live += 1
        if timer.deadline < self._sleeping_until:
            self._sleeping_until = timer.deadline  # (so one wake-up is enough)
            self._wakeup.unpark_all()
        return timer

    @property
    def running(self) -> int:
        """How many timers are running (neither expired nor cancelled)."""
        return sum(queue.live for queue in self._queues.values())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire timers as they expire, until cancelled."""
        task_status.started()
        while True:
            deadline = self._fire_expired(trio.current_time())
            self._sleeping_until = deadline
            with trio.move_on_at(deadline):
                await self._wakeup.park()

    def _fire_expired(self, now: float) -> float:
        """Call back every timer due by ``now``; the earliest deadline still to come."""
        earliest = math.inf
        for queue in self._queues.values():
            timers = queue.timers
            while timers and (not timers[0].running or timers[0].deadline <= now):
                timer = timers.popleft()
                try:
                    timer._expire()
                except Exception:  # one connection's failure must not stop the others' timers
                    log.exception("a timeout's callback failed")
            if timers:
                earliest = min(earliest, timers[0].deadline)
        return earliest
