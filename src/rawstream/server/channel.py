"""The interface between an exchange and the protocol driver that carries it.

An :class:`~rawstream.server.exchange.Exchange` is the same in every protocol; what differs is
how its response is framed, where its request body comes from, how its client's departure is
seen and what carries a WebSocket after the handshake.  :class:`Channel` is that difference,
and all of it: the HTTP/1.1 driver (:class:`~rawstream.server.h1.H1Connection`) is the channel
of its one exchange at a time; a driver carrying many exchanges at once (HTTP/2) gives each
its own channel, with an outbox bounded by that stream's flow-control window.

Framing is sans-IO, as in the core: each ``frame_*`` call returns the bytes to queue, and the
exchange queues them with no await in between, so bytes keep the order the core made them in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..core.httpevents import Headers, HTTPEvent, NeedData
from .keepalive import KeepaliveSweeper
from .outbox import Outbox
from .timers import Timers

__all__ = ["Channel", "HeaderList", "ServerContext", "Tunnel"]

#: Response headers as the core takes them.
HeaderList = Headers | list[tuple[bytes, bytes]]


class ServerContext(Protocol):
    """What exchanges and their drivers use of the server that runs them
    (:class:`~rawstream.server.Server` is one)."""

    slow_consumers_disconnected: int

    @property
    def draining(self) -> bool:
        """Graceful shutdown has begun."""
        ...

    @property
    def keepalive(self) -> KeepaliveSweeper:
        """The server's one keepalive task for SSE streams."""
        ...

    @property
    def timers(self) -> Timers:
        """The server's one task for short, fixed-length timeouts."""
        ...


class Channel(Protocol):
    """What a protocol driver does for one exchange it carries."""

    @property
    def outbox(self) -> Outbox:
        """Where the exchange's bytes go: bounded, drained by one writer."""
        ...

    # -- the response, framed (sans-IO: each call returns the bytes to queue) --------------

    @property
    def response_started(self) -> bool:
        """The response head has been framed."""
        ...

    @property
    def is_head_request(self) -> bool:
        """The request is HEAD: the head answers it, with no body."""
        ...

    @property
    def chunk_is_shared_framing(self) -> bool:
        """A broadcast's shared chunk (:func:`~rawstream.core.http.chunk_frame` of the
        event) is exactly this response's framing of it."""
        ...

    def frame_head(self, status: int, headers: HeaderList) -> bytes: ...

    def frame_response(self, status: int, headers: HeaderList, body: bytes) -> bytes:
        """A whole response with its body (``headers`` without ``Content-Length``: the
        channel frames the body's length as its protocol does)."""
        ...

    def frame_body(self, data: bytes) -> bytes: ...

    def frame_end(self, tail: bytes) -> bytes:
        """``tail`` and the end of the body, or nothing: raises ``LocalProtocolError`` when
        the body cannot end cleanly (e.g. short of its declared length)."""
        ...

    def frame_error(self, status: int, message: str, headers: Headers, close: bool) -> bytes: ...

    def frame_continue(self) -> bytes:
        """``100 Continue`` if the client waits for it, else nothing."""
        ...

    def abort(self) -> None:
        """The response cannot end cleanly: nothing more is framed, and the client can see
        the body is incomplete."""
        ...

    # -- the request body --------------------------------------------------------------------

    def next_body_event(self) -> HTTPEvent | NeedData:
        """The next piece of the request body (raises ``RemoteProtocolError``)."""
        ...

    async def receive_body_data(self) -> None:
        """Wait for more of the request body and give it to the core (EOF included)."""
        ...

    @property
    def body_unread(self) -> bool:
        """Part of the request body is still to be read before the next request."""
        ...

    # -- the client ------------------------------------------------------------------------

    def watch_client(self, on_gone: Callable[[], None] | None, *, stream: bool) -> None:
        """Call ``on_gone()`` once when the client leaves (None: stop watching).  A
        ``stream`` may idle for hours: the driver may then give up the tasks that wait on
        the client, and counts a client that fills its read buffer as gone."""
        ...

    def client_left(self) -> None:
        """End the exchange in progress at once, the client having left during a plain
        handler: every wait of the handler is cancelled (its cleanup runs), nothing more is
        sent, and the connection ends with it."""
        ...

    # -- after a WebSocket handshake ----------------------------------------------------------

    def open_tunnel(self) -> Tunnel:
        """The request's byte stream now carries the WebSocket (see :class:`Tunnel`)."""
        ...


@dataclass(frozen=True, slots=True)
class Tunnel:
    """An upgraded request's byte stream, as the WebSocket's reader takes it.

    ``wait`` and ``wake``, when the driver offers them, let a reader wait for bytes in a way
    another task can end without a cancel scope (entering one costs about as much as a
    small message's whole round trip); without them, a reader that must be interruptible
    reads under a scope of its own.
    """

    #: The bytes that arrived after the handshake.
    initial: bytes
    #: The next bytes, ``b""`` once the client closed (called directly: no wrapper coroutine
    #: per read).
    receive: Callable[[], Awaitable[bytes]]
    #: Until :attr:`receive` would not wait (True: bytes, or the client closed), or until
    #: :attr:`wake` is called (False).
    wait: Callable[[], Awaitable[bool]] | None = None
    #: Ends a :attr:`wait` in progress (a close from another task).
    wake: Callable[[], None] | None = None
