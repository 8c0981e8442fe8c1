"""Choose a hub from a URL: ``memory://`` (the default) or ``redis://host:port/db``."""

from __future__ import annotations

import os

from .broker import Broker
from .memory import Hub
from .message import HistoryLimits

__all__ = ["BROKER_ENV", "open_broker"]

#: The environment variable ``rawstream ... --broker URL`` sets for the app (and its workers).
BROKER_ENV = "RAWSTREAM_BROKER"


def open_broker(url: str | None = None, history: HistoryLimits | None = None) -> Broker:
    """The hub for ``url``; without one, the one named by ``$RAWSTREAM_BROKER``; without
    that, an in-memory :class:`~rawstream.hub.memory.Hub`.

    The hub still has to run: register ``app.service(hub.run)``.

    Raises:
        ValueError: an unsupported URL scheme.
        SystemExit: ``redis://`` without the ``rawstream[redis]`` extra installed.
    """
    url = url or os.environ.get(BROKER_ENV) or "memory://"
    scheme = url.partition("://")[0].lower()
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
