"""One HTTP/1.1 request and its response over a Trio stream, with h11 doing the HTTP.

RFC 9112 framing (the response head, chunked or length-delimited or close-delimited bodies)
is entirely h11's (``h11.Connection(h11.CLIENT)``); this module only moves bytes between h11
and a ``trio.abc.Stream`` (TCP, or TLS through ``trio.SSLStream``) and translates failures
into :class:`SSEConnectionError`.  Each request gets its own connection, closed when the
response is done with: a stream is the whole life of the connection anyway.

No ``Accept-Encoding`` is sent, so a server answers with the identity encoding.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import trio

from .errors import SSEConnectionError, SSEResponseTooLargeError, first_header

__all__ = [
    "MAX_ERROR_BODY_BYTES",
    "FetchedResponse",
    "HTTPResponse",
    "Target",
    "fetch",
    "open_response",
    "parse_url",
]

log = logging.getLogger("rawstream.client")

#: How much of a refused response's body is kept (``SSEResponseError.body``).
MAX_ERROR_BODY_BYTES = 64 * 1024

#: Largest single read from the socket.
RECEIVE_BYTES = 64 * 1024

#: Largest response head accepted (h11 refuses a bigger one).
MAX_HEAD_BYTES = 64 * 1024

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where a URL points: scheme, host, port, and the request target (path and query)."""

    scheme: str
    host: str
    port: int
    target: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the port is left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """Split an ``http://`` or ``https://`` URL.

    Raises:
        ValueError: another scheme, no host, or a bad port.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs are supported: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=parts.hostname, port=port, target=target)


def request_headers(
    target: Target, headers: Headers, *, body: bytes | None, last_event_id: str | None
) -> list[tuple[bytes, bytes]]:
    """The request's headers: ours first, then the caller's (which replace ours by name)."""
    given = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {name.lower() for name, _ in given}
    defaults: list[tuple[str, str | bytes]] = [
        ("host", target.host_header),
        ("accept", "text/event-stream"),
        ("cache-control", "no-cache"),
    ]
    if last_event_id:
        # The spec sends the id UTF-8 encoded; h11 would encode a str as ASCII.
        defaults.append(("last-event-id", last_event_id.encode()))
    if body is not None:
        defaults.append(("content-length", str(len(body))))
    merged = [(name, value) for name, value in defaults if name not in names] + list(given)
    return [
        (name.encode("ascii"), value if isinstance(value, bytes) else value.encode())
        for name, value in merged
    ]


class HTTPResponse:
    """A response whose head has arrived; its body is read with :meth:`receive_body`.

    Attributes:
        status: the status code.
        headers: the headers, names lower-cased, values decoded as Latin-1, in order.
    """

    def __init__(self, stream: trio.abc.Stream, conn: h11.Connection, head: h11.Response):
        self._stream = stream
        self._conn = conn
        self.status: int = head.status_code
        self.headers: list[tuple[str, str]] = [
            (name.decode("ascii"), value.decode("latin-1")) for name, value in head.headers
        ]
        self._done = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        return first_header(self.headers, name)

    async def receive_body(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` once it is complete.

        Raises:
            SSEConnectionError: the connection broke, or the body was cut short.
        """
        while not self._done:
            event = await _next_event(self._stream, self._conn)
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
            else:  # ConnectionClosed before EndOfMessage is reported by h11 as an error
                raise SSEConnectionError(f"unexpected {type(event).__name__} in a response body")
        return b""

    async def read_bounded(self, limit: int = MAX_ERROR_BODY_BYTES) -> bytes:
        """Up to ``limit`` bytes of the body (for error reports); a broken body gives what came.

        No deadline of its own: the caller puts one around it (a server can send a head and
        then stall its body).
        """
        body = bytearray()
        try:
            while len(body) < limit:
                data = await self.receive_body()
                if not data:
                    break
                body += data
        except SSEConnectionError:
            pass
        return bytes(body[:limit])

    async def read_all(self, limit: int) -> bytes:
        """The whole body, which must be complete and at most ``limit`` bytes.

        No deadline of its own: the caller puts one around it.

        Raises:
            SSEResponseTooLargeError: the body is larger than ``limit`` (the rest is not read).
            SSEConnectionError: the body was cut short or the connection broke.
        """
        body = bytearray()
        while data := await self.receive_body():
            body += data
            if len(body) > limit:
                raise SSEResponseTooLargeError(
                    f"the response body is larger than {limit} bytes", limit=limit
                )
        return bytes(body)

    async def aclose(self) -> None:
        """Close the connection at once (no graceful TLS close: the peer learns from EOF)."""
        await trio.aclose_forcefully(self._stream)


