"""WebSockets as handlers see them, and the session that runs a WebSocket route.

A handler gets a :class:`WebSocket` before the handshake is answered.  It may ``await
ws.accept()`` (choosing a subprotocol), ``await ws.reject(status)`` (an HTTP answer), or just
start receiving or sending, which accepts with the route's preferred subprotocol.

Once accepted, received bytes go to the sans-IO core, read by the handler itself while it
waits in ``receive()`` and by a frame reader task (a sibling of the handler in the
connection's stream nursery) while it does not (:mod:`rawstream.server.wsinput`).  Pings are
answered and closes echoed by the core with no handler code; whole messages go into a queue
bounded in bytes (``Config.ws_queue_bytes``).  When the queue is full reading stops, the
receive buffer fills, and TCP pushes back on the client: a client flooding the server cannot
grow its memory.

How a session ends:

* the client closes: its close is echoed, ``async for`` ends, ``receive`` raises
  :class:`WebSocketClosed`;
* the client vanishes (EOF or reset, no close frame): code 1006, and the handler is cancelled;
* the client breaks the protocol or sends a too-big message: the core sends 1002/1007/1009,
  and the handler is cancelled;
* the handler returns: close 1000 if nothing else was sent; it raises: close 1011;
* the server shuts down: close 1001, the handler sees the client's reply as the end of the
  stream, and whatever is left at the drain deadline is cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import trio
from trio.lowlevel import checkpoint

from ..app import Route
from ..core.errors import RemoteProtocolError
from ..core.websocket import (
    WebSocketConnection,
    WebSocketState,
)
from ..policy import SLOW_CONSUMER_CLOSE_CODE, SlowConsumer, SlowConsumerPolicy
from ..request import HTTPError, Request
from .exchange import Exchange, StreamEnd
from .origin import websocket_origin_refusal
from .prepared import Framed
from .wsinput import MessageInput

__all__ = ["WebSocket", "WebSocketClosed", "run_websocket"]

log = logging.getLogger("rawstream.websocket")


class WebSocketClosed(Exception):
    """The WebSocket is closed; ``code`` and ``reason`` say why (1006: no close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class WebSocket(SlowConsumerPolicy):
    """One WebSocket connection, from the handler's side.

    Attributes:
        request: the handshake request (path, query, headers, client).
        subprotocol: the subprotocol selected at accept, or None.
        close_code, close_reason: set once the WebSocket is closed.
    """

    def __init__(
        self,
        exchange: Exchange,
        request: Request,
        core: WebSocketConnection,
        route: Route,
        slow_consumer: SlowConsumer,
    ) -> None:
        self._exchange = exchange
        self._core = core
        self._route = route
        self._input = MessageInput(exchange, core, on_pong=self._on_pong, flush=self._flush_core)
        self.request = request
        self.subprotocol: str | None = None
        self.rejected = False
        self._close_deadline: float | None = None
        self._pong: trio.Event = trio.Event()
        self.slow_consumer = slow_consumer

    def _frames_depend_on_each_other(self) -> bool:
        return self._core.compresses_across_messages

    @property
    def accepted(self) -> bool:
        """The handshake was accepted (101 sent)."""
        return self._core.state is not WebSocketState.HANDSHAKE

    @property
    def close_code(self) -> int | None:
        """The close code, once closing or closed."""
        return self._core.close_code

    @property
    def close_reason(self) -> str:
        """The close reason, once closing or closed."""
        return self._core.close_reason

    async def accept(self, subprotocol: str | None = None) -> None:
        """Accept the handshake.

        Args:
            subprotocol: one of the client's offered subprotocols; by default the first of
                the route's ``subprotocols`` that the client offered, if any.
        """
        if self.accepted or self.rejected:
            await checkpoint()
            return
        if subprotocol is None:
            offered = self._core.offered_subprotocols
            subprotocol = next((p for p in self._route.subprotocols if p in offered), None)
        exchange = self._exchange
        config = exchange.config
        await exchange.outbox.wait_writable()
        if self.accepted or self.rejected:  # another task accepted while we waited
            return
        self._core.accept(subprotocol)
        self.subprotocol = subprotocol
        exchange.outbox.put_nowait(self._core.data_to_send())
        # The handoff: bytes after the handshake go to wsproto, and the frame reader reads
        # the tunnel itself from now on.
        tunnel = exchange.channel.open_tunnel()
        self._core.receive_data(tunnel.initial)
        exchange.accepted_websocket()
        exchange.set_shutdown_action(lambda: self._close_now(1001, "server shutting down"))
        exchange.start_task(partial(self._input.run_reader, tunnel))
        if config.ws_ping_interval is not None:
            exchange.start_task(
                partial(self._ping_loop, config.ws_ping_interval, config.ws_ping_timeout)
            )
        if exchange.server.draining:  # accepted while the server drains: say so at once
            self._close_now(1001, "server shutting down")

    async def reject(self, status: int = 403, message: str = "") -> None:
        """Refuse the handshake with an HTTP ``status`` (before accepting only)."""
        if self.accepted:
            raise RuntimeError("cannot reject a WebSocket that was accepted")
        self.rejected = True
        self._input.close_queue()
        await self._exchange.send_error(status, message)

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            WebSocketClosed: the WebSocket closed (normally or not).
        """
        if not (self.accepted or self.rejected):  # (the input's receive is the checkpoint)
            await self.accept()  # after a reject, the closed queue ends receive
        message = await self._input.receive()
        if message is None:
            raise self._closed_error()
        return message

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    async def send(self, message: str | bytes, *, policy: SlowConsumer | None = None) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        When the outbox is full, the ``slow_consumer`` policy applies (``BLOCK`` waits up to
        ``send_timeout``; ``DISCONNECT`` closes with 1013; ``DROP_OLDEST`` replaces queued
        messages with ``{"type":"gap","dropped":N}``); ``policy`` overrides it for this send.

        Raises:
            WebSocketClosed: the WebSocket is closing or closed.
        """
        if not (self.accepted or self.rejected):  # (send_item is the checkpoint)
            await self.accept()
        try:
            await self._exchange.send_item(
                partial(self._frame, message), policy or self.slow_consumer, self._gap
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self._closed_error() from None

    def send_nowait(self, message: str | bytes) -> None:
        """Queue a message without waiting (fan-out from another task); the WebSocket must
        be accepted.

        Raises:
            trio.WouldBlock: the outbox is full and the policy is ``BLOCK``.
            WebSocketClosed: the WebSocket is closed, or was just closed as too slow.
        """
        self._queue_nowait(partial(self._frame, message))

    def _send_broadcast_nowait(self, message: Framed) -> None:
        """:meth:`send_nowait` for a broadcast (:func:`~rawstream.broadcast`, the hub): the
        message's frame (``message.ws_frame``, framed once for every recipient) is written as
        is when this WebSocket negotiated no extension; the message is compressed here
        otherwise.  (Private: a :class:`Framed` message's frame always matches its message,
        which bytes handed in by a caller need not.)"""
        core = self._core
        if core.sends_plain_frames:
            # The fast path: an open stream with room takes the shared frame itself (unless
            # a pong the core made must go first: the general path flushes it).  Counted.
            frame = message.ws_frame
            if not core.has_data_to_send and self._exchange.outbox.put_shared(frame):
                return
            self._queue_nowait(partial(self._prepared, frame))
        else:
            self._queue_nowait(partial(self._frame, message.ws_message))

    def _queue_nowait(self, produce: Callable[[], bytes]) -> None:
        if not self.accepted:
            raise RuntimeError("sending without waiting needs an accepted WebSocket")
        try:
            self._exchange.send_item_nowait(produce, self.slow_consumer, self._gap)
        except trio.BrokenResourceError:
            raise self._closed_error() from None

    def _prepared(self, frame: bytes) -> bytes:
        if self._core.state is not WebSocketState.OPEN:
            raise self._closed_error()
        self._flush_core()
        return frame

    def _frame(self, message: str | bytes) -> bytes:
        if self._core.state is not WebSocketState.OPEN:
            raise self._closed_error()
        self._flush_core()  # pongs waiting in the core go first, and are never droppable
        self._core.send_message(message)
        return self._core.data_to_send()

    def _gap(self, dropped: int) -> bytes:
        return self._frame(f'{{"type":"gap","dropped":{dropped}}}')

    def _closed_error(self) -> WebSocketClosed:
        if self._exchange.end is StreamEnd.SLOW_CONSUMER:  # its 1013 goes out as we end
            return WebSocketClosed(SLOW_CONSUMER_CLOSE_CODE, "too slow")
        return WebSocketClosed(self._core.close_code or 1006, self._core.close_reason)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket and wait (up to ``close_timeout`` from our close frame) for the
        client's reply.  Messages still queued can be received; later ones are dropped."""
        if not self.accepted:
            await self.reject(403, reason)
            return
        self._close_now(code, reason)
        if self._close_deadline is None:  # closed without our close frame (peer or failure)
            await checkpoint()
            return
        with trio.move_on_at(self._close_deadline):
            await self._input.ended.wait()

    def _close_now(self, code: int, reason: str) -> None:
        """Send our close frame without waiting (also used on shutdown); start its deadline.

        The message queue stops taking new messages, so the frame reader never blocks on a
        handler that stopped reading and always sees the client's reply.
        """
        exchange = self._exchange
        if self._core.state is WebSocketState.OPEN and not exchange.outbox.broken:
            self._core.close(code, reason)
            exchange.outbox.put_nowait(self._core.data_to_send())
            self._close_deadline = trio.current_time() + exchange.config.close_timeout
            self._input.close_queue()

    def _on_pong(self) -> None:
        self._pong.set()

    async def _ping_loop(self, interval: float, pong_deadline: float) -> None:
        """Ping every ``interval`` seconds; no pong within ``pong_deadline`` of the ping being
        written: close 1011 and drop.

        This finds half-open connections (a peer gone without FIN or RST).  The clock starts
        when the ping has left the outbox, so a slow but live client is not mistaken for a
        dead one; a ping that cannot even be written within ``send_timeout`` means the client
        reads nothing at all.  While the frame reader cannot read (its queue or the outbox is
        full) a pong cannot be seen, so a timeout then proves nothing and is ignored.
        """
        exchange, core = self._exchange, self._core
        outbox = exchange.outbox
        while True:
            await trio.sleep(interval)
            if core.state is not WebSocketState.OPEN or outbox.broken:
                return
            self._pong = trio.Event()
            core.send_ping(b"rawstream")
            written = trio.Event()
            outbox.put_nowait(core.data_to_send(), written=written)
            with trio.move_on_after(exchange.config.send_timeout) as write_timer:
                await written.wait()
            reason = "ping not written in time" if write_timer.cancelled_caught else ""
            if not reason:
                with trio.move_on_after(pong_deadline):
                    await self._pong.wait()
                if not self._pong.is_set() and not self._input.full and not self._input.blocked:
                    reason = f"no pong within {pong_deadline:g} s"
            if reason:
                log.info("%s: closing 1011", reason)
                self._close_now(1011, "ping timeout")
                exchange.client_gone()
                return

    def _flush_core(self) -> None:
        data = self._core.data_to_send()
        outbox = self._exchange.outbox
        if data and not outbox.broken:
            outbox.put_nowait(data)


async def run_websocket(exchange: Exchange, request: Request, route: Route) -> None:
    """Validate the handshake and its ``Origin``, run the handler, and close the WebSocket
    properly."""
    config = exchange.config
    slow_consumer = route.slow_consumer or config.slow_consumer
    core = WebSocketConnection(
        max_message_bytes=config.ws_max_message_bytes,
        max_fragments=config.ws_max_fragments,
        permessage_deflate=config.permessage_deflate,
        context_takeover=slow_consumer is not SlowConsumer.DROP_OLDEST,
    )
    try:
        core.start(request.head)
    except RemoteProtocolError as exc:
        log.info("bad WebSocket handshake: %s", exc)
        await exchange.send_error(exc.status_hint, str(exc), exc.headers)
        return
    # Cross-site WebSocket hijacking guard: the handler never sees a refused page.
    refusal = websocket_origin_refusal(request.head, route, config, tls=exchange.tls)
    if refusal is not None:
        log.info("403 to a WebSocket handshake: %s", refusal)
        await exchange.send_error(403, refusal)
        return
    ws = WebSocket(exchange, request, core, route, slow_consumer)

    async def session() -> None:
        try:
            await route.handler(ws)
        except WebSocketClosed:
            pass
        except HTTPError as exc:
            if ws.accepted:
                ws._close_now(1011, exc.message)
            else:
                await ws.reject(exc.status, exc.message)
            return
        except Exception:
            log.exception("WebSocket handler failed")
            if ws.accepted:
                ws._close_now(1011, "internal error")
            elif not ws.rejected:
                await exchange.send_error(500, "internal server error")
            return
        if not ws.accepted and not ws.rejected:
            await ws.reject(403, "the handler did not accept the WebSocket")
        elif ws.accepted:
            await ws.close(1000)

    end = await exchange.run_stream(
        session, watch_disconnect=False, end_on_shutdown=True, with_tasks=True, kind="websocket"
    )
    exchange.set_shutdown_action(None)
    if end is StreamEnd.SLOW_CONSUMER:
        ws._close_now(SLOW_CONSUMER_CLOSE_CODE, "too slow: reconnect")
    if end is StreamEnd.SHUTDOWN:
        if ws.accepted:
            ws._close_now(1001, "server shutting down")
        elif not ws.rejected:
            await exchange.send_error(503, "server shutting down")
