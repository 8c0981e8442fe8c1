"""Server-Sent Events over HTTP: one stream (:func:`connect_sse`) or a reconnecting
:class:`EventSource` (WHATWG HTML, 9.2 "Server-sent events").

Processing model (9.2.3), as applied here:

* The request carries ``Accept: text/event-stream``, ``Cache-Control: no-cache`` and, when the
  last event id is not empty, ``Last-Event-ID``.
* A response with status 204 ends the stream for good: :func:`connect_sse` yields no event and
  :class:`EventSource` stops iterating.  Any other status outside 2xx, a ``Content-Type``
  other than ``text/event-stream`` (parameters ignored), or a ``Content-Encoding`` other
  than ``identity`` (none is asked for), *fails the connection*:
  :class:`SSEResponseError`, never retried.  (The spec accepts 200 only; other 2xx statuses
  are accepted here.  Redirects are not followed: a 3xx is an ``SSEResponseError``.)
* A network error, a malformed response or the end of the stream *reestablishes the
  connection* after the reconnection time, with backoff (:mod:`rawstream.client.backoff`).

The body goes through :class:`~rawstream.core.sse_parser.EventStreamParser`; one parser lives
as long as an :class:`EventSource`, so the last event id and the server's ``retry:`` outlive
each connection.  Nothing here runs in the background: events are read when the caller asks
for the next one, so a caller that stops reading stops the socket (TCP flow control pushes
back to the server), and closing is just closing the socket.
"""

from __future__ import annotations

import math
import random as _random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from types import TracebackType

import trio

from ..core.errors import EventTooLargeError
from ..core.sse_parser import DEFAULT_MAX_EVENT_BYTES, EventStreamParser, ServerSentEvent
from .backoff import Backoff, reconnection_time
from .errors import SSEConnectionError, SSEEventTooLargeError, SSEResponseError
from .http import Headers, HTTPResponse, open_response

__all__ = ["EventSource", "SSEResponse", "connect_sse"]


