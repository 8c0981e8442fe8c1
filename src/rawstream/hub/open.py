"""Choose a hub from a URL: ``memory://`` (the default) or ``redis://host:port/db``."""

from __future__ import annotations

import os

from .broker import Broker
from .memory import Hub
from .message import HistoryLimits

__all__ = ["BROKER_ENV", "is_in_memory", "open_broker"]

#: The environment variable ``rawstream ... --broker URL`` sets for the app (and its workers).
BROKER_ENV = "RAWSTREAM_BROKER"


def _broker_url(url: str | None = None) -> str:
    """The broker URL in effect: ``url``, else ``$RAWSTREAM_BROKER``, else ``memory://``."""
    return url or os.environ.get(BROKER_ENV) or "memory://"


def is_in_memory(url: str | None = None) -> bool:
    """Whether :func:`open_broker` would give an in-memory hub for ``url`` (its channels
    then live inside each process, and workers do not share them)."""
    return _scheme(_broker_url(url)) == "memory"


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def open_broker(url: str | None = None, history: HistoryLimits | None = None) -> Broker:
    """The hub for ``url``; without one, the one named by ``$RAWSTREAM_BROKER``; without
    that, an in-memory :class:`~rawstream.hub.memory.Hub`.

    The hub still has to run: register ``app.service(hub.run)``.

    Raises:
        ValueError: an unsupported URL scheme.
        SystemExit: ``redis://`` without the ``rawstream[redis]`` extra installed.
    """
    url = _broker_url(url)
    scheme = _scheme(url)
    if scheme == "memory":
        return Hub(history)
    if scheme in ("redis", "rediss", "unix"):
        try:
            from .redis import RedisHub
        except ImportError as exc:  # coredis missing
            raise SystemExit(
                f"rawstream: {url} needs the Redis extra: pip install 'rawstream[redis]' ({exc})"
            ) from exc
        return RedisHub(url, history)
    raise ValueError(f"unsupported broker URL {url!r}: use memory:// or redis://HOST:PORT/DB")
