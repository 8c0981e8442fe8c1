"""The server's limits on a request head, and the head the server layer is given.

h11 bounds only a head that arrives in pieces (``max_incomplete_event_size``), so the limits
are checked again on every parsed head (ARCHITECTURE section 7): its bytes
(``max_head_bytes``, 431), its request line (``max_request_line_bytes``, 414), its header
count (``max_header_count``, 431), its body's announced length (``max_body_bytes``, 413),
``Content-Length`` with ``Transfer-Encoding`` (400: possible smuggling) and an HTTP major
version other than 1 (505).  Sans-IO, like the rest of :mod:`rawstream.core`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import RemoteProtocolError
from .fasthttp import SimpleHead
from .httpevents import RequestHead, origin_form

__all__ = ["HeadLimits", "make_head"]


class HeadLimits:
    """One connection's limits on a request head."""

    __slots__ = ("max_body_bytes", "max_head_bytes", "max_header_count", "max_request_line_bytes")

    def __init__(
        self,
        *,
        max_head_bytes: int,
        max_request_line_bytes: int,
        max_header_count: int,
        max_body_bytes: int,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_request_line_bytes = max_request_line_bytes
        self.max_header_count = max_header_count
        self.max_body_bytes = max_body_bytes

    def check(
        self,
        method: bytes,
        target_bytes: bytes,
        http_version: bytes,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> RequestHead:
        """The head, if it is within every limit.

        Raises:
            RemoteProtocolError: the first limit it breaks, with the status to answer.
        """
        if not http_version.startswith(b"1."):
            version = http_version.decode()
            raise RemoteProtocolError(f"HTTP/{version} not supported", status_hint=505)
        # "METHOD SP target SP HTTP/version": h11's grammar allows single spaces only
        request_line = len(method) + len(target_bytes) + len(http_version) + 7
        if request_line > self.max_request_line_bytes:
            raise RemoteProtocolError("request line too long", status_hint=414)
        if len(headers) > self.max_header_count:
            raise RemoteProtocolError("too many header fields", status_hint=431)
        head_bytes = request_line + 4  # and the CRLF ending the line and the one ending the head
        content_length = transfer_encoding = None
        for name, value in headers:
            head_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                transfer_encoding = value
        if head_bytes > self.max_head_bytes:
            raise RemoteProtocolError("request head too large", status_hint=431)
        if content_length is not None and transfer_encoding is not None:
            message = "both Content-Length and Transfer-Encoding (possible smuggling)"
            raise RemoteProtocolError(message, status_hint=400)
        if content_length is not None and int(content_length) > self.max_body_bytes:
            raise RemoteProtocolError("request body too large", status_hint=413)
        return make_head(method, target_bytes, http_version, headers)

    def admits(self, head: SimpleHead) -> bool:
        """A head the fast path read passes :meth:`check` (it can fail only the size limits:
        it has no body headers and its version is 1.1).  Its size as ``check`` counts it
        (one space after each colon) is at most its length plus one byte per header; past
        that bound (False) h11 reads it and ``check`` decides exactly."""
        headers = len(head.headers)
        return (
            len(head.method) + len(head.target) + 10 <= self.max_request_line_bytes
            and headers <= self.max_header_count
            and head.length + headers <= self.max_head_bytes
        )


def make_head(
    method: bytes, target_bytes: bytes, http_version: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> RequestHead:
    """The :class:`RequestHead` the server layer is given for a parsed head."""
    target = target_bytes.decode("ascii", "replace")
    path, _, query = origin_form(target).partition("?")
    return RequestHead(
        method=method.decode("ascii", "replace"),
        target=target,
        path=path,
        query_string=query,
        http_version=http_version.decode("ascii"),
        headers=tuple(headers),  # (h11 and the fast path both give bytes pairs)
    )
