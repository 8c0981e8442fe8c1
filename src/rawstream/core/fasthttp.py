"""The fast path beside h11 for the commonest HTTP/1.1 exchange: a small bodiless request
answered by a whole response of known length.

h11 parses such a request in about 40 microseconds, most of it its event and state machinery
rather than the parse; a keep-alive ``GET`` of a health check or a JSON endpoint is nothing
else.  :func:`parse_simple_head` reads the request head itself when, and only when, it is the
common case, and :func:`frame_simple_response` writes the bytes h11 would write for the
answer.  Anything else is *handed over*: the function returns None and
:class:`~rawstream.core.http.HTTPConnection` gives h11 every byte it held back, so h11 sees
exactly the input it would have seen and answers (or refuses) it as it always does.

The common case, checked strictly (a doubt is a hand-over, never a guess):

* the whole head is in the buffer, every line ending in CRLF (no bare LF, no CR inside a line);
* ``METHOD SP target SP HTTP/1.1``: a token method, a target of visible ASCII;
* header fields ``name: value`` with a token name and a value of visible ASCII and inner
  spaces or tabs only (no obs-fold, no control bytes, no bytes above 0x7e);
* exactly one ``Host``; no ``Content-Length``, ``Transfer-Encoding``, ``Expect`` or
  ``Upgrade``; ``Connection``, if present, exactly ``close`` or ``keep-alive``.

``tests/core/test_fasthttp.py`` proves the rule with hypothesis: for generated heads (valid,
near-valid and hostile), the fast path gives exactly h11's request and its end, or hands over;
for generated responses it gives exactly h11's bytes, or hands over; and a whole connection
driven through both gives the same events and the same bytes.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NEED_MORE", "SimpleHead", "frame_simple_response", "parse_simple_head"]

_TOKEN: Final = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_REQUEST_LINE: Final = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1")
_VALUE_PATTERN: Final = rb"[\x21-\x7e](?:[ \t]*[\x21-\x7e])*|"  # (visible ASCII, inner blanks)
_FIELD: Final = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE_PATTERN + rb")[ \t]*")
_NAME: Final = re.compile(_TOKEN)
_VALUE: Final = re.compile(_VALUE_PATTERN)

#: Request headers that mean more than a bodiless request: h11 takes those.
_HANDED_OVER: Final = frozenset((b"content-length", b"transfer-encoding", b"expect", b"upgrade"))
#: Response headers h11 rewrites or reorders: a response carrying one goes through h11.
_REWRITTEN: Final = frozenset((b"connection", b"transfer-encoding", b"host", b"content-length"))

#: Response header lines already checked and framed, by (name, value): most responses repeat
#: a few (a content type, a cache policy), and checking each costs two regex matches.  Only
#: lines that pass are kept, and only the first few hundred distinct ones (bounded memory).
_HEADER_LINES: Final[dict[tuple[bytes, bytes], bytes]] = {}
HEADER_LINES_KEPT: Final = 256

#: :func:`parse_simple_head`'s answer while the head is still arriving in the common form.
NEED_MORE: Final = 0


class SimpleHead:
    """A request head the fast path read: h11's fields, and how many bytes it took."""

    __slots__ = ("close", "headers", "length", "method", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        length: int,
        close: bool,
    ) -> None:
        self.method = method
        self.target = target
        #: (lower-cased name, value) pairs, in order: what h11's ``Request.headers`` holds.
        self.headers = headers
        #: The head's bytes, its final blank line included.
        self.length = length
        #: The client sent ``Connection: close``.
        self.close = close


def parse_simple_head(data: bytes | bytearray, max_bytes: int) -> SimpleHead | int | None:
    """Read the request head at the start of ``data`` if it is the common case.

    Returns the head, :data:`NEED_MORE` when the head is incomplete but so far could still be
    the common case (h11 would wait for more bytes too), or None to hand over to h11: the
    head is something else, is larger than ``max_bytes``, or h11 might already act on it.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if (
            len(data) > max_bytes
            or (data and not data[:1].isalpha())  # (h11 refuses a first byte below 0x21)
            or b"\n\n" in data
            or b"\n\r\n" in data  # (h11 ends a head at either)
        ):
            return None
        return NEED_MORE
    length = end + 4
    if length > max_bytes:
        return None
    lines = bytes(data[:end]).split(b"\r\n")
    request_line = _REQUEST_LINE.fullmatch(lines[0])
    if request_line is None:
        return None
    headers = []
    hosts = 0
    close = False
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            return None
        name = field[1].lower()
        value = field[2]
        if name in _HANDED_OVER:
            return None
        if name == b"host":
            hosts += 1
        elif name == b"connection":
            token = value.lower()
            if token == b"close":
                close = True
            elif token != b"keep-alive":
                return None
        headers.append((name, value))
    if hosts != 1:
        return None
    return SimpleHead(request_line[1], request_line[2], headers, length, close)


def frame_simple_response(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
    body: bytes,
    *,
    head_request: bool,
    close: bool,
) -> bytes | None:
    """The bytes h11 writes for this whole response to an HTTP/1.1 request, or None when
    h11 must frame it (a status or header it treats specially, a value it would refuse).

    ``headers`` must not carry ``Content-Length``: it is added here, from ``body``.  The body
    is left out for a HEAD request; ``close`` adds the ``Connection: close`` h11 adds when the
    client asked to close.
    """
    if status < 200 or status > 599 or status in (204, 304):
        return None
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    known = _HEADER_LINES
    for header in headers:
        line = known.get(header)
        if line is None:
            name, value = header
            if (
                name.lower() in _REWRITTEN
                or _NAME.fullmatch(name) is None
                or _VALUE.fullmatch(value) is None
            ):
                return None
            line = b"%s: %s\r\n" % (name, value)
            if len(known) < HEADER_LINES_KEPT:
                known[header] = line
        lines.append(line)
    lines.append(b"content-length: %d\r\n" % len(body))
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head_request:
        lines.append(body)
    return b"".join(lines)
