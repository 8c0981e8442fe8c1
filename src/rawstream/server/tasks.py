"""A connection's background tasks, owned by the connection, without a nursery of its own.

Beside its request cycle a connection runs at most two tasks, the outbox's writer and the
receiver's read-ahead, and most connections run neither: a request read from the parked
socket and answered by one write-through starts no task at all.  A nursery per connection
would still cost its two cancel scopes and a schedule point on exit: a tenth to a fifth of a
one-request connection's time (benchmarks/README.md, "where the time goes").

:class:`ConnectionTasks` gives the tasks a connection does start what its nursery gave them:

* each runs in the server's connections nursery, in a cancel scope of its own, so shutdown
  and the drain deadline reach it as before;
* :meth:`~ConnectionTasks.aclose`, in the connection's ``finally``, cancels those still
  running and waits for them to end, so none outlives the connection's socket;
* an exception a task lets out ends the connection (its owner scope is cancelled) and is
  raised from ``aclose()``, never into the server's nursery;
* ``cancel_scope`` is the connection's own scope: a failed write cancels it, as it cancelled
  the connection's nursery, and ``aclose()`` then stops the tasks beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

__all__ = ["ConnectionTasks", "TaskStarter"]


class TaskStarter(Protocol):
    """Where the outbox and the receiver start their tasks: a :class:`ConnectionTasks`, or
    in tests a plain ``trio.Nursery``.  ``cancel_scope`` ends the whole connection."""

    @property
    def cancel_scope(self) -> trio.CancelScope: ...

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: object = None
    ) -> None: ...


class ConnectionTasks:
    """The tasks one connection starts, run in the server's connections nursery and ended
    with the connection (see the module doc)."""

    __slots__ = ("_all_ended", "_closed", "_error", "_nursery", "_owner", "_scopes")

    def __init__(self, nursery: trio.Nursery, owner: trio.CancelScope) -> None:
        self._nursery = nursery
        self._owner = owner
        self._scopes: set[trio.CancelScope] = set()
        self._error: Exception | None = None
        self._all_ended: trio.Event | None = None
        self._closed = False

    @property
    def cancel_scope(self) -> trio.CancelScope:
        """The connection's scope: cancelling it ends the connection."""
        return self._owner

    @property
    def running(self) -> int:
        """How many tasks have been started and not yet ended."""
        return len(self._scopes)

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: object = None
    ) -> None:
        """Start ``async_fn(*args)`` for this connection; RuntimeError once it is closing
        (as a closed nursery refuses)."""
        if self._closed:
            raise RuntimeError("the connection's tasks are closed")
        scope = trio.CancelScope()
        self._scopes.add(scope)
        self._nursery.start_soon(self._run, scope, async_fn, args, name=name or async_fn)

    async def _run(
        self,
        scope: trio.CancelScope,
        async_fn: Callable[..., Awaitable[object]],
        args: tuple[Any, ...],
    ) -> None:
        try:
            with scope:
                await async_fn(*args)
        except Exception as exc:  # (a Cancelled from the server's nursery goes on up)
            if self._error is None:
                self._error = exc
            self._owner.cancel()
            for other in self._scopes:
                other.cancel()
        finally:
            self._scopes.discard(scope)
            if not self._scopes and self._all_ended is not None:
                self._all_ended.set()

    async def aclose(self) -> None:
        """Start no more tasks, cancel those running and wait until they end (shielded: the
        socket they use closes after this); then raise the first error one let out."""
        self._closed = True
        if self._scopes:
            for scope in self._scopes:
                scope.cancel()
            self._all_ended = trio.Event()
            with trio.CancelScope(shield=True):
                await self._all_ended.wait()
        if self._error is not None:
            raise self._error
