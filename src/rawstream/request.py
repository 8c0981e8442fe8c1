"""What a handler receives: the request, its headers, query and (size-limited) body."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from .core.http import RequestHead

__all__ = ["HTTPError", "Headers", "QueryParams", "Request"]


class HTTPError(Exception):
    """Raise from a handler to answer with ``status`` (and ``message`` as the body).

    The server raises it too, from :meth:`Request.body`, when the body is too large (413) or
    the client stops sending it (408).
    """

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(f"{status} {message}".strip())
        self.status = status
        self.message = message


class Headers(Mapping[str, str]):
    """Request headers: case-insensitive, first value by ``[]``/``get``, all by ``getlist``."""

    def __init__(self, raw: tuple[tuple[bytes, bytes], ...]) -> None:
        self.raw = raw

    def __getitem__(self, name: str) -> str:
        key = name.lower().encode("latin-1")
        for k, v in self.raw:
            if k == key:
                return v.decode("latin-1")
        raise KeyError(name)

    def getlist(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw if k == key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k.decode("latin-1") for k, _ in self.raw))

    def __len__(self) -> int:
        return len({k for k, _ in self.raw})


class QueryParams(Mapping[str, str]):
    """Query parameters: first value by ``[]``/``get``, every value by ``getlist``."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def __getitem__(self, name: str) -> str:
        for k, v in self.pairs:
            if k == name:
                return v
        raise KeyError(name)

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``, in order (``?channel=a&channel=b``)."""
        return [v for k, v in self.pairs if k == name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self.pairs))

    def __len__(self) -> int:
        return len({k for k, _ in self.pairs})


class Request:
    """One HTTP request (also the handshake request of a WebSocket).

    Attributes:
        method: ``GET``, ``POST``, ...
        path: the decoded path, without the query.
        query: the query parameters.
        headers: the request headers.
        client: the client's ``(host, port)``.
        path_params: values of ``{name}`` segments of the route's path.
        http_version: ``"1.1"`` or ``"1.0"``.
        server: the :class:`~rawstream.server.Server` serving the request (None for a request
            made outside one, in a test say): for a handler that reports on the server
            itself, such as :func:`rawstream.metrics.add_metrics`'s.  (Typed ``object``:
            requests sit below the server in the layering, and few handlers need it.)

    ``path``, when given, is the head's path already decoded (the server decodes it to route
    the request).
    """

    def __init__(
        self,
        head: RequestHead,
        client: tuple[str, int],
        read_body: Callable[[], Awaitable[bytes]],
        path_params: dict[str, str] | None = None,
        *,
        server: object | None = None,
        path: str | None = None,
    ) -> None:
        self.head = head
        self.method = head.method
        self.path = unquote(head.path) if path is None else path
        self.client = client
        self.http_version = head.http_version
        self.path_params = path_params or {}
        self.server = server
        self._read_body = read_body
        self._body: bytes | None = None

    # (Made on first use: most handlers read neither, and a request is made per request.)
    @functools.cached_property
    def query(self) -> QueryParams:
        """The query parameters."""
        return QueryParams(self.head.query())

    @functools.cached_property
    def headers(self) -> Headers:
        """The request headers."""
        return Headers(self.head.headers)

    async def body(self) -> bytes:
        """The whole request body (read once, then cached).

        Sends ``100 Continue`` first if the client asked for it.

        Raises:
            HTTPError: 413 if the body exceeds the server's ``max_body_bytes``; 408 if the
                client pauses longer than ``header_timeout``.  The server answers with it.
        """
        if self._body is None:
            self._body = await self._read_body()
        return self._body

    async def text(self) -> str:
        """The body decoded as UTF-8."""
        return (await self.body()).decode()

    async def json(self) -> Any:
        """The body parsed as JSON; a malformed body raises HTTPError(400)."""
        try:
            return json.loads(await self.body())
        except ValueError as exc:
            raise HTTPError(400, f"invalid JSON: {exc}") from exc

    @property
    def last_event_id(self) -> str | None:
        """The SSE resume point: the ``Last-Event-ID`` header, else the ``last_event_id``
        query parameter (for clients that cannot set headers), else None."""
        return self.headers.get("last-event-id") or self.query.get("last_event_id")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.head.target} from {self.client[0]}:{self.client[1]}>"
