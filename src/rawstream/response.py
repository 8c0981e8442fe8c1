"""What an HTTP handler returns: a status, headers, and a body of bytes or a stream of them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable
from typing import Any

__all__ = ["Response"]

HeaderItems = Iterable[tuple[str, str]]


class Response:
    """An HTTP response.

    Args:
        body: ``bytes`` or ``str`` (sent with ``Content-Length``), or an async iterable of
            ``bytes`` (streamed chunked, with backpressure: the iterable is only asked for its
            next chunk when the client has room for it; an async generator is closed with
            ``aclose()`` if the client goes away).
        status: the HTTP status.
        headers: extra headers, as (name, value) pairs or a dict.
        content_type: the ``Content-Type`` header.
    """

    def __init__(
        self,
        body: bytes | str | AsyncIterable[bytes] = b"",
        *,
        status: int = 200,
        headers: HeaderItems | dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.body: bytes | AsyncIterable[bytes] = body.encode() if isinstance(body, str) else body
        if content_type is None and isinstance(body, str):
            content_type = "text/plain; charset=utf-8"
        items = headers.items() if isinstance(headers, dict) else (headers or ())
        self.headers: list[tuple[str, str]] = list(items)
        if content_type is not None:
            self.headers.append(("content-type", content_type))

    @classmethod
    def text(cls, text: str, *, status: int = 200, headers: HeaderItems | None = None) -> Response:
        """A ``text/plain`` response."""
        return cls(text, status=status, headers=headers)

    @classmethod
    def json(cls, value: Any, *, status: int = 200, headers: HeaderItems | None = None) -> Response:
        """An ``application/json`` response."""
        body = json.dumps(value, separators=(",", ":")).encode()
        return cls(body, status=status, headers=headers, content_type="application/json")

    def encoded_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as the HTTP core takes them."""
        known = _ENCODED
        encoded = []
        for name, value in self.headers:
            pair = known.get((name, value))
            if pair is None:
                pair = (name.lower().encode("latin-1"), value.encode("latin-1"))
                if len(known) < ENCODED_KEPT:
                    known[name, value] = pair
            encoded.append(pair)
        return encoded


#: Header pairs already encoded, by their text: responses repeat a few (a content type, a
#: cache policy), so each is encoded once.  Only the first few hundred distinct pairs are
#: kept (bounded memory; the rest are encoded every time).
_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {}
ENCODED_KEPT = 256
