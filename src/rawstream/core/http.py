"""The server side of one HTTP/1.1 connection, over h11 (RFC 9112).

Bytes in (:meth:`HTTPConnection.receive_data`), events out (:meth:`HTTPConnection.next_event`);
calls in (:meth:`send_response`, :meth:`send_body`, :meth:`end_response`), bytes out
(:meth:`data_to_send`).  h11 parses and frames; this module adds what a server needs on top
of it and what h11 leaves to its user:

* limits on the request head: its bytes (``max_head_bytes``, 431), its request line
  (``max_request_line_bytes``, 414) and its header count (``max_header_count``, 431), checked
  on the parsed head (:mod:`rawstream.core.headlimits`), since h11 bounds only a head arriving
  in pieces (ARCHITECTURE section 7);
* limits on the body (``max_body_bytes``, 413), from ``Content-Length`` and while it streams;
* 400 and close for ``Content-Length`` with ``Transfer-Encoding`` (smuggling; h11 keeps the
  connection), 505 for an HTTP major version other than 1;
* ``100 Continue`` only once the application asks for the body (:meth:`send_continue`);
* HEAD answered with a GET's head, body bytes dropped; pipelined requests held until
  :meth:`start_next_cycle`; after an upgrade's head, :meth:`upgrade_data` hands over the rest;
* the fast path (:mod:`rawstream.core.fasthttp`): a common bodiless request is read, and its
  whole answer (:meth:`send_whole_response`) framed, without h11; anything else replays the
  held bytes into h11 (:meth:`_hand_over`), which drives the exchange from there.

Every error the peer causes surfaces as :class:`RemoteProtocolError` with the status to answer;
:meth:`send_error` writes that answer and marks the connection for closing.
"""

from __future__ import annotations

import h11

from .errors import LocalProtocolError, RemoteProtocolError
from .fasthttp import NEED_MORE, SimpleHead, frame_simple_response, parse_simple_head
from .headlimits import HeadLimits, make_head
from .httpevents import (
    NEED_DATA,
    BodyData,
    ClientClosed,
    EndOfRequest,
    Headers,
    HTTPEvent,
    NeedData,
    RequestHead,
    chunk_frame,
    reason_phrase,
    request_line_too_long,
)
from .output import OutputBuffer

__all__ = [  # (the request's parts are defined in httpevents and exported here too)
    "NEED_DATA",
    "BodyData",
    "ClientClosed",
    "EndOfRequest",
    "HTTPConnection",
    "HTTPEvent",
    "NeedData",
    "RequestHead",
    "chunk_frame",
]


