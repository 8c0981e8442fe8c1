"""Origin checks: the guard against cross-site WebSocket hijacking, and CORS for plain HTTP
and SSE routes.

**WebSocket handshakes.**  A browser opens a WebSocket to any site a page asks for, with the
visitor's cookies, and no CORS check protects the answer: a page on ``evil.example`` could
act as the visitor on our WebSocket routes.  What the browser cannot forge is ``Origin``, so
a handshake that carries one is accepted only from the same origin (scheme, host and port of
``Origin`` equal to the connection's scheme and the request's ``Host``) or from an origin on
the route's or the server's allow-list; ``"*"`` on either allows any.  Clients that send no
``Origin`` (command-line tools, servers) are not browsers acting for someone, and pass.

**CORS.**  :func:`cors_headers` gives the headers of an actual response and
:func:`answer_preflight` the server's answer to a preflight (see :class:`~rawstream.cors.CORS`
for what each origin gets).  A route's settings override the server's ``Config.cors``.

Nothing here does I/O: the connection and the WebSocket session call these and send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..app import App, Route
from ..core.http import RequestHead
from ..cors import CORS, DEFAULT_PORTS, allows_origin, parse_origin
from .config import Config

__all__ = [
    "Preflight",
    "answer_preflight",
    "cors_headers",
    "route_cors",
    "same_origin",
    "websocket_origin_refusal",
]

Header = tuple[bytes, bytes]

_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^\s/?#@:\[\]\\]+)(?::([0-9]{1,5}))?", re.IGNORECASE)


def same_origin(origin: str, host: bytes | None, scheme: str) -> bool:
    """``origin`` names the server this request reached: its scheme is the connection's
    (``http`` or ``https``) and its host and port are those of the ``Host`` header (host
    case-insensitive, default ports filled in)."""
    parsed = parse_origin(origin)
    found = _HOST.fullmatch(host.decode("latin-1").strip()) if host is not None else None
    if parsed is None or found is None:
        return False
    port = int(found[2]) if found[2] else DEFAULT_PORTS[scheme]
    return parsed == (scheme, found[1].lower(), port)


def websocket_origin_refusal(
    head: RequestHead, route: Route, config: Config, *, tls: bool
) -> str | None:
    """Why a WebSocket handshake is refused for its ``Origin`` (the 403's text), or None to
    let it through: no ``Origin``, the same origin, or an allowed one (see the module doc)."""
    values = [value for name, value in head.headers if name == b"origin"]
    if not values:
        return None  # not a browser: nobody's cookies are at stake
    if len(values) > 1:
        return "more than one Origin header"
    origin = values[0].decode("latin-1").strip()
    if same_origin(origin, head.header(b"host"), "https" if tls else "http"):
        return None
    if allows_origin(origin, route.origins) or allows_origin(origin, config.ws_allowed_origins):
        return None
    return f"cross-origin WebSocket refused: origin {origin} is not allowed"


def route_cors(route: Route, config: Config) -> CORS | None:
    """The CORS settings in force for ``route``: its own, else the server's; None when
    that allows no origin (``CORS()``: CORS off, so no ``Vary`` and no preflight answers)."""
    if route.kind == "websocket":
        return None
    cors = route.cors if route.cors is not None else config.cors
    return cors if cors is not None and cors.origins else None


def cors_headers(cors: CORS | None, origin: bytes | None) -> tuple[Header, ...]:
    """The CORS headers of an actual response to a request with this ``Origin`` (or none).

    With ``"*"`` and no credentials every response says ``Access-Control-Allow-Origin: *``,
    even to requests without ``Origin``, and never varies.  Otherwise the answer depends on
    the origin, so every response says ``Vary: Origin`` (a cache must not serve one origin's
    answer, or a no-CORS answer, to another), and an allowed origin is echoed back.  (The
    Fetch standard's advice, "CORS protocol and HTTP caches".)
    """
    if cors is None:
        return ()
    if cors.any_origin:
        headers: list[Header] = [(b"access-control-allow-origin", b"*")]
    else:
        headers = [(b"vary", b"origin")]
        if origin is None or not cors.allows(origin.decode("latin-1")):
            return tuple(headers)
        headers.append((b"access-control-allow-origin", origin.strip()))
        if cors.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
    if cors.expose_headers:
        headers.append((b"access-control-expose-headers", _join(cors.expose_headers)))
    return tuple(headers)


@dataclass(frozen=True, slots=True)
class Preflight:
    """The server's answer to a CORS preflight: 204 and its headers, or 403 and why."""

    status: int
    headers: tuple[Header, ...] = ()
    reason: str = ""


def answer_preflight(app: App, config: Config, head: RequestHead, path: str) -> Preflight | None:
    """Answer a preflight for ``path``, or None when the request is not one, or no route at
    the path has CORS (it then gets the usual answer: 405 with ``Allow``, or 404).

    A preflight is an ``OPTIONS`` request with ``Origin`` and
    ``Access-Control-Request-Method``.  It is refused (403) when the origin is not allowed,
    the method is not one of the route's, or a header named in
    ``Access-Control-Request-Headers`` is not among ``allow_headers``; the browser then
    fails the actual request without sending it.
    """
    if head.method != "OPTIONS":
        return None
    origin = head.header(b"origin")
    method = head.header(b"access-control-request-method")
    if origin is None or method is None:
        return None
    requested = method.decode("latin-1").strip()
    match = app.match(requested, path)
    cors = route_cors(match.route, config) if match.route is not None else None
    if cors is None or match.route is None:
        others = [r for r in app.routes if r.match_path(path) is not None]
        if any(route_cors(r, config) is not None for r in others):
            return Preflight(403, reason=f"cross-origin {requested} is not allowed here")
        return None
    origin_text = origin.decode("latin-1").strip()
    if not cors.allows(origin_text):
        return Preflight(403, reason=f"origin {origin_text} may not read this resource")
    allowed = {name.lower() for name in cors.allow_headers}
    for value in head.headers:
        if value[0] != b"access-control-request-headers":
            continue
        for name in value[1].decode("latin-1").split(","):
            name = name.strip().lower()
            if name and name not in allowed:
                return Preflight(403, reason=f"request header {name} is not allowed")
    if cors.any_origin:
        headers: list[Header] = [(b"access-control-allow-origin", b"*")]
    else:
        headers = [(b"access-control-allow-origin", origin.strip()), (b"vary", b"origin")]
        if cors.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
    headers.append((b"access-control-allow-methods", _join(sorted(match.route.methods))))
    if cors.allow_headers:
        headers.append((b"access-control-allow-headers", _join(cors.allow_headers)))
    headers.append((b"access-control-max-age", str(cors.max_age).encode()))
    return Preflight(204, tuple(headers))


def _join(names: list[str] | tuple[str, ...]) -> bytes:
    return ", ".join(names).encode("latin-1")
