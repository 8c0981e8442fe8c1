"""Cross-origin resource sharing (CORS) settings for plain HTTP and SSE routes.

Browsers let a page read a response from another origin only when the response says so with
``Access-Control-Allow-Origin``; requests that are not "simple" (a ``Last-Event-ID`` header, a
JSON ``POST``) are first asked about with an ``OPTIONS`` preflight.  This module holds the
settings; the server applies them (see :mod:`rawstream.server.cors`).  WebSocket handshakes
are not governed by CORS at all: browsers send them cross-origin freely, which is why
WebSocket routes check ``Origin`` themselves (``Config.ws_allowed_origins``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CORS"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CORS:
    """Which other origins' pages may read a route's responses, and how.

    Attributes:
        origins: allowed origins, exactly as browsers send them (``https://app.example``);
            ``"*"`` allows any origin.
        allow_credentials: let pages send cookies (``EventSource(url, {withCredentials:
            true})``, ``fetch(url, {credentials: "include"})``); the allowed origin is then
            echoed back, never ``*``.
        allow_headers: request headers a cross-origin request may carry beyond the
            CORS-safelisted ones (``Last-Event-ID`` is what an EventSource resends).
        expose_headers: response headers the page's script may read.
        max_age: seconds a browser may cache a preflight's answer.
    """

    origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_headers: tuple[str, ...] = ("content-type", "last-event-id", "authorization")
    expose_headers: tuple[str, ...] = ()
    max_age: int = 600