async def _next_event(stream: trio.abc.Stream, conn: h11.Connection) -> h11.Event:
    """h11's next event, reading from ``stream`` as often as h11 needs more bytes."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise SSEConnectionError(f"malformed HTTP response: {exc}") from exc
        if isinstance(event, h11.Event):
            return event
        if event is h11.PAUSED:  # only after the response is complete; we never read on
            raise SSEConnectionError("the response is already complete")
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            # ClosedResourceError: another task closed the response (aclose()) meanwhile.
            raise SSEConnectionError(f"connection lost: {exc}") from exc
        conn.receive_data(data if isinstance(data, bytes) else bytes(data))


async def open_stream(target: Target, ssl_context: ssl.SSLContext | None) -> trio.abc.Stream:
    """A TCP connection to ``target``, wrapped in TLS (handshake done) for https.

    Raises:
        SSEConnectionError: the connection or the TLS handshake failed.
    """
    try:
        tcp = await trio.open_tcp_stream(target.host, target.port)
    except OSError as exc:
        raise SSEConnectionError(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
    if target.scheme != "https":
        return tcp
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    tls = trio.SSLStream(tcp, context, server_hostname=target.host, https_compatible=True)
    try:
        await tls.do_handshake()
    except BaseException as exc:
        await trio.aclose_forcefully(tcp)
        if isinstance(exc, trio.BrokenResourceError | OSError):
            raise SSEConnectionError(f"TLS handshake with {target.host} failed: {exc}") from exc
        raise
    return tls


async def open_response(
    url: str,
    *,
    method: str = "GET",
    headers: Headers = (),
    body: bytes | None = None,
    last_event_id: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> HTTPResponse:
    """Send one request to ``url`` and wait for the response head.

    The caller owns the returned response and must :meth:`HTTPResponse.aclose` it.

    Raises:
        ValueError: a bad URL, or a header h11 refuses (CR, LF or NUL in it).
        SSEConnectionError: connecting failed, the connection broke, or the response was
            malformed.
    """
    target = parse_url(url)
    # HTTP strips a field value's surrounding whitespace (RFC 9110 5.5), and h11 refuses to
    # send it: the id goes without it.
    sent_id = (last_event_id or "").strip(" \t")
    try:
        conn, outgoing = _encode_request(target, method, headers, body, sent_id)
    except h11.LocalProtocolError as exc:
        if not sent_id:
            raise ValueError(f"cannot send this request: {exc}") from exc
        # An id a server may legally send (a vertical tab in it, say) that is not a legal
        # header value: resuming without it beats failing the whole stream.
        try:
            conn, outgoing = _encode_request(target, method, headers, body, "")
        except h11.LocalProtocolError as again:
            raise ValueError(f"cannot send this request: {again}") from again
        log.debug("Last-Event-ID %r cannot be sent as a header; left out", sent_id)
    stream = await open_stream(target, ssl_context)
    try:
        try:
            await stream.send_all(outgoing)
        except (OSError, trio.BrokenResourceError) as exc:
            raise SSEConnectionError(f"connection lost while sending: {exc}") from exc
        while True:
            event = await _next_event(stream, conn)
            if isinstance(event, h11.Response):
                return HTTPResponse(stream, conn, event)
            if not isinstance(event, h11.InformationalResponse):
                raise SSEConnectionError(f"expected a response, got {type(event).__name__}")
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


def _encode_request(
    target: Target, method: str, headers: Headers, body: bytes | None, last_event_id: str
) -> tuple[h11.Connection, bytes]:
    """A new h11 client connection and the bytes of the whole request (h11 validates them).

    Raises:
        h11.LocalProtocolError: a header or the method h11 refuses to send.
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    outgoing = conn.send(
        h11.Request(
            method=method,
            target=target.target,
            headers=request_headers(target, headers, body=body, last_event_id=last_event_id),
        )
    )
    if body:
        outgoing += conn.send(h11.Data(data=body))
    outgoing += conn.send(h11.EndOfMessage())
    return conn, outgoing


@dataclass(frozen=True, slots=True)
class FetchedResponse:
    """A whole response: status, headers (names lower-cased, in order), complete body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        return first_header(self.headers, name)


async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Headers = (),
    body: bytes | None = None,
    max_body_bytes: int = 4 << 20,
    ssl_context: ssl.SSLContext | None = None,
) -> FetchedResponse:
    """One request and its whole, complete response (a small JSON document, not a stream).

    No deadline of its own: put one around the call (``trio.fail_after``); it then covers
    connecting, the head and the body, so a server that sends a head and then stalls cannot
    hold the caller.  Pass ``Accept`` in ``headers`` (the default is ``text/event-stream``,
    this module's main use).  The connection is closed before this returns or raises.

    Raises:
        ValueError: a bad URL, or a header h11 refuses.
        SSEConnectionError: connecting failed, the connection broke, or the body was cut short.
        SSEResponseTooLargeError: the body is larger than ``max_body_bytes``.
    """
    response = await open_response(
        url, method=method, headers=headers, body=body, ssl_context=ssl_context
    )
    try:
        data = await response.read_all(max_body_bytes)
    finally:
        await response.aclose()
    return FetchedResponse(response.status, response.headers, data)