class SSEResponse:
    """An open event stream: the response head, and its events as they arrive.

    ``async for event in response.events()`` (or ``async for event in response``) yields
    :class:`ServerSentEvent` until the server ends the stream.

    Attributes:
        status: the HTTP status (200, or 204 for a stream that has nothing to say).
        headers: the response headers, names lower-cased, in order.
    """

    def __init__(
        self, http: HTTPResponse, parser: EventStreamParser, *, read_timeout: float | None
    ) -> None:
        self._http = http
        self._parser = parser
        self._read_timeout = math.inf if read_timeout is None else read_timeout
        self._ready: list[ServerSentEvent] = []
        self._next = 0
        self._ended = False
        self.status = http.status
        self.headers = http.headers

    @property
    def last_event_id(self) -> str:
        """The stream's last event id so far (what a reconnection sends as ``Last-Event-ID``)."""
        return self._parser.last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time the stream asked for (``retry:``, milliseconds), if any."""
        return self._parser.retry

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        return self._http.header(name)

    def events(self) -> SSEResponse:
        """The events of the stream, in order (the response itself is the iterator)."""
        return self

    def __aiter__(self) -> SSEResponse:
        return self

    async def __anext__(self) -> ServerSentEvent:
        """The next event, waiting for it.

        Raises:
            StopAsyncIteration: the server ended the stream (a half-sent event is dropped),
                or :meth:`aclose` was called (from another task, say).
            SSEConnectionError: the connection broke, the body was cut short, or nothing
                arrived for ``read_timeout`` seconds.
            SSEEventTooLargeError: a line or an event's data exceeded ``max_event_bytes``.

        Always a checkpoint, even when the event was already buffered; a cancellation takes
        nothing from the stream (the event is still there for the next call).
        """
        if self._next < len(self._ready):
            await trio.lowlevel.checkpoint()
        while self._next == len(self._ready):
            if self._ended:
                raise StopAsyncIteration
            with trio.move_on_after(self._read_timeout) as scope:
                try:
                    data = await self._http.receive_body()
                except SSEConnectionError:
                    if self._ended:  # closed by aclose() while waiting: the end, not a failure
                        raise StopAsyncIteration from None
                    raise
            if scope.cancelled_caught:
                raise SSEConnectionError(f"no data for {self._read_timeout} s")
            if not data:
                self._ended = True
                self._parser.feed_eof()
                raise StopAsyncIteration
            try:
                self._ready = self._parser.feed(data)
            except EventTooLargeError as exc:
                raise SSEEventTooLargeError(str(exc), limit=exc.limit) from exc
            self._next = 0
        event = self._ready[self._next]
        self._next += 1
        return event

    async def aclose(self) -> None:
        """Close the connection at once."""
        self._ended = True
        await self._http.aclose()


def _refusal(http: HTTPResponse) -> str | None:
    """Why this response is not an event stream we can read, or ``None`` if it is one."""
    if http.status == 204:
        return None
    if not 200 <= http.status < 300:
        return f"the server answered {http.status}"
    content_type = (http.header("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != "text/event-stream":
        return f"the content type is {content_type or 'missing'}, not text/event-stream"
    encoding = (http.header("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        return f"the body is {encoding}-encoded, which was not asked for"
    return None


async def _open_stream(
    url: str,
    parser: EventStreamParser,
    *,
    method: str,
    headers: Headers,
    body: bytes | None,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float | None,
    read_timeout: float | None,
) -> SSEResponse:
    """Connect, send the request and check the response head (see :func:`connect_sse`).

    ``connect_timeout`` covers the head and, for a refused response, the bounded read of
    its body: an upstream that sends ``503`` and then stalls its body cannot hold us.
    """
    try:
        with trio.fail_after(math.inf if connect_timeout is None else connect_timeout):
            http = await open_response(
                url,
                method=method,
                headers=headers,
                body=body,
                last_event_id=parser.last_event_id,
                ssl_context=ssl_context,
            )
            try:
                reason = _refusal(http)
                refused_body = b"" if reason is None else await http.read_bounded()
            except BaseException:
                await http.aclose()
                raise
    except trio.TooSlowError as exc:
        raise SSEConnectionError(f"no response within {connect_timeout} s") from exc
    if reason is not None:
        await http.aclose()
        raise SSEResponseError(
            f"{method} {url}: {reason}", status=http.status, headers=http.headers, body=refused_body
        )
    return SSEResponse(http, parser, read_timeout=read_timeout)


@asynccontextmanager
async def connect_sse(
    url: str,
    *,
    method: str = "GET",
    headers: Headers = (),
    body: bytes | None = None,
    last_event_id: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> AsyncIterator[SSEResponse]:
    """Open one event stream (no reconnection); leaving the block closes the connection.

    Args:
        url: an ``http://`` or ``https://`` URL.
        method: the request method (``POST`` for APIs that stream an answer).
        headers: extra request headers; one named like a default (``Accept``...) replaces it.
        body: the request body, sent with ``Content-Length``.
        last_event_id: sent as ``Last-Event-ID`` (unless empty), and the id events carry
            until the stream sets one.
        ssl_context: for https; ``ssl.create_default_context()`` if not given.
        max_event_bytes: the largest line, and largest data of one event, accepted.
        connect_timeout: seconds allowed to connect and receive the response head (and, when
            the response is refused, the start of its body for ``SSEResponseError.body``).
        read_timeout: seconds the stream may stay silent before it counts as broken.

    Yields:
        The :class:`SSEResponse`, whose head has arrived and been checked.

    Raises:
        SSEResponseError: before entering the block, when the status is not 2xx, the
            content type is not ``text/event-stream`` or the body is encoded.  (204 enters,
            with no events.)
        SSEConnectionError: connecting failed or the connection broke.
        ValueError: a URL that is not http(s), or a header value h11 refuses.

    Leaving the block, normally or by an exception or cancellation, closes the socket at
    once, without reading the rest of the stream: the server sees the disconnection (this is
    how a relay cancels its upstream request).
    """
    parser = EventStreamParser(last_event_id=last_event_id or "", max_event_bytes=max_event_bytes)
    response = await _open_stream(
        url,
        parser,
        method=method,
        headers=headers,
        body=body,
        ssl_context=ssl_context,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    try:
        yield response
    finally:
        await response.aclose()


class EventSource:
    """A reconnecting event stream, like a browser's ``EventSource``.

    Use as ``async with EventSource(url) as source: async for event in source: ...``.
    Nothing happens until the first event is asked for; then the client connects, and
    whenever the connection fails or the stream ends it reconnects after a delay (see
    :mod:`rawstream.client.backoff`), sending ``Last-Event-ID``.

    Args:
        url, method, headers, body, ssl_context, max_event_bytes, connect_timeout,
            read_timeout: as for :func:`connect_sse`, applied to every connection.
        last_event_id: the id to resume from on the first connection.
        retry: the reconnection time, in seconds, until the server sends ``retry:``
            (the spec's default: 3 s).
        max_backoff: the cap, in seconds, of the window that doubles with each consecutive
            failure (the server's ``retry:`` is honoured even above it).
        min_backoff: the least delay, in seconds, once attempts fail, when the reconnection
            time is shorter: ``retry: 0`` reconnects at once after a healthy stream, but not
            in a loop when the server keeps failing (see :mod:`rawstream.client.backoff`).
        max_reconnects: give up (raise :class:`SSEConnectionError`) after this many
            reconnection attempts in total; ``None`` never gives up.
        healthy_after: a connection that delivered no event counts as a failure for the
            backoff unless it stayed open this many seconds.
        random: the jitter source (pass a seeded ``random.Random`` for reproducible delays).

    Iteration raises:
        SSEResponseError: a connection got a non-2xx status or another content type.
        SSEEventTooLargeError: an event exceeded ``max_event_bytes``.
        SSEConnectionError: ``max_reconnects`` were used up.

    Iteration ends (``StopAsyncIteration``) when the server answers 204, or after
    :meth:`aclose`.  Waiting for the next event may be cancelled (a timeout around it, say)
    without losing anything: the stream stays open and the next call carries on.  Leaving
    the ``async with`` block, however it is left, closes the connection at once.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Headers = (),
        body: bytes | None = None,
        last_event_id: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        retry: float = 3.0,
        max_backoff: float = 30.0,
        min_backoff: float = 1.0,
        max_reconnects: int | None = None,
        healthy_after: float = 10.0,
        connect_timeout: float | None = 30.0,
        read_timeout: float | None = None,
        random: _random.Random | None = None,
    ) -> None:
        self.url = url
        self._max_reconnects = max_reconnects
        self._healthy_after = healthy_after
        self._parser = EventStreamParser(
            last_event_id=last_event_id or "", max_event_bytes=max_event_bytes
        )
        self._backoff = Backoff(
            retry=retry, max_backoff=max_backoff, min_backoff=min_backoff, random=random
        )
        self._response: SSEResponse | None = None
        #: One connection attempt, the request the same every time but for Last-Event-ID
        #: (the parser's, read when the request is made).
        self._open = partial(
            _open_stream,
            url,
            self._parser,
            method=method,
            headers=headers,
            body=body,
            ssl_context=ssl_context,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._opened_at = 0.0
        self._delivered = False
        self._attempted = False
        self._finished = False
        self._last_error: SSEConnectionError | None = None
        #: Reconnection attempts made so far.
        self.reconnects = 0

    @property
    def last_event_id(self) -> str:
        """The last event id so far: sent as ``Last-Event-ID`` on the next connection."""
        return self._parser.last_event_id

    @property
    def retry(self) -> float:
        """The reconnection time in seconds (the server's last ``retry:``, else the default).

        Reading it changes nothing: the server's ``retry:`` is applied to the backoff in one
        place, when the next delay is computed.
        """
        if self._parser.retry is not None:
            return reconnection_time(self._parser.retry)
        return self._backoff.retry

    @property
    def connected(self) -> bool:
        """Whether a stream is open right now."""
        return self._response is not None

    async def __aenter__(self) -> EventSource:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection, if one is open, and stop: iteration ends."""
        self._finished = True
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> ServerSentEvent:
        """The next event, connecting and reconnecting as needed (see the class doc)."""
        while True:
            response = self._response
            if response is None:
                response = await self._connect()
            try:
                event = await response.__anext__()
            except StopAsyncIteration:
                if self._finished:  # aclose() from another task ended the stream
                    raise
                await self._drop()
                continue
            except SSEConnectionError as exc:
                if self._finished:
                    raise StopAsyncIteration from None
                self._last_error = exc
                await self._drop()
                continue
            except SSEEventTooLargeError:
                await self.aclose()
                raise
            self._delivered = True
            return event

    async def _connect(self) -> SSEResponse:
        while True:
            if self._finished:
                raise StopAsyncIteration
            if self._attempted:
                if self._max_reconnects is not None and self.reconnects >= self._max_reconnects:
                    raise SSEConnectionError(
                        f"gave up after {self.reconnects} reconnection attempts"
                    ) from self._last_error
                await trio.sleep(self._next_delay())
                if self._finished:  # closed while waiting
                    raise StopAsyncIteration
                self.reconnects += 1
            try:
                response = await self._open()
            except SSEConnectionError as exc:
                self._attempted = True
                self._last_error = exc
                self._backoff.failed()
                continue
            except SSEResponseError:
                self._finished = True
                raise
            # Only an attempt that finished counts: one cancelled halfway is simply redone.
            self._attempted = True
            if self._finished:  # aclose() from another task while this one connected
                await response.aclose()
                raise StopAsyncIteration
            if response.status == 204:
                self._finished = True
                await response.aclose()
                raise StopAsyncIteration
            self._response = response
            self._opened_at = trio.current_time()
            self._delivered = False
            return response

    def _next_delay(self) -> float:
        """The delay before the next attempt, with the server's latest ``retry:`` applied."""
        if self._parser.retry is not None:
            self._backoff.set_retry_ms(self._parser.retry)
        return self._backoff.next_delay()

    async def _drop(self) -> None:
        """The current connection ended or broke: close it and score it for the backoff."""
        response, self._response = self._response, None
        self._parser.feed_eof()  # a half-received event is discarded
        if response is not None:
            await response.aclose()
        if self._delivered or trio.current_time() - self._opened_at >= self._healthy_after:
            self._backoff.succeeded()
        else:
            self._backoff.failed()
