"""What every connection driver is to the server: its phase, its statistics, its lifecycle.

A driver (HTTP/1.1: :class:`~rawstream.server.h1.H1Connection`) owns one accepted socket and
the exchanges it carries.  The server needs little of it: run it, ask it to shut down
gracefully, and read its counters; :class:`Connection` says exactly that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from .exchange import Exchange, ExchangeState

__all__ = ["Connection", "ConnectionStatistics", "Phase", "phase_of"]


class Phase(enum.Enum):
    """What a connection is doing, for statistics (its exchange's state, or idle)."""

    IDLE = "idle"  # waiting for a request head
    HTTP = "http"  # running a plain handler or writing its response
    STREAM = "stream"  # an SSE stream or a streamed body
    WEBSOCKET = "websocket"


_PHASES = {
    ExchangeState.HANDLING: Phase.HTTP,
    ExchangeState.STREAMING: Phase.STREAM,
    ExchangeState.WEBSOCKET: Phase.WEBSOCKET,
    ExchangeState.ENDED: Phase.IDLE,
}


def phase_of(exchange: Exchange | None) -> tuple[Phase, str]:
    """The phase of a connection whose exchange in progress is ``exchange``, and its kind
    (the phase, with streams told apart: "sse", "stream" or "websocket")."""
    if exchange is None:
        return Phase.IDLE, Phase.IDLE.value
    phase = _PHASES[exchange.state]
    return phase, exchange.kind if phase is Phase.STREAM else phase.value


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    """A snapshot of one connection: what it is doing and what it has moved."""

    phase: Phase
    bytes_buffered: int  # queued for the client, including the write in flight
    bytes_sent: int
    bytes_received: int
    writes: int  # send_all calls: bytes_sent / writes is the coalescing at work
    events_dropped: int  # by the DROP_OLDEST policy
    time_blocked: float  # seconds senders (and a WebSocket's frame reader) waited for room
    #: The phase, with streams told apart: "idle", "http", "sse", "stream" (a streamed
    #: body), "websocket" (a handshake being answered counts as one already).
    kind: str = "idle"
    events_sent: int = 0  # SSE events and WebSocket messages queued (see Outbox.events_sent)


class Connection(Protocol):
    """One accepted connection, as the server runs it."""

    id: int

    async def run(self) -> None:
        """Serve it until the client leaves, an error ends it, or shutdown; then close it."""
        ...

    def begin_shutdown(self) -> None:
        """The server is draining: end as gracefully as the connection's phase allows."""
        ...

    def statistics(self) -> ConnectionStatistics: ...
