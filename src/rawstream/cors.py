"""Cross-origin resource sharing (CORS) settings for plain HTTP and SSE routes, and the origin
syntax shared with the WebSocket origin check.

Browsers let a page read a response from another origin only when the response says so with
``Access-Control-Allow-Origin``; requests that are not "simple" (a JSON ``POST``, an
``Authorization`` header) are first asked about with an ``OPTIONS`` preflight.  This module
holds the settings; the server applies them (see :mod:`rawstream.server.origin`).  CORS
governs reading only: a simple request (a ``GET``, a form ``POST``) from a page of a
disallowed origin still reaches its handler, whose response then carries no CORS headers.

WebSocket handshakes are not governed by CORS at all: browsers send them cross-origin freely,
with the page's ``Origin``, which is why WebSocket routes check ``Origin`` themselves
(``Config.ws_allowed_origins``, ``App.websocket(origins=...)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CORS", "allows_origin", "check_origins", "parse_origin"]

#: An origin as browsers serialize it: ``scheme://host[:port]``, nothing after the authority.
_ORIGIN = re.compile(
    r"([a-z][a-z0-9+.-]*)://(\[[0-9a-f:.]+\]|[^\s/?#@:\[\]\\]+)(?::([0-9]{1,5}))?", re.IGNORECASE
)
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def parse_origin(value: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of a serialized origin, lower-cased, the scheme's default port
    filled in (so ``https://A.example:443`` equals ``https://a.example``); None for the opaque
    origin ``null`` and for anything that is not an origin (a path, a user name, no scheme).
    """
    found = _ORIGIN.fullmatch(value.strip())
    if found is None:
        return None
    scheme, host = found[1].lower(), found[2].lower()
    port = int(found[3]) if found[3] else DEFAULT_PORTS.get(scheme)
    if port is not None and not 0 < port < 65536:
        return None
    return scheme, host, port


def check_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """Validate an allow-list of origins and return it as a tuple.

    Each entry is ``"*"`` (any origin) or an origin exactly as a browser sends it in
    ``Origin``: ``scheme://host[:port]``, no path, no trailing slash.

    Raises:
        TypeError: ``origins`` is a single string (a list of its characters is not meant).
        ValueError: an entry is not an origin, or is ``null``: the opaque origin is shared by
            every sandboxed iframe and ``file:`` or ``data:`` page, of any site, so it cannot
            name anyone in particular (``"*"`` says "anyone" honestly).
    """
    if isinstance(origins, str):
        raise TypeError(f"origins is a list of origins, not one string: {origins!r}")
    checked = tuple(origins)
    for origin in checked:
        if origin == "*":
            continue
        if origin.strip().lower() == "null":
            raise ValueError(
                "'null' cannot be allowed: every sandboxed iframe and file: page sends it"
            )
        if parse_origin(origin) is None:
            raise ValueError(
                f"{origin!r} is not an origin: expected scheme://host[:port] with no path "
                "(e.g. https://app.example), or '*'"
            )
    return checked


@lru_cache(maxsize=256)
def _origin_set(origins: tuple[str, ...]) -> tuple[bool, frozenset[tuple[str, str, int | None]]]:
    """(any origin, the parsed allowed ones) for an allow-list (cached: lists are few)."""
    parsed = (parse_origin(origin) for origin in origins if origin != "*")
    return "*" in origins, frozenset(p for p in parsed if p is not None)


def allows_origin(origin: str, allowed: Iterable[str]) -> bool:
    """``origin`` (a request's ``Origin`` value) is on the allow-list ``allowed``.

    ``"*"`` on the list allows any origin, ``null`` included; otherwise ``null`` and values
    that are not origins never match, and the others are compared after normalization
    (scheme and host case, default ports).
    """
    any_origin, parsed = _origin_set(tuple(allowed))
    if any_origin:
        return origin == "null" or parse_origin(origin) is not None
    found = parse_origin(origin)
    return found is not None and found in parsed


@dataclass(frozen=True, slots=True, kw_only=True)
class CORS:
    """Which other origins' pages may read a route's responses, and how.

    For a request whose ``Origin`` is allowed, a response carries
    ``Access-Control-Allow-Origin`` (``*`` when ``origins`` has ``"*"`` and credentials are
    off, else the request's origin, with ``Vary: Origin``), ``Access-Control-Allow-Credentials:
    true`` with ``allow_credentials``, and ``Access-Control-Expose-Headers`` when set.  A
    preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered by the server:
    204 with the route's methods, ``allow_headers`` and ``max_age``; 403 with the reason when
    the origin, the method or a requested header is not allowed.  A disallowed origin's actual
    request is served without CORS headers (its page cannot read the answer).

    Attributes:
        origins: allowed origins, exactly as browsers send them (``https://app.example``);
            ``"*"`` allows any origin.  An empty tuple allows none (a route may turn off the
            server's CORS with ``CORS()``).
        allow_credentials: let pages send cookies (``EventSource(url, {withCredentials:
            true})``, ``fetch(url, {credentials: "include"})``); the allowed origin is then
            echoed back, never ``*``.  With ``"*"`` this lets *every* site read responses
            made with its visitors' cookies: keep it for explicit origins.  (``null``, the
            origin of sandboxed frames and ``file:`` pages, is never echoed with credentials.)
        allow_headers: request headers a cross-origin request may carry beyond the
            CORS-safelisted ones (``Last-Event-ID`` is what an EventSource resends).
        expose_headers: response headers the page's script may read.
        max_age: seconds a browser may cache a preflight's answer.

    Raises:
        ValueError: an origin is malformed or ``null`` (see :func:`check_origins`), or
            ``max_age`` is negative.
    """

    origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_headers: tuple[str, ...] = ("content-type", "last-event-id", "authorization")
    expose_headers: tuple[str, ...] = ()
    max_age: int = 600

    def __post_init__(self) -> None:
        # Tuples whatever was passed (a list would make the settings unhashable).
        object.__setattr__(self, "origins", check_origins(self.origins))
        for name in ("allow_headers", "expose_headers"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} is a list of header names, not one string: {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.max_age < 0:
            raise ValueError(f"max_age must be 0 or more seconds, not {self.max_age}")

    @property
    def any_origin(self) -> bool:
        """Every origin may read, without credentials: responses say ``*`` and never vary."""
        return "*" in self.origins and not self.allow_credentials

    def allows(self, origin: str) -> bool:
        """A request with this ``Origin`` may read the responses."""
        if origin == "null" and self.allow_credentials:
            return False  # (only "*" admits null, and never to read with cookies)
        return allows_origin(origin, self.origins)
