"""The request body, read through the exchange's channel, chunk by chunk.

A handler reads it with :meth:`~rawstream.request.Request.body`; whatever it leaves unread is
read and discarded before the connection carries the next request.  ``100 Continue`` goes out
when the handler first asks for the body, so a client waiting for it sends nothing a handler
never wanted.  Each pause of the client is bounded by ``header_timeout`` (408), the size by
``max_body_bytes`` (413, from the core).
"""

from __future__ import annotations

import trio

from ..core.errors import RemoteProtocolError
from ..core.http import BodyData, ClientClosed, EndOfRequest
from ..request import HTTPError
from .exchange import Exchange

__all__ = ["RequestBody", "discard_unread_body", "read_body"]


class RequestBody:
    """The request body of ``exchange`` as an async iterator of chunks."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._continued = False

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        channel = exchange.channel
        if not self._continued:
            self._continued = True
            await exchange.emit(channel.frame_continue)
        while True:
            try:
                event = channel.next_body_event()
            except RemoteProtocolError as exc:
                exchange.reusable = False
                raise HTTPError(exc.status_hint, str(exc)) from exc
            if isinstance(event, BodyData):
                return event.data
            if isinstance(event, EndOfRequest):
                raise StopAsyncIteration
            if isinstance(event, ClientClosed):
                exchange.reusable = False
                raise HTTPError(400, "connection closed before the request body was complete")
            with trio.move_on_after(exchange.config.header_timeout) as timer:
                await channel.receive_body_data()
            if timer.cancelled_caught:
                exchange.reusable = False
                raise HTTPError(408, "request body not received in time")


async def read_body(exchange: Exchange) -> bytes:
    """The whole request body (see :meth:`Request.body <rawstream.request.Request.body>`)."""
    chunks: list[bytes] = []
    async for chunk in RequestBody(exchange):
        chunks.append(chunk)
    return b"".join(chunks)


async def discard_unread_body(exchange: Exchange) -> None:
    """Read what the handler left of the body, so the connection can be reused; or give up
    reuse if it cannot be read.  (Not while the server drains: the connection ends anyway.)"""
    if not exchange.reusable or exchange.server.draining or not exchange.channel.body_unread:
        return
    try:
        await read_body(exchange)
    except HTTPError:
        exchange.reusable = False