class HTTPConnection:
    """One server-side HTTP/1.1 connection: h11 plus limits, errors and an output buffer.

    Args:
        max_head_bytes: largest request head (request line and headers) accepted; 431 beyond.
        max_request_line_bytes: longest request line (method, target and version, without
            the CRLF) accepted; 414 beyond.
        max_header_count: most header fields one request head may carry; 431 beyond.
        max_body_bytes: largest request body accepted; 413 beyond.
        fast_path: read common requests and write whole responses without h11 (see the
            module doc); off, every byte goes through h11 (the tests compare the two).
    """

    def __init__(
        self,
        *,
        max_head_bytes: int = 16 * 1024,
        max_request_line_bytes: int = 8 * 1024,
        max_header_count: int = 100,
        max_body_bytes: int = 1024 * 1024,
        fast_path: bool = True,
    ):
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self._limits = HeadLimits(
            max_head_bytes=max_head_bytes,
            max_request_line_bytes=max_request_line_bytes,
            max_header_count=max_header_count,
            max_body_bytes=max_body_bytes,
        )
        self._out = OutputBuffer()
        self._body_received = 0
        self._head_request = False  # the current request is a HEAD (as h11 knows it)
        self._response_started = False
        self._body_chunked = False
        self._must_close = False
        # The fast path: bytes held back from h11 (while _holding); the request it read (None:
        # h11 has the exchange) and its head's bytes; its end taken, its answer written, EOF.
        self._fast_path = self._holding = fast_path
        self._held = bytearray()
        self._fast: SimpleHead | None = None
        self._fast_raw = b""
        self._fast_ended = self._fast_answered = self._fast_client_gone = self._eof = False

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket (``b""`` is ignored: EOF is :meth:`receive_eof`)."""
        if not data:  # h11 would take b"" for EOF and raise RuntimeError on any later byte
            return
        if self._holding:
            self._held += data
        else:
            self._h11.receive_data(data)

    def receive_eof(self) -> None:
        """The client closed its sending side."""
        self._eof = True  # (while holding: given to h11 with the held bytes, at the hand-over)
        if not self._holding and self._h11.their_state is not h11.ERROR:
            self._h11.receive_data(b"")

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet turned into events (the read buffer's size)."""
        if self._holding:
            return len(self._held)
        return len(self._h11.trailing_data[0])

    def _hand_over(self) -> None:
        """From here h11 drives the exchange: it gets every byte held back (a request the
        fast path read is replayed, and its events taken again), then any EOF seen."""
        if not self._holding:
            return
        if self._fast_answered:
            raise LocalProtocolError("the exchange was answered by the fast path")
        self._holding = False
        fast, self._fast = self._fast, None
        held, self._held = bytes(self._held), bytearray()
        if fast is not None:
            held = self._fast_raw + held
        if held:
            self._h11.receive_data(held)
        if self._eof:
            self._h11.receive_data(b"")
        if fast is not None:  # h11 reads the same request again: the same events
            replayed = self._h11.next_event()
            assert isinstance(replayed, h11.Request), replayed
            if self._fast_ended:
                end = self._h11.next_event()
                assert isinstance(end, h11.EndOfMessage), end
        self._fast_ended = False

    def _next_fast_event(self) -> HTTPEvent | NeedData | None:
        """The next event as the fast path reads it, or None when h11 must take over."""
        fast = self._fast
        if fast is not None:  # the bodiless request read: its end, then what h11 would say
            if not self._fast_ended:
                self._fast_ended = True
                return EndOfRequest()
            if fast.close and self._held:  # (h11 refuses bytes after Connection: close)
                if not self._fast_answered:
                    return None
                self._must_close = True
                raise RemoteProtocolError("Got data when expecting EOF", status_hint=400)
            if self._eof and not self._held:
                self._fast_client_gone = True
                return ClientClosed()
            return NEED_DATA  # (a pipelined request waits for start_next_cycle)
        if self._eof:
            return None
        if not self._held:
            return NEED_DATA  # (as h11 says for no bytes at all)
        parsed = parse_simple_head(self._held, self._limits.max_head_bytes)
        if parsed is NEED_MORE:
            return NEED_DATA
        if parsed is None:
            return None
        assert isinstance(parsed, SimpleHead)
        if not self._limits.admits(parsed):
            return None  # (h11 reads it, and the exact check decides)
        head = make_head(parsed.method, parsed.target, b"1.1", parsed.headers)
        self._fast_raw = bytes(self._held[: parsed.length])
        del self._held[: parsed.length]
        self._fast = parsed
        self._head_request = parsed.method == b"HEAD"
        return head

    def next_event(self) -> HTTPEvent | NeedData:
        """The next event, or ``NEED_DATA`` when the buffered bytes hold no complete one.

        Also returns ``NEED_DATA`` while a response is in progress and the client has sent the
        next pipelined request: it stays buffered until :meth:`start_next_cycle`.

        Raises:
            RemoteProtocolError: the client broke the protocol or a limit; answer with
                :meth:`send_error` (if :attr:`response_started` is false) and close.
        """
        if self._holding:
            fast_event = self._next_fast_event()
            if fast_event is not None:
                return fast_event
            self._hand_over()
        reading_head = self._h11.their_state is h11.IDLE
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            self._must_close = True
            if (
                reading_head
                and exc.error_status_hint == 431
                and request_line_too_long(
                    self._h11.trailing_data[0], self._limits.max_request_line_bytes
                )
            ):
                # h11's limit on a head that arrives in pieces, reached inside the request line
                raise RemoteProtocolError("request line too long", status_hint=414) from exc
            raise RemoteProtocolError(str(exc), status_hint=exc.error_status_hint) from exc
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return NEED_DATA
        if isinstance(event, h11.Request):
            # Set before the checks: h11 knows the method, and a refused HEAD request's error
            # response must have no body either (h11 would refuse one as too much data).
            self._head_request = event.method == b"HEAD"
            try:
                return self._limits.check(
                    event.method, event.target, event.http_version, event.headers
                )
            except RemoteProtocolError:
                self._must_close = True  # (a refused head closes the connection)
                raise
        if isinstance(event, h11.Data):
            self._body_received += len(event.data)
            if self._body_received > self._limits.max_body_bytes:
                self._must_close = True
                raise RemoteProtocolError("request body too large", status_hint=413)
            return BodyData(bytes(event.data))
        if isinstance(event, h11.EndOfMessage):
            return EndOfRequest()
        assert isinstance(event, h11.ConnectionClosed)
        return ClientClosed()

    @property
    def request_complete(self) -> bool:
        """The whole current request, body included, has been received."""
        if self._fast is not None:
            return self._fast_ended
        return self._h11.their_state not in (h11.IDLE, h11.SEND_BODY)

    @property
    def body_unread(self) -> bool:
        """Body bytes of the current request may remain to be read (or discarded) before
        the connection can carry another request.  (A request the fast path read has none;
        after an unanswered 100-continue the connection closes: nothing to read.)"""
        if self._fast is not None:
            return False
        return not (self._must_close or self.request_complete)

    @property
    def waiting_for_continue(self) -> bool:
        """The client sent ``Expect: 100-continue`` and waits before sending its body."""
        if self._fast is not None:
            return False  # (the fast path takes no Expect)
        return self._h11.they_are_waiting_for_100_continue

    # -- output ------------------------------------------------------------------------------

    @property
    def response_started(self) -> bool:
        """A response head has been sent for the current request."""
        return self._response_started

    def send_continue(self) -> None:
        """Send ``100 Continue`` if (and only if) the client is waiting for it."""
        if self.waiting_for_continue:
            self._send(
                h11.InformationalResponse(status_code=100, headers=[], reason=reason_phrase(100))
            )

    def send_response(self, status: int, headers: Headers | list[tuple[bytes, bytes]]) -> None:
        """Send a response head.

        With a ``content-length`` header the body is fixed-length; without one it is chunked
        (or, for an HTTP/1.0 client, delimited by closing the connection).
        """
        self._hand_over()
        if self.waiting_for_continue:
            # The client never got 100 Continue, so its body may or may not follow: the only
            # safe way to find the next request's first byte is a new connection.
            self._must_close = True
        if self._must_close:
            headers = [*headers, (b"connection", b"close")]
        try:
            response = h11.Response(
                status_code=status, headers=list(headers), reason=reason_phrase(status)
            )
        except h11.LocalProtocolError as exc:  # e.g. a header value containing a newline
            raise LocalProtocolError(str(exc)) from exc
        self._send(response)
        self._response_started = True
        # h11 frames a body chunked when the response has no length and the client speaks
        # HTTP/1.1 (for HTTP/1.0 it delimits the body by closing); see chunk_frame().
        self._body_chunked = (
            not self.is_head_request
            and (self._h11.their_http_version or b"1.0") >= b"1.1"
            and status >= 200
            and status not in (204, 304)
            and not any(name.lower() == b"content-length" for name, _ in headers)
        )

    def send_whole_response(
        self, status: int, headers: Headers | list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Send a whole response: ``headers`` (without ``Content-Length``, which is added
        from ``body``), then ``body``, then its end; written by the fast path when the
        request was read by it and h11 would write the same bytes."""
        if self._fast is not None and not self._must_close:
            data = frame_simple_response(
                status,
                reason_phrase(status),
                headers,
                body,
                head_request=self._head_request,
                close=self._fast.close,
            )
            if data is not None:
                self._out.write(data)
                self._response_started = True
                self._fast_answered = True
                return
        if status >= 200 and status not in (204, 304):
            # RFC 9110 8.6: never on 1xx or 204; a 304's would describe the cached body.
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        self.send_response(status, headers)
        self.send_body(body)
        self.end_response()

    @property
    def body_is_chunked(self) -> bool:
        """The response in progress has a chunked body (so :func:`chunk_frame` bytes are
        exactly what :meth:`send_body` would produce, and may be written in its place)."""
        return self._body_chunked

    def send_body(self, data: bytes) -> None:
        """Send a piece of the response body (dropped for HEAD, as the head alone answers).

        A chunked body's piece is framed here with :func:`chunk_frame`, the bytes h11 would
        write, without a trip through h11's event machinery: h11 keeps no state per chunk,
        and the end of the body still goes through it (:meth:`end_response`).
        """
        if not data:
            return
        self._hand_over()
        if self._body_chunked:  # (only while the body is being sent: see end_response)
            self._out.write(chunk_frame(data))
        elif not self.is_head_request:
            self._send(h11.Data(data=data))

    def end_response(self) -> None:
        """End the response body."""
        self._body_chunked = False  # the body is over: a later piece goes to h11, which refuses
        self._hand_over()
        self._send(h11.EndOfMessage())

    def send_error(
        self, status: int, message: str = "", headers: Headers = (), *, close: bool = True
    ) -> None:
        """Answer with a short plain-text error (by default closing the connection after it).

        Usable when nothing of a response has been sent yet, including after a protocol
        error that left h11 unable to parse a request.
        """
        self._must_close = self._must_close or close
        if status < 200 or status in (204, 304):  # statuses that never carry a body
            self.send_response(status, list(headers))
            self.end_response()
            return
        body = (message or reason_phrase(status).decode()).encode() + b"\n"
        self.send_response(
            status,
            [
                *headers,
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        self.send_body(body)
        self.end_response()

    def data_to_send(self) -> bytes:
        """The bytes produced since the last call; the caller must write all of them."""
        return self._out.take()

    def _send(self, event: h11.Event) -> None:
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc)) from exc
        self._out.write(data)

    @property
    def is_head_request(self) -> bool:
        """The current request is a HEAD: its response carries no body."""
        return self._head_request

    # -- connection lifetime -----------------------------------------------------------------

    @property
    def will_close(self) -> bool:
        """The connection will close after the current response."""
        return self._must_close

    @property
    def keep_alive(self) -> bool:
        """Another request may follow on this connection once the response is done."""
        fast = self._fast
        if fast is not None:
            # (Its body is known to be empty: whether its end was taken does not matter.)
            return self._fast_answered and not (
                self._must_close or fast.close or self._fast_client_gone
            )
        return (
            not self._must_close
            and self._h11.our_state is h11.DONE
            and self._h11.their_state is h11.DONE
        )

    def start_next_cycle(self) -> None:
        """Reset for the next request on a kept-alive connection."""
        if not self.keep_alive:
            raise LocalProtocolError("connection cannot be reused")
        if self._fast is not None:  # h11 never saw the exchange: it is idle already
            self._fast = None
            self._fast_ended = self._fast_answered = False
        else:
            self._h11.start_next_cycle()
            # Pipelined bytes h11 holds stay with it; with none, the fast path may hold again.
            self._holding = self._fast_path and not (self._h11.trailing_data[0] or self._eof)
        self._head_request = False
        self._body_received = 0
        self._response_started = False
        self._body_chunked = False

    def upgrade_data(self) -> bytes:
        """Hand over the bytes received after an upgrade request's head.

        Call it when the 101 response for the upgrade has been produced elsewhere (wsproto
        writes its own): this connection is then finished and must not be used again.
        """
        self._hand_over()
        self._must_close = True
        return bytes(self._h11.trailing_data[0])

    def send_failed(self) -> None:
        """Tell h11 a write failed (half a message may be out): nothing more may follow."""
        self._must_close = True
        self._body_chunked = False
        if self._fast_answered:
            return  # (h11 never saw the exchange, and the connection will not be reused)
        self._hand_over()
        self._h11.send_failed()
