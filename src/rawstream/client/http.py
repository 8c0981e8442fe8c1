"""One HTTP/1.1 request and its response over a Trio stream, with h11 doing the HTTP.

RFC 9112 framing (the response head, chunked or length-delimited or close-delimited bodies)
is entirely h11's (``h11.Connection(h11.CLIENT)``); this module only moves bytes between h11
and a ``trio.abc.Stream`` (TCP, or TLS through ``trio.SSLStream``) and translates failures
into :class:`SSEConnectionError`.  Each request gets its own connection, closed when the
response is done with: a stream is the whole life of the connection anyway.

No ``Accept-Encoding`` is sent, so a server answers with the identity encoding.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import trio

from .errors import SSEConnectionError

__all__ = ["MAX_ERROR_BODY_BYTES", "HTTPResponse", "Target", "open_response", "parse_url"]

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
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

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
        """Up to ``limit`` bytes of the body (for error reports); a broken body gives what came."""
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
        except (OSError, trio.BrokenResourceError) as exc:
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
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
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
    except h11.LocalProtocolError as exc:
        raise ValueError(f"cannot send this request: {exc}") from exc
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
