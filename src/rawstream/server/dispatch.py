"""Routing one exchange to its handler, and answering with what the handler returns.

Protocol-neutral: a driver makes an :class:`~rawstream.server.exchange.Exchange` for each
request head and awaits :func:`serve_exchange`.  It answers CORS preflights for routes that
have CORS, 404 and 405 itself, runs a plain handler (cancelled if its client leaves meanwhile)
and writes its :class:`~rawstream.response.Response`, or hands the exchange to the SSE or
WebSocket session.  A body the handler did not read is read and discarded afterwards, so the
connection can carry the next request.
"""

from __future__ import annotations

import logging
from contextlib import aclosing, nullcontext
from functools import partial
from urllib.parse import unquote

import trio

from ..app import App, Route
from ..policy import SlowConsumer
from ..request import HTTPError, Request
from ..response import Response
from .exchange import Exchange
from .origin import answer_preflight, cors_headers, route_cors
from .sse import run_sse
from .websocket import run_websocket

__all__ = ["send_response", "serve_exchange"]

log = logging.getLogger("rawstream.connection")


async def serve_exchange(exchange: Exchange, app: App) -> None:
    """Route the exchange's request and answer it (then read what it left of the body).

    (One coroutine for all of it: an idle stream holds every frame between its connection's
    task and its handler's wait, for as long as it idles.)
    """
    head = exchange.head
    path = unquote(head.path)
    preflight = answer_preflight(app, exchange.config, head, path)
    if preflight is not None:  # a CORS preflight for a route that has CORS
        if preflight.reason:
            log.info("CORS preflight refused: %s", preflight.reason)
        answer = (preflight.status, preflight.reason, preflight.headers)
        await exchange.send_error(*answer, close=False)
    elif (match := app.match(head.method, path)).route is None:
        extra = ((b"allow", ", ".join(match.allowed).encode()),) if match.allowed else ()
        await exchange.send_error(match.status, "", extra, close=False)
    else:
        route = match.route
        request = Request(
            head,
            exchange.client,
            exchange.read_body,
            match.path_params,
            server=exchange.server,
            path=path,
        )
        # On the route's every answer: its response, an SSE head, an error it raises.
        cors = route_cors(route, exchange.config)
        if cors is not None:
            exchange.cors_headers = cors_headers(cors, head.header(b"origin"))
        if route.kind == "websocket":
            if head.wants_upgrade_to != "websocket":
                await exchange.send_error(426, "", ((b"upgrade", b"websocket"),), close=False)
            else:
                exchange.reusable = False  # after a WebSocket, the connection ends
                await run_websocket(exchange, request, route)
        elif route.kind == "sse":
            await run_sse(exchange, request, route)
        else:
            await _run_http(exchange, route, request)
    await exchange.discard_unread_body()


async def _run_http(exchange: Exchange, route: Route, request: Request) -> None:
    """Run a plain handler and send its response; end the exchange if the client closes the
    connection meanwhile.

    A handler may wait a long time before it answers (a relay waiting for its upstream's
    first byte, a long poll): when the client has gone, the wait is cancelled, and what the
    handler holds is released by its ``finally`` and ``async with`` blocks.  The driver reads
    ahead during the handler, so EOF is seen as soon as it arrives.  (A client that
    half-closes after its request and still expects an answer is not served: like nginx's and
    uvicorn's, this server reads EOF as the client leaving.)  The channel's own scope is
    cancelled (:meth:`Channel.client_left`), not one made per request: a plain request is
    the most common exchange, and a scope costs about as much as parsing its head.
    """
    channel = exchange.channel
    try:
        channel.watch_client(channel.client_left, stream=False)
        try:
            response = await route.handler(request)
        finally:
            channel.watch_client(None, stream=False)
        if not isinstance(response, Response):
            raise TypeError(f"the handler returned {response!r}, not a Response")
        await send_response(exchange, response)
    except HTTPError as exc:
        await exchange.send_error(exc.status, exc.message, close=exc.status in (400, 408, 413))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        exchange.reusable = False  # the client is gone
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        await exchange.send_error(500, "internal server error")


async def send_response(exchange: Exchange, response: Response) -> None:
    """Send ``response``; a streamed body runs until done, the client leaves, or shutdown."""
    channel = exchange.channel
    headers = response.encoded_headers()
    if exchange.cors_headers and not any(k == b"access-control-allow-origin" for k, _ in headers):
        headers.extend(exchange.cors_headers)  # (unless the handler chose its own)
    body = response.body
    status = response.status
    if isinstance(body, bytes):  # (the channel adds its Content-Length)
        await exchange.emit(partial(channel.frame_response, status, headers, body))
        return

    if channel.is_head_request:  # the head answers HEAD: never start the stream
        if hasattr(body, "aclose"):
            await body.aclose()
        await exchange.emit(partial(channel.frame_head, status, headers))
        await exchange.emit(partial(channel.frame_end, b""))
        return

    async def stream_body() -> None:
        # An async generator is closed (its finally runs) however the stream ends, even
        # when the client leaves while the head is still being sent.
        closing = aclosing(body) if hasattr(body, "aclose") else nullcontext(body)  # type: ignore[type-var]
        async with closing as chunks:
            await exchange.emit(partial(channel.frame_head, status, headers))
            async for chunk in chunks:
                # A plain download has no gap to report: it waits, up to send_timeout.
                await exchange.send_item(
                    partial(channel.frame_body, chunk), SlowConsumer.BLOCK, event=False
                )

    end = await exchange.run_stream(stream_body, watch_disconnect=True)
    await exchange.finish_stream(end)
