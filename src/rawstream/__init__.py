"""rawstream: a Trio streaming server for HTTP/1.1, Server-Sent Events and WebSocket.

The sans-IO protocol core lives in :mod:`rawstream.core`; the Trio server in
:mod:`rawstream.server`.  Applications need only the names exported here.

The names are imported when first used (PEP 562), so ``import rawstream.core`` runs no more
than the core: a sans-IO user needs no trio, and importing any one part costs only that part.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports
    from .app import App, Route
    from .core.errors import InvalidEventError
    from .core.sse import Event
    from .cors import CORS
    from .policy import SlowConsumer
    from .request import Headers, HTTPError, QueryParams, Request
    from .response import Response
    from .server import (
        Config,
        Delivery,
        Prepared,
        Server,
        SSEStream,
        WebSocket,
        WebSocketClosed,
        broadcast,
        serve,
    )

#: Each exported name and the module that defines it.
_EXPORTS = {
    "App": ".app",
    "CORS": ".cors",
    "Config": ".server",
    "Delivery": ".server",
    "Event": ".core.sse",
    "HTTPError": ".request",
    "Prepared": ".server",
    "Headers": ".request",
    "InvalidEventError": ".core.errors",
    "QueryParams": ".request",
    "Request": ".request",
    "Response": ".response",
    "Route": ".app",
    "SSEStream": ".server",
    "Server": ".server",
    "SlowConsumer": ".policy",
    "WebSocket": ".server",
    "WebSocketClosed": ".server",
    "broadcast": ".server",
    "serve": ".server",
}

__all__ = [
    "App",
    "CORS",
    "Config",
    "Delivery",
    "Event",
    "HTTPError",
    "Headers",
    "InvalidEventError",
    "Prepared",
    "QueryParams",
    "Request",
    "Response",
    "Route",
    "SSEStream",
    "Server",
    "SlowConsumer",
    "WebSocket",
    "WebSocketClosed",
    "broadcast",
    "serve",
]


def __getattr__(name: str) -> Any:
    """Import an exported name's module on first use, and keep the name here; a subpackage
    or module (``rawstream.server``) is imported on first use too, as an eager package's
    imports would have made it an attribute."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # (the module exists, and something it imports is missing)
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
