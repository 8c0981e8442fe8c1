"""A connection's background tasks, owned by the connection, without a nursery of its own.

Beside its request cycle a connection runs at most two tasks, the outbox's writer and the
receiver's read-ahead, and most connections run neither: a request read from the parked
socket and answered by one write-through starts no task at all.  A nursery per connection
would still cost its cancel scope and a schedule point on exit, about 29 microseconds
(benchmarks/README.md, "One request per connection").

:class:`ConnectionTasks` gives the tasks a connection does start what its nursery gave them:

* each runs in the server's connections nursery, inside a cancel scope of its own, so
  shutdown and the drain deadline reach it as before;
* :attr:`~ConnectionTasks.cancel_scope` is the connection's scope, around all it does (the
  request cycle, a late 408, the final flush, the lingering close); a failed write cancels
  it, ending the connection (its receiver is cancelled when the connection closes);
* an ``Exception`` a task lets out cancels that scope (ending the connection and the other task)
  and comes out of the connection, never into the server's nursery; beside an exception
  already on its way out of the connection, both go on, in an exception group (a
  ``KeyboardInterrupt`` or ``SystemExit`` in a task goes up the server's nursery, stopping
  the server, as it would have gone up a connection's nursery);
* :meth:`~ConnectionTasks.aclose`, in the connection's ``finally``, cancels the tasks still
  running and waits for them to end, so none outlives the connection's socket.

A task is started with the cancel scope it runs in, which it enters itself: the receiver
keeps its scope to stop its own task (to park or hand the socket off), so one scope serves
both; the writer gets a new scope each time it starts (in a stream, once per burst).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

__all__ = ["ConnectionTasks", "TaskStarter"]

#: A connection's task: it runs inside the cancel scope it is given (``with scope:``).
ScopedTask = Callable[[trio.CancelScope], Awaitable[object]]


class TaskStarter(Protocol):
    """Where the outbox and the receiver start their tasks: a :class:`ConnectionTasks`, or
    in tests a plain ``trio.Nursery``.  ``cancel_scope`` ends the whole connection."""

    @property
    def cancel_scope(self) -> trio.CancelScope: ...

    def start_soon(self, async_fn: ScopedTask, scope: trio.CancelScope, *, name: object) -> None:
        """Run ``async_fn(scope)``; the task enters ``scope``, through which it is stopped."""


class ConnectionTasks:
    """The tasks one connection starts, run in the server's connections nursery and ended
    with the connection (see the module doc)."""

    __slots__ = ("_all_ended", "_closed", "_errors", "_nursery", "_scopes", "cancel_scope")

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        #: The connection's own scope, which it enters around everything it does.
        self.cancel_scope = trio.CancelScope()
        self._scopes: set[trio.CancelScope] = set()
        self._errors: list[Exception] = []
        self._all_ended: trio.Event | None = None
        self._closed = False

    @property
    def running(self) -> int:
        """How many tasks have been started and not yet ended."""
        return len(self._scopes)

    def start_soon(self, async_fn: ScopedTask, scope: trio.CancelScope, *, name: object) -> None:
        """Start ``async_fn(scope)`` for this connection; RuntimeError once it is closing
        (as a closed nursery refuses)."""
        if self._closed:
            raise RuntimeError("the connection's tasks are closed")
        self._nursery.start_soon(self._run, async_fn, scope, name=name)
        self._scopes.add(scope)  # (after the start: a refused one is not waited for)

    # A Ctrl-C here would leave the task's scope on the books, and aclose() waiting forever.
    # (The protection covers the task it wraps too: a Ctrl-C then reaches the main task.)
    @trio.lowlevel.enable_ki_protection
    async def _run(self, async_fn: ScopedTask, scope: trio.CancelScope) -> None:
        try:
            await async_fn(scope)
        except Exception as exc:  # (a Cancelled from the server's nursery goes on up)
            self._errors.append(exc)
            self.cancel_scope.cancel()
            for other in self._scopes:
                other.cancel()
        finally:
            self._scopes.discard(scope)
            if not self._scopes and self._all_ended is not None:
                self._all_ended.set()

    @trio.lowlevel.enable_ki_protection  # (as a nursery's exit: none is skipped half done)
    async def aclose(self) -> None:
        """Start no more tasks, cancel those running and wait until they end (shielded: the
        socket they use closes after this).  Raises nothing: see :meth:`raise_errors`."""
        self._closed = True
        if self._scopes:
            for scope in self._scopes:
                scope.cancel()
            self._all_ended = trio.Event()
            with trio.CancelScope(shield=True):
                await self._all_ended.wait()

    def raise_errors(self, in_flight: BaseException | None = None) -> None:
        """After :meth:`aclose`: raise what the tasks let out (one exception, or a group of
        them), beside ``in_flight`` (the connection's own, on its way out) if there is one;
        return if neither."""
        errors: list[BaseException] = list(self._errors)
        if in_flight is not None:
            if not errors:
                raise in_flight
            errors.insert(0, in_flight)
        if len(errors) == 1:
            raise errors[0]
        if errors:  # (from None: the exception in flight is a member, not the cause)
            raise BaseExceptionGroup("a connection and its tasks failed", errors) from None
