"""The application: routes for plain HTTP, Server-Sent Events and WebSocket handlers.

No framework magic: a route is a path, the methods it answers, a kind and a handler.  Paths
match exactly, except ``{name}`` segments, which match one path segment and land in
``request.path_params``.  The server answers 404 (no route has the path) and 405 (a route has
the path but not the method, with ``Allow``) itself.

Two settings guard a route against other sites' pages (see :mod:`rawstream.server.origin`):
WebSocket routes accept a handshake from a page of another origin only when ``origins`` (or
``Config.ws_allowed_origins``) allows it, and plain HTTP and SSE routes let other origins'
pages read their responses only when ``cors`` (or ``Config.cors``) says so; the server then
also answers those routes' CORS preflights (``OPTIONS``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .core.sse import Event
from .cors import CORS, check_origins
from .policy import SlowConsumer
from .request import Request
from .response import Response

__all__ = ["App", "Route", "RouteMatch"]

# The handlers' shapes.  An SSE handler takes ``(request, stream)`` and a WebSocket handler
# ``(ws)``; their stream types belong to the server (rawstream.server), which this module sits
# below: a route table is data, which the server drives.
HTTPHandler = Callable[[Request], Awaitable[Response]]
SSEGenerator = Callable[[Request], AsyncIterator[Event | str]]
RouteKind = Literal["http", "sse", "websocket"]
F = TypeVar("F", bound=Callable[..., Any])
Service = Callable[..., Awaitable[None]]
S = TypeVar("S", bound=Service)

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One route: ``kind`` says how the server drives ``handler``."""

    path: str
    kind: RouteKind
    methods: frozenset[str]
    handler: Callable[..., Any]
    subprotocols: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = field(default=None, compare=False)
    slow_consumer: SlowConsumer | None = None  # None: the server's default
    compress: bool | None = None  # SSE gzip; None: the server's default
    origins: tuple[str, ...] = ()  # WebSocket: other origins allowed besides the server's
    cors: CORS | None = None  # HTTP and SSE: None: the server's (Config.cors)

    @property
    def is_generator(self) -> bool:
        """An SSE route whose handler is an async generator of events."""
        return inspect.isasyncgenfunction(self.handler)

    def match_path(self, path: str) -> dict[str, str] | None:
        """The path parameters if ``path`` matches, else None."""
        if self.pattern is None:
            return {} if path == self.path else None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The outcome of routing: a route and its parameters, or the status to answer."""

    route: Route | None
    path_params: dict[str, str]
    status: int = 200
    allowed: tuple[str, ...] = ()


def _compile(path: str) -> re.Pattern[str] | None:
    if "{" not in path:
        return None
    regex = _PARAM.sub(
        lambda m: f"(?P<{m.group(1)}>[^/]+)",
        re.escape(path).replace(r"\{", "{").replace(r"\}", "}"),
    )
    return re.compile(regex)


class App:
    """A set of routes.

    Example::

        app = App()

        @app.get("/healthz")
        async def healthz(request: Request) -> Response:
            return Response.json({"status": "ok"})

        @app.sse("/events")
        async def events(request: Request, stream: SSEStream) -> None:
            await stream.send(Event("hello", id="1"))

        @app.websocket("/ws/echo")
        async def echo(ws: WebSocket) -> None:
            async for message in ws:
                await ws.send(message)
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.services: list[Service] = []
        # (method, path) -> the route a fixed path matches first; rebuilt when routes change.
        self._index: dict[tuple[str, str], Route] = {}
        self._indexed = 0

    def service(self, fn: S) -> S:
        """Register a background service: ``async def fn(*, task_status)``.

        The server starts each service with ``await nursery.start(fn)`` *before* it listens
        (so a service that cannot start, say a broker that is unreachable, stops the server
        with its error), and cancels it after the drain.  Services stop one at a time, the
        last registered first, each waited for before the next is cancelled: register a hub
        before what publishes through it, and their cleanup can still use it.  A hub, a Redis
        reader, a ticker that publishes: anything that lives as long as the server.
        """
        self.services.append(fn)
        return fn

    def add_route(
        self,
        path: str,
        handler: Callable[..., Any],
        *,
        kind: RouteKind = "http",
        methods: Iterable[str] = ("GET",),
        subprotocols: Iterable[str] = (),
        slow_consumer: SlowConsumer | None = None,
        compress: bool | None = None,
        origins: Iterable[str] = (),
        cors: CORS | None = None,
    ) -> Route:
        """Register ``handler`` for ``path`` (GET routes other than WebSocket answer HEAD too).

        ``origins`` (WebSocket routes only) lists the web origins whose pages may open the
        WebSocket besides the same origin and those of ``Config.ws_allowed_origins``
        (``"*"``: any).  ``cors`` (HTTP and SSE routes only) replaces the server's
        ``Config.cors`` for this route (``CORS()`` turns it off here).

        Raises:
            ValueError: a bad path, an origin that is not ``scheme://host[:port]`` or
                ``"*"``, or a setting given to a kind of route it does not apply to.
            TypeError: ``origins`` is one string rather than a list of them.
        """
        if not path.startswith("/"):
            raise ValueError(f"route paths start with '/': {path!r}")
        origin_list = check_origins(origins)
        if origin_list and kind != "websocket":
            raise ValueError("origins= is for WebSocket routes; HTTP and SSE routes take cors=")
        if cors is not None and kind == "websocket":
            raise ValueError("cors= is for HTTP and SSE routes; WebSocket routes take origins=")
        method_set = {m.upper() for m in methods}
        if "GET" in method_set and kind != "websocket":  # RFC 6455 4.1: the upgrade is a GET
            method_set.add("HEAD")
        route = Route(
            path,
            kind,
            frozenset(method_set),
            handler,
            tuple(subprotocols),
            _compile(path),
            slow_consumer,
            compress,
            origin_list,
            cors,
        )
        self.routes.append(route)
        return route

    def route(
        self, path: str, *, methods: Iterable[str] = ("GET",), cors: CORS | None = None
    ) -> Callable[[F], F]:
        """Decorate ``async def handler(request) -> Response`` for ``path`` and ``methods``.

        ``cors`` lets other origins' pages read the responses (default: ``Config.cors``).
        """

        def register(handler: F) -> F:
            self.add_route(path, handler, methods=methods, cors=cors)
            return handler

        return register

    def get(self, path: str, *, cors: CORS | None = None) -> Callable[[F], F]:
        """Shorthand for ``route(path, methods=["GET"])``."""
        return self.route(path, methods=("GET",), cors=cors)

    def post(self, path: str, *, cors: CORS | None = None) -> Callable[[F], F]:
        """Shorthand for ``route(path, methods=["POST"])``."""
        return self.route(path, methods=("POST",), cors=cors)

    def sse(
        self,
        path: str,
        *,
        slow_consumer: SlowConsumer | None = None,
        compress: bool | None = None,
        cors: CORS | None = None,
    ) -> Callable[[F], F]:
        """Decorate an SSE handler for ``GET path``, in either of two forms.

        * ``async def handler(request, stream)``: call ``await stream.send(Event(...))``;
          the stream ends when the handler returns.
        * ``async def handler(request)`` written as an async generator yielding ``Event``
          (or ``str`` data); the server closes it with ``aclose()`` when the client goes away.

        ``slow_consumer`` chooses what happens when a client cannot keep up (default: the
        server's ``Config.slow_consumer``); ``compress`` gzips the stream for clients that
        accept it (default: ``Config.sse_gzip``; never under ``DROP_OLDEST``); ``cors`` lets
        other origins' pages (``new EventSource(url)``) read the stream (default:
        ``Config.cors``).
        """

        def register(handler: F) -> F:
            self.add_route(
                path,
                handler,
                kind="sse",
                slow_consumer=slow_consumer,
                compress=compress,
                cors=cors,
            )
            return handler

        return register

    def websocket(
        self,
        path: str,
        *,
        subprotocols: Iterable[str] = (),
        slow_consumer: SlowConsumer | None = None,
        origins: Iterable[str] = (),
    ) -> Callable[[F], F]:
        """Decorate ``async def handler(ws)`` for WebSocket upgrades of ``GET path``.

        ``subprotocols`` lists those the route speaks, in preference order; the first one the
        client also offers is selected when the handshake is accepted.  ``slow_consumer`` is
        the policy for the handler's sends (``DROP_OLDEST`` compresses each message on its
        own, so a dropped one leaves the others decodable).

        A handshake with an ``Origin`` header (a browser's) is refused with 403 before the
        handler runs unless it comes from the same origin, or from one of ``origins`` or
        ``Config.ws_allowed_origins`` (``"*"`` in either: any origin).  This stops other
        sites' pages from opening the WebSocket with the visitor's cookies (cross-site
        WebSocket hijacking); clients that send no ``Origin`` are let through.
        """

        def register(handler: F) -> F:
            self.add_route(
                path,
                handler,
                kind="websocket",
                subprotocols=subprotocols,
                slow_consumer=slow_consumer,
                origins=origins,
            )
            return handler

        return register

    def match(self, method: str, path: str) -> RouteMatch:
        """Find the route for ``method`` and ``path``, or the 404/405 to answer.

        The first registered route that matches wins.  A fixed path registered before any
        route with parameters is found in a dict; anything else by trying routes in order.
        """
        if self._indexed != len(self.routes):
            self._build_index()
        route = self._index.get((method, path))
        if route is not None:
            return RouteMatch(route, {})
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match_path(path)
            if params is None:
                continue
            if method in route.methods:
                return RouteMatch(route, params)
            allowed |= route.methods
        if allowed:
            return RouteMatch(None, {}, 405, tuple(sorted(allowed)))
        return RouteMatch(None, {}, 404)

    def _build_index(self) -> None:
        """Index the fixed paths no route with parameters comes before (such a route might
        match the same path first)."""
        index: dict[tuple[str, str], Route] = {}
        for route in self.routes:
            if route.pattern is not None:
                break
            for method in route.methods:
                index.setdefault((method, route.path), route)
        self._index = index
        self._indexed = len(self.routes)
