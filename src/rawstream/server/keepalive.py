"""Keepalive comments for silent SSE streams: one task for the whole server.

A stream silent for ``sse_keepalive`` seconds gets a comment line, so proxies and clients see
traffic and a dead connection is found by the write that fails.  One sweeper serves every
stream of a server: a task per stream would cost every idle connection a task, its coroutines
and a timer, a third of what an idle stream holds.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

__all__ = ["KeepaliveSweeper", "Keepable"]

log = logging.getLogger("rawstream.server")


class Keepable(Protocol):
    """A stream the sweeper can keep alive (:class:`~rawstream.server.sse.SSEStream`)."""

    def _keepalive_due(self, now: float, interval: float) -> bool:
        """Silent for ``interval`` seconds (open, nothing queued, nothing put since)."""
        ...

    def _send_keepalive(self) -> None:
        """Queue a keepalive comment without waiting (``trio.WouldBlock`` when full,
        ``trio.BrokenResourceError`` once ended)."""
        ...


class KeepaliveSweeper:
    """Comments for silent streams (see the module doc).

    Every ``interval / 8`` seconds it looks at each registered stream and sends a comment
    to those silent for ``interval`` seconds or more (so a comment goes out after between
    ``interval`` and ``interval * 9/8`` seconds of silence).
    """

    def __init__(self, interval: float | None) -> None:
        self.interval = interval
        self._streams: dict[Keepable, None] = {}  # in order of registration

    def add(self, stream: Keepable) -> None:
        if self.interval is not None:
            self._streams[stream] = None

    def discard(self, stream: Keepable) -> None:
        self._streams.pop(stream, None)

    async def run(self) -> None:
        """Sweep until cancelled (the server runs this while it accepts connections)."""
        if self.interval is None:
            return
        while True:
            await trio.sleep(self.interval / 8)
            now = trio.current_time()
            for count, stream in enumerate(list(self._streams), 1):
                if count % 1000 == 0:
                    await trio.lowlevel.checkpoint()  # a big sweep is no stall for the others
                if not stream._keepalive_due(now, self.interval):
                    continue
                try:
                    stream._send_keepalive()
                except trio.WouldBlock:
                    pass
                except trio.BrokenResourceError:
                    self.discard(stream)
                except Exception:  # one stream's failure must not stop every keepalive
                    log.exception("keepalive failed on a stream; not sweeping it again")
                    self.discard(stream)
