"""Pacing: a cancellation point that yields to the scheduler at most once a millisecond.

Every ``trio.lowlevel.checkpoint()`` is a scheduler round trip of several microseconds; at
tens of thousands of events per second per core those round trips, not the protocol code,
decide the speed.  :func:`paced_checkpoint` is what rawstream's hot loops (the server's sends
and reads, the hub's publish and replay) await instead: a cancellation point every time, but a
real yield only when this thread has gone ``PACE_INTERVAL`` seconds without one.  A producer
that never blocks (a generator yielding tokens, a tight publish loop) so fills an outbox with
many events before its writer runs, and the writer sends them in one write; other tasks still
get the CPU within a millisecond.

It sits below both the server and the hub (it is Trio, but does no I/O), so both may import it.
"""

from __future__ import annotations

import time

from trio.lowlevel import RunVar, checkpoint, checkpoint_if_cancelled

__all__ = ["PACE_INTERVAL", "note_yield", "paced_checkpoint"]

#: The longest a task runs through :func:`paced_checkpoint` calls without yielding.
PACE_INTERVAL = 0.001


class _LastYield:
    """When a paced task of this Trio run last yielded (a run is one thread's scheduler).

    A mutable holder kept in a RunVar: setting a RunVar makes a token object every time, and
    this is written on every real yield of every hot loop."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = 0.0


_last_yield: RunVar[_LastYield] = RunVar("rawstream_last_yield")


def _holder() -> _LastYield:
    try:
        return _last_yield.get()
    except LookupError:
        holder = _LastYield()
        _last_yield.set(holder)
        return holder


async def paced_checkpoint() -> None:
    """A checkpoint that yields to the scheduler only once per ``PACE_INTERVAL`` (see the
    module doc); it always raises ``Cancelled`` when cancelled."""
    last = _holder()
    if time.perf_counter() - last.at >= PACE_INTERVAL:
        await checkpoint()
        last.at = time.perf_counter()
    else:
        await checkpoint_if_cancelled()


def note_yield() -> None:
    """The caller just yielded (parked): the pacing interval starts again."""
    _holder().at = time.perf_counter()
