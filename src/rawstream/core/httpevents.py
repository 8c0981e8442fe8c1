"""What an HTTP/1.1 request is made of, as the server core hands it out: the request head,
the body's pieces, its end, the client's close; the reason phrases, a chunk's framing and the
origin form of a target (shared by :mod:`rawstream.core.http` and its users)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

__all__ = [
    "NEED_DATA",
    "BodyData",
    "ClientClosed",
    "EndOfRequest",
    "Headers",
    "HTTPEvent",
    "NeedData",
    "RequestHead",
    "chunk_frame",
    "origin_form",
    "reason_phrase",
    "request_line_too_long",
]

Headers = tuple[tuple[bytes, bytes], ...]

_REASONS: Final = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    301: b"Moved Permanently",
    302: b"Found",
    304: b"Not Modified",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    409: b"Conflict",
    413: b"Content Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    426: b"Upgrade Required",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status`` (empty for an unknown one)."""
    return _REASONS.get(status, b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    """A request line and its headers (names lower-cased, as h11 gives them)."""

    method: str
    target: str
    path: str
    query_string: str
    http_version: str
    headers: Headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def query(self) -> list[tuple[str, str]]:
        """The decoded query parameters, in order, repeats kept."""
        return parse_qsl(self.query_string, keep_blank_values=True)

    @property
    def wants_upgrade_to(self) -> str | None:
        """The protocol named by ``Upgrade`` when ``Connection`` includes ``upgrade``."""
        upgrade = self.header(b"upgrade")
        connection = self.header(b"connection") or b""
        tokens = {token.strip().lower() for token in connection.split(b",")}
        if upgrade is None or b"upgrade" not in tokens:
            return None
        return upgrade.decode("latin-1").strip().lower()


@dataclass(frozen=True, slots=True)
class BodyData:
    """A piece of the request body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfRequest:
    """The request body is complete (also sent for a request without a body)."""


@dataclass(frozen=True, slots=True)
class ClientClosed:
    """The client closed its side; no more requests will come."""


class NeedData:
    """Sentinel type: feed more bytes before asking for the next event."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()

HTTPEvent = RequestHead | BodyData | EndOfRequest | ClientClosed


def chunk_frame(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body: the bytes h11 writes for it (size in hex,
    CRLF, data, CRLF).  Framed once, a broadcast event's chunk is written to every chunked
    stream as is, instead of asking h11 to frame it again per connection."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def origin_form(target: str) -> str:
    """The path and query of a request target.  An absolute-form target
    (``http://host/path?q``, what clients send to proxies) must be accepted by a server too
    (RFC 9112 section 3.2.2): routing uses its path and query, and its authority, like
    ``Host``, plays no part in routing (``RequestHead.target`` keeps it as sent).
    """
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return target
    slash = rest.find("/")
    query = rest.find("?")
    if slash < 0 or 0 <= query < slash:
        return "/" + rest[query:] if query >= 0 else "/"
    return rest[slash:]


def request_line_too_long(buffered: bytes | bytearray, limit: int) -> bool:
    """``buffered`` starts with a request line already longer than ``limit`` bytes."""
    # a line of at most `limit` bytes has its LF at index limit + 1 at the latest (CRLF)
    return len(buffered) > limit + 1 and b"\n" not in buffered[: limit + 2]
