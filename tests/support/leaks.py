"""Counting what a test leaves behind in its own process: descriptors, trio tasks, connections.

The fault and load tests run the server in the test's own trio run, so a descriptor or task
one of its connections leaked shows up here, against a baseline taken once the server idles.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import trio
import trio.testing

from rawstream import Server


def open_fds() -> int:
    """Descriptors this process holds now (sockets, epoll, pipes, files)."""
    return len(os.listdir("/proc/self/fd"))


def count_tasks() -> int:
    """Every task in this trio run, found by walking the task tree from the root."""
    count = 0
    root = trio.lowlevel.current_root_task()
    assert root is not None, "not in a trio run"
    pending = [root]
    while pending:
        task = pending.pop()
        count += 1
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


@dataclass(frozen=True)
class Baseline:
    """Descriptors and tasks of a started, idle server: what must be left once a test's
    clients are all gone."""

    fds: int
    tasks: int

    @classmethod
    async def take(cls) -> Baseline:
        """Wait until every task blocks (the server's own tasks started and idle), then count.

        Earlier tests' garbage is collected first: a socket of theirs closed by a collection
        during this test would otherwise look like a descriptor freed here.  (Not after: a
        collection then could close a socket this test's server leaked, and hide it.)
        """
        gc.collect()
        with trio.fail_after(5):
            await trio.testing.wait_all_tasks_blocked()
        return cls(open_fds(), count_tasks())

    def leaked(self) -> tuple[int, int]:
        """Descriptors and tasks beyond the baseline: ``(0, 0)`` when nothing leaked."""
        return open_fds() - self.fds, count_tasks() - self.tasks


async def wait_until_closed(server: Server, *, limit: float = 10.0) -> None:
    """Wait (polling, bounded) until the server holds no connection, served or refused."""
    with trio.fail_after(limit):
        while server.connections or server._rejecting:  # noqa: ASYNC110 (server-side state)
            await trio.sleep(0.01)
